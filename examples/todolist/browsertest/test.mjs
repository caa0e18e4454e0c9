// Browser test of the todolist example page, in real headless Chromium.
//
//   node test.mjs http://127.0.0.1:8000      (or BASE_URL=... node test.mjs)
//
// Two pages open the same list; a task added and ticked in one appears
// ticked in the other without a reload. Then an anonymous page on a public
// list loses its WebSocket, shows that it is disconnected, reconnects by
// itself, catches up on what changed meanwhile and receives changes again.
//
// The server must already be running; this script starts and stops nothing
// but its own browser.
//
// Environment:
//   BASE_URL            server to test, if not given as the first argument
//   RESTLIVE_CHROMIUM   browser binary. Defaults to /usr/bin/chromium.
//   SCREENSHOT          if set, a PNG of the second page is saved there (on
//                       failure too, of the page that failed)
//   TIMEOUT_MS          how long each expectation may wait. Defaults to 15000.
//
// Exit status: 0 passed; 1 an expectation failed; 2 bad usage or an
// environment problem (no URL, browser or playwright-core missing).

const started = Date.now();
const base = (process.argv[2] || process.env.BASE_URL || '').replace(/\/+$/, '');
const executablePath = process.env.RESTLIVE_CHROMIUM || '/usr/bin/chromium';
const timeout = Number(process.env.TIMEOUT_MS) || 15000;
const screenshotPath = process.env.SCREENSHOT || '';

function fatal(code, message) {
  console.error(`browsertest: ${message}`);
  process.exit(code);
}

if (!/^https?:\/\/[^/]+/.test(base)) {
  fatal(2, 'usage: node test.mjs BASE_URL (e.g. http://127.0.0.1:8000), or set BASE_URL');
}

let chromium;
try {
  ({ chromium } = await import('playwright-core'));
} catch (err) {
  fatal(2, `cannot load playwright-core (run npm install in ${new URL('.', import.meta.url).pathname}): ${err.message}`);
}

// A hard ceiling, so a wedged browser can never hang the caller.
const watchdog = setTimeout(() => fatal(1, `FAIL at "${current}": gave up after 180 s`), 180_000);
watchdog.unref();

const suffix = `${process.pid}-${Date.now().toString(36)}`;
const pages = []; // every page, for diagnostics
const pageErrors = [];
let current = ''; // the step running, for the failure message
let failurePage = null;

function step(name) {
  current = name;
  console.log(`-- ${name} (${((Date.now() - started) / 1000).toFixed(1)} s)`);
}

function tid(id) {
  return `[data-testid="${id}"]`;
}

// expect waits for a locator to reach a state; the message says what was
// expected, on which page.
async function expect(page, what, locator, state = 'visible') {
  try {
    await locator.waitFor({ state, timeout });
  } catch (err) {
    failurePage = page;
    throw new Error(`${page.label}: expected ${what} within ${timeout} ms (${err.message.split('\n')[0]})`);
  }
}

// Headless Chromium throttles animation frames in background tabs, and
// Playwright's actionability checks wait on them: act on the front tab.
async function front(page) {
  await page.bringToFront();
  return page;
}

function task(page, text) {
  return page.locator(tid('task'), { hasText: text });
}

async function openPage(context, label, hash = '') {
  const page = await context.newPage();
  page.label = label;
  pages.push(page);
  page.on('pageerror', (err) => pageErrors.push(`${label}: ${err.message}`));
  page.on('console', (msg) => {
    if (msg.type() === 'error') console.log(`   [${label} console] ${msg.text()}`);
  });
  await page.goto(`${base}/${hash}`);
  // A marker that only survives if the page is never reloaded.
  await page.evaluate(() => (window.__notReloaded = true));
  return page;
}

async function expectLive(page) {
  await expect(page, 'the connection status to be live', page.locator(`${tid('connection-status')}[data-state="live"]`));
}

async function expectList(page, name) {
  await expect(page, `the list "${name}" to be open`, page.locator(tid('list-title'), { hasText: name }));
}

async function createList(page, name, isPublic) {
  await front(page);
  await page.locator(tid('new-list-name')).fill(name);
  await page.locator(tid('new-list-public')).setChecked(isPublic);
  await page.locator(tid('create-list')).click();
  await expectList(page, name);
  const m = /#list=(\d+)$/.exec(page.url());
  if (!m) throw new Error(`${page.label}: creating a list did not open it (url ${page.url()})`);
  return Number(m[1]);
}

async function addTask(page, text) {
  await front(page);
  await page.locator(tid('new-task-text')).fill(text);
  await page.locator(tid('add-task')).click();
  await expect(page, `task "${text}" to appear`, task(page, text));
}

async function tick(page, text) {
  await front(page);
  await task(page, text).locator(tid('task-done')).check();
}

async function expectTicked(page, text) {
  await expect(page, `task "${text}" to be ticked`, task(page, text).locator('input[type="checkbox"]:checked'));
}

async function run(browser) {
  // --- A signed-in user's private list, open in two pages --------------
  const owner = await browser.newContext();
  step('page 1: register and create a private list');
  const p1 = await openPage(owner, 'page 1');
  await expectLive(p1);
  await p1.locator(tid('auth-username')).fill(`alice-${suffix}`);
  await p1.locator(tid('auth-password')).fill('correct horse battery staple');
  await p1.locator(tid('register')).click();
  await expect(p1, 'to be signed in', p1.locator(tid('signed-in')));
  const privateName = `Groceries ${suffix}`;
  const privateId = await createList(p1, privateName, false);

  step('page 2: open the same list');
  const p2 = await openPage(owner, 'page 2', `#list=${privateId}`);
  await expectList(p2, privateName);
  await expect(p2, 'the list to be empty', p2.locator(tid('tasks-empty')));
  await expectLive(p1);
  await expectLive(p2);

  step('page 1 adds a task; page 2 shows it');
  await addTask(p1, 'Buy milk');
  await expect(p2, 'task "Buy milk" to appear without reload', task(p2, 'Buy milk'));

  step('page 1 ticks it; page 2 shows it ticked');
  await tick(p1, 'Buy milk');
  await expectTicked(p1, 'Buy milk');
  await expectTicked(p2, 'Buy milk');

  // --- An anonymous page on a public list, whose socket drops -----------
  step('page 1 creates a public list');
  const publicName = `Party ${suffix}`;
  const publicId = await createList(p1, publicName, true);
  await expectLive(p1);

  step('page 3 (anonymous) opens the public list and adds a task');
  const visitor = await browser.newContext();
  // The test stands between page 3 and the server, so it can cut the
  // socket and refuse reconnections for a while, as a restarting server
  // would.
  let refuse = false;
  let socket = null;
  await visitor.routeWebSocket(/\/ws\/subscribe\/?$/, (ws) => {
    if (refuse) {
      ws.close({ code: 1012, reason: 'test: server restarting' });
      return;
    }
    socket = ws;
    ws.connectToServer();
  });
  const p3 = await openPage(visitor, 'page 3', `#list=${publicId}`);
  await expectList(p3, publicName);
  await expectLive(p3);
  await addTask(p3, 'Bring cake');
  await expect(p1, 'task "Bring cake" to appear', task(p1, 'Bring cake'));

  step('page 3 loses its connection and says so');
  refuse = true;
  await socket.close({ code: 1012, reason: 'test: server restarting' });
  await expect(
    p3,
    'the "disconnected — reconnecting" indicator',
    p3.locator(`${tid('connection-status')}[data-state="reconnecting"]`, { hasText: /reconnecting/i }),
  );

  step('changes made meanwhile reach page 3 once it reconnects');
  await tick(p1, 'Bring cake');
  await expectTicked(p1, 'Bring cake');
  await addTask(p1, 'Napkins');
  refuse = false;
  await expectLive(p3);
  await expectTicked(p3, 'Bring cake');
  await expect(p3, 'task "Napkins" to appear after reconnecting', task(p3, 'Napkins'));

  step('page 3 is resubscribed: a later delete reaches it');
  await front(p1);
  await task(p1, 'Napkins').locator(tid('task-delete')).click();
  await expect(p1, 'task "Napkins" to go', task(p1, 'Napkins'), 'detached');
  await expect(p3, 'task "Napkins" to go without reload', task(p3, 'Napkins'), 'detached');

  step('no page was reloaded or threw');
  for (const page of pages) {
    if (!(await page.evaluate(() => window.__notReloaded === true))) {
      failurePage = page;
      throw new Error(`${page.label} was reloaded`);
    }
  }
  if (pageErrors.length) throw new Error(`uncaught errors in the page:\n  ${pageErrors.join('\n  ')}`);

  if (screenshotPath) {
    await p2.bringToFront();
    await p2.screenshot({ path: screenshotPath, fullPage: true });
    console.log(`   screenshot of page 2 saved to ${screenshotPath}`);
  }
}

let browser;
try {
  browser = await chromium.launch({
    executablePath,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
    timeout: 30_000,
  });
} catch (err) {
  fatal(2, `cannot launch Chromium at ${executablePath}: ${err.message.split('\n')[0]}`);
}

let failed = null;
try {
  await run(browser);
} catch (err) {
  failed = err;
}
if (failed && screenshotPath) {
  const page = failurePage || pages[pages.length - 1];
  await page?.screenshot({ path: screenshotPath, fullPage: true }).catch(() => {});
}
await browser.close().catch(() => {});

const seconds = ((Date.now() - started) / 1000).toFixed(1);
if (failed) {
  console.error(`FAIL at "${current}": ${failed.message}`);
  console.error(`browsertest: failed after ${seconds} s against ${base}`);
  process.exit(1);
}
console.log(`PASS: two pages stayed in sync through the WebSocket (${seconds} s against ${base})`);
