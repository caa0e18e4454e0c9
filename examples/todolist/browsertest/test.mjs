// Browser test of the todolist example page, in real headless Chromium.
//
//   node test.mjs BASE_URL [CONTROL_URL]      (or BASE_URL=... CONTROL_URL=... node test.mjs)
//
// Two pages open the same list; a task added, ticked, edited and moved in
// one changes in the other without a reload. An anonymous page on a public
// list loses its WebSocket, shows that it is disconnected, reconnects by
// itself, catches up on what changed meanwhile, receives changes again and
// follows its filters live. A user with more lists than one page of the
// API sees them all.
//
// With CONTROL_URL (the Go test, browser_test.go, serves it), the server is
// then restarted under two pages open on one list: stopped, written to
// while down by another process, started again on the same port and
// database, and written to through the API by one page as soon as it is
// back. Both pages must end showing exactly what GET answers, and must
// have resumed every live collection on the new connection: no snapshot,
// and never a GET of tasks. Last, a list made private leaves the anonymous
// page, and a logout takes the private lists from the user's other tab.
//
// Without CONTROL_URL the server must already be running, and the script
// starts and stops nothing but its own browser (the restart is skipped).
//
// Environment:
//   BASE_URL            server to test, if not given as the first argument
//   CONTROL_URL         the server's restart control, if not the second
//   RESTLIVE_CHROMIUM   browser binary. Defaults to /usr/bin/chromium.
//   SCREENSHOT          if set, a PNG of the second page is saved there (on
//                       failure too, of the page that failed)
//   TIMEOUT_MS          how long each expectation may wait. Defaults to 15000;
//                       those that wait for a reconnection, three times that.
//
// Exit status: 0 passed; 1 an expectation failed; 2 bad usage or an
// environment problem (no URL, browser or playwright-core missing).

const started = Date.now();
const base = (process.argv[2] || process.env.BASE_URL || '').replace(/\/+$/, '');
const controlURL = (process.argv[3] || process.env.CONTROL_URL || '').replace(/\/+$/, '');
const executablePath = process.env.RESTLIVE_CHROMIUM || '/usr/bin/chromium';
const timeout = Number(process.env.TIMEOUT_MS) || 15000;
// A page that lost its server retries with a backoff that grows while the
// server is down (up to 15 s between attempts): waiting for it to come
// back takes longer than a broadcast.
const reconnectTimeout = 3 * timeout;
const screenshotPath = process.env.SCREENSHOT || '';

function fatal(code, message) {
  console.error(`browsertest: ${message}`);
  process.exit(code);
}

if (!/^https?:\/\/[^/]+/.test(base)) {
  fatal(2, 'usage: node test.mjs BASE_URL [CONTROL_URL] (e.g. http://127.0.0.1:8000), or set BASE_URL');
}

let chromium;
try {
  ({ chromium } = await import('playwright-core'));
} catch (err) {
  fatal(2, `cannot load playwright-core (run npm install in ${new URL('.', import.meta.url).pathname}): ${err.message}`);
}

// A hard ceiling, so a wedged browser can never hang the caller.
const watchdog = setTimeout(() => fatal(1, `FAIL at "${current}": gave up after 200 s`), 200_000);
watchdog.unref();

const suffix = `${process.pid}-${Date.now().toString(36)}`;
const password = 'correct horse battery staple';
const pages = []; // every open page, for diagnostics
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

function exactly(text) {
  return new RegExp(`^${text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`);
}

// expect waits for a locator to reach a state; the message says what was
// expected, on which page.
async function expect(page, what, locator, state = 'visible', ms = timeout) {
  try {
    await locator.waitFor({ state, timeout: ms });
  } catch (err) {
    failurePage = page;
    throw new Error(`${page.label}: expected ${what} within ${ms} ms (${err.message.split('\n')[0]})`);
  }
}

function fail(page, message) {
  failurePage = page;
  throw new Error(`${page.label}: ${message}`);
}

// Headless Chromium throttles animation frames in background tabs, and
// Playwright's actionability checks wait on them: act on the front tab.
async function front(page) {
  await page.bringToFront();
  return page;
}

// task is the item of the task whose text is text (the move menu of every
// item holds list names, so the text is matched where it is shown).
function task(page, text) {
  return page.locator(tid('task')).filter({ has: page.locator(tid('task-text'), { hasText: exactly(text) }) });
}

function listLink(page, name) {
  return page.locator(tid('list-link'), { hasText: exactly(name) });
}

async function openPage(context, label, hash = '') {
  const page = await context.newPage();
  page.label = label;
  pages.push(page);
  page.on('pageerror', (err) => pageErrors.push(`${label}: ${err.message}`));
  page.on('console', (msg) => {
    if (msg.type() === 'error') console.log(`   [${label} console] ${msg.text()}`);
  });
  // What the page says to the server and hears from it, socket by socket,
  // to tell a resume from a fresh load; and every REST read of tasks, of
  // which the page, whose tasks are a live collection, should make none.
  page.sockets = [];
  page.on('websocket', (ws) => {
    const socket = { url: ws.url(), sent: [], received: [] };
    page.sockets.push(socket);
    const parse = (payload) => {
      try {
        return JSON.parse(String(payload));
      } catch {
        return { unreadable: String(payload) };
      }
    };
    ws.on('framesent', ({ payload }) => socket.sent.push(parse(payload)));
    ws.on('framereceived', ({ payload }) => socket.received.push(parse(payload)));
  });
  page.taskReads = [];
  page.on('request', (req) => {
    if (req.method() === 'GET' && new URL(req.url()).pathname.startsWith('/api/tasks')) page.taskReads.push(req.url());
  });
  await page.goto(`${base}/${hash}`);
  // A marker that only survives if the page is never reloaded.
  await page.evaluate(() => (window.__notReloaded = true));
  return page;
}

async function closePage(page) {
  pages.splice(pages.indexOf(page), 1);
  await page.context().close();
}

async function expectLive(page, ms = timeout) {
  await expect(page, 'the connection status to be live', page.locator(`${tid('connection-status')}[data-state="live"]`), 'visible', ms);
}

async function expectReconnecting(page) {
  await expect(
    page,
    'the "disconnected — reconnecting" indicator',
    page.locator(`${tid('connection-status')}[data-state="reconnecting"]`, { hasText: /reconnecting/i }),
  );
}

async function expectList(page, name) {
  await expect(page, `the list "${name}" to be open`, page.locator(tid('list-title'), { hasText: exactly(name) }));
}

// openList opens a list as a link to it would: by the address's fragment
// (a list another tab just created is not in this one's index yet).
async function openList(page, id, name) {
  await page.evaluate((id) => (location.hash = `list=${id}`), id);
  await expectList(page, name);
}

async function register(page, username) {
  await front(page);
  await page.locator(tid('auth-username')).fill(username);
  await page.locator(tid('auth-password')).fill(password);
  await page.locator(tid('register')).click();
  await expect(page, 'to be signed in', page.locator(tid('signed-in')));
}

async function createList(page, name, isPublic) {
  await front(page);
  await page.locator(tid('new-list-name')).fill(name);
  await page.locator(tid('new-list-public')).setChecked(isPublic);
  await page.locator(tid('create-list')).click();
  await expectList(page, name);
  const m = /#list=(\d+)$/.exec(page.url());
  if (!m) fail(page, `creating a list did not open it (url ${page.url()})`);
  return Number(m[1]);
}

async function addTask(page, text, ms = timeout) {
  await front(page);
  await page.locator(tid('new-task-text')).fill(text);
  await page.locator(tid('add-task')).click();
  await expect(page, `task "${text}" to appear`, task(page, text), 'visible', ms);
}

async function tick(page, text, checked = true) {
  await front(page);
  await task(page, text).locator(tid('task-done')).setChecked(checked);
}

async function expectTicked(page, text, checked = true) {
  const box = checked ? 'input[type="checkbox"]:checked' : 'input[type="checkbox"]:not(:checked)';
  await expect(page, `task "${text}" to be ${checked ? '' : 'un'}ticked`, task(page, text).locator(box));
}

// --- the API, as the test's own client ---------------------------------------

async function rest(method, path, token, body) {
  const headers = { Accept: 'application/json' };
  if (token) headers.Authorization = `Token ${token}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const res = await fetch(base + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

// tasksOf returns what GET /api/tasks/ answers for list id (and query),
// every page of it, as the page shows tasks: by id, with text and done.
async function tasksOf(id, token, query = {}) {
  const tasks = [];
  for (let next = `/api/tasks/?${new URLSearchParams({ list: String(id), ...query })}`; next; ) {
    const page = await rest('GET', next, token);
    tasks.push(...page.results);
    next = page.next && new URL(page.next).pathname + new URL(page.next).search;
  }
  return tasks.map(({ id, text, done }) => ({ id, text, done })).sort((a, b) => a.id - b.id);
}

function shownTasks() {
  return [...document.querySelectorAll('[data-testid="task"]')].map((li) => ({
    id: Number(li.dataset.taskId),
    text: li.querySelector('[data-testid="task-text"]').textContent,
    done: li.querySelector('[data-testid="task-done"]').checked,
  }));
}

// expectShows waits until page shows exactly the tasks GET answers for
// list id (and query) now, in the order of their ids.
async function expectShows(page, id, token, query = {}) {
  const want = await tasksOf(id, token, query);
  try {
    await page.waitForFunction(
      ({ want, shown }) => JSON.stringify(new Function(`return (${shown})()`)()) === JSON.stringify(want),
      { want, shown: shownTasks.toString() },
      { timeout, polling: 100 },
    );
  } catch {
    const got = await page.evaluate((shown) => new Function(`return (${shown})()`)(), shownTasks.toString());
    fail(page, `expected the tasks GET answers within ${timeout} ms:\n   want ${JSON.stringify(want)}\n   got  ${JSON.stringify(got)}`);
  }
  return want;
}

async function control(action, body) {
  const res = await fetch(`${controlURL}/${action}`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`control ${action}: ${res.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

async function pageStats(page) {
  return page.evaluate(() => ({ ...window.__restliveStats }));
}

// shownListIds returns the ids of the lists page shows in its index.
async function shownListIds(page) {
  return page.evaluate(() => [...document.querySelectorAll('[data-testid="list-link"]')].map((a) => Number(a.dataset.listId)));
}

// expectResumed checks the frames of the sockets page opened from the
// from-th on. It subscribed to the tasks of list listId, and to each list
// in known (those it showed before), again with the offset it had
// ("since"), never with "snapshot"; the server answered each "resumed":
// true, and sent snapshots only for lists the page had not known (found
// by the index it reads again after a reconnect). Returns how many
// subscriptions resumed, and how many were new.
function expectResumed(page, from, listId, known) {
  const sockets = page.sockets.slice(from);
  const sent = sockets.flatMap((s) => s.sent);
  const received = sockets.flatMap((s) => s.received);
  const subscribes = sent.filter((f) => typeof f.model === 'string');
  const isNew = (f) => f.model === 'todolist.List' && !known.includes(f.value);
  const resumes = subscribes.filter((f) => !isNew(f));
  const want = [`todolist.Task ${listId}`, ...known.map((id) => `todolist.List ${id}`)].sort();
  const got = resumes.map((f) => `${f.model} ${f.value}`).sort();
  if (JSON.stringify(got) !== JSON.stringify(want)) {
    fail(page, `subscribed again to ${JSON.stringify(got)} after the restart, want ${JSON.stringify(want)}`);
  }
  for (const f of resumes) {
    if (f.since === undefined) fail(page, `subscribed anew instead of resuming: ${JSON.stringify(f)}`);
    const snapshot = received.find((r) => r.request_id === f.request_id && r.type === 'snapshot');
    if (snapshot) fail(page, `was sent a snapshot for ${JSON.stringify(f)}: ${JSON.stringify(snapshot)}`);
    const answer = received.find((r) => r.request_id === f.request_id && r.type !== 'broadcast');
    if (answer?.type !== 'subscribed' || answer.resumed !== true) {
      fail(page, `the resubscribe ${JSON.stringify(f)} was answered ${JSON.stringify(answer)}, not resumed`);
    }
  }
  return { resumed: resumes.length, added: subscribes.length - resumes.length };
}

async function run(browser) {
  // --- A signed-in user's private list, open in two pages --------------
  const owner = await browser.newContext();
  step('page 1: register and create a private list');
  const p1 = await openPage(owner, 'page 1');
  await expectLive(p1);
  await register(p1, `alice-${suffix}`);
  const token = await p1.evaluate(() => localStorage.getItem('todolist.token'));
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
  await expectReconnecting(p3);

  step('changes made meanwhile reach page 3 once it reconnects');
  await tick(p1, 'Bring cake');
  await expectTicked(p1, 'Bring cake');
  await addTask(p1, 'Napkins');
  refuse = false;
  await expectLive(p3, reconnectTimeout);
  await expectTicked(p3, 'Bring cake');
  await expect(p3, 'task "Napkins" to appear after reconnecting', task(p3, 'Napkins'));

  step('page 3 is resubscribed: a later delete reaches it');
  await front(p1);
  await task(p1, 'Napkins').locator(tid('task-delete')).click();
  await expect(p1, 'task "Napkins" to go', task(p1, 'Napkins'), 'detached');
  await expect(p3, 'task "Napkins" to go without reload', task(p3, 'Napkins'), 'detached');

  // --- Renaming, editing, moving, filtering ------------------------------
  step('page 1 renames the private list; page 2 shows the new name');
  await front(p1);
  await listLink(p1, privateName).click();
  await expectList(p1, privateName);
  const renamed = `Food ${suffix}`;
  await p1.locator(tid('rename-list')).click();
  await p1.locator(tid('rename-list-name')).fill(renamed);
  await p1.locator(tid('rename-list-save')).click();
  await expectList(p1, renamed);
  await expectList(p2, renamed);
  await expect(p2, 'the renamed list in the index', listLink(p2, renamed));

  step("page 1 edits a task's text; page 2 shows it");
  await front(p1);
  await task(p1, 'Buy milk').locator(tid('task-edit')).click();
  await p1.locator(tid('task-edit-text')).fill('Buy oat milk');
  await p1.locator(tid('task-edit-text')).press('Enter');
  await expect(p2, 'task "Buy oat milk" to appear', task(p2, 'Buy oat milk'));
  await expect(p2, 'task "Buy milk" to go', task(p2, 'Buy milk'), 'detached');
  await expectTicked(p2, 'Buy oat milk');

  step("page 1 moves it to the public list: it leaves page 2's list and reaches page 3's");
  await front(p1);
  await task(p1, 'Buy oat milk').locator(tid('task-move')).selectOption({ label: publicName });
  await expect(p1, 'the moved task to leave the list', task(p1, 'Buy oat milk'), 'detached');
  await expect(p2, 'the moved task to leave the list', task(p2, 'Buy oat milk'), 'detached');
  await expect(p3, 'the moved task to arrive', task(p3, 'Buy oat milk'));
  await expectShows(p3, publicId, null);

  step('page 3 shows what is left to do; a task unticked elsewhere enters it');
  await front(p3);
  await p3.locator(tid('task-filter')).selectOption('false');
  await expect(p3, 'the done tasks to be filtered out', task(p3, 'Bring cake'), 'detached');
  await expect(p3, 'nothing left to do', p3.locator(tid('tasks-empty')));
  await front(p1);
  await listLink(p1, publicName).click();
  await expectList(p1, publicName);
  await tick(p1, 'Bring cake', false);
  await expect(p3, 'the unticked task to enter the filtered list', task(p3, 'Bring cake'));

  step('page 3 searches: only matching tasks enter, as GET filters them');
  await front(p3);
  await p3.locator(tid('task-search')).fill('CAKE');
  await addTask(p1, 'Paper plates');
  await addTask(p1, 'Cake forks');
  await expect(p3, 'the matching new task to enter', task(p3, 'Cake forks'));
  await expectShows(p3, publicId, null, { search: 'CAKE', done: 'false' });
  await front(p3);
  await p3.locator(tid('task-search')).fill('');
  await p3.locator(tid('task-filter')).selectOption('');
  await expectShows(p3, publicId, null);

  // --- The index of lists, across its pages --------------------------------
  step('page 4: a user with more lists than one page of the index sees them all');
  const carol = `carol-${suffix}`;
  await rest('POST', '/api/auth/register', null, { username: carol, password });
  const { token: carolToken } = await rest('POST', '/api/auth/login', null, { username: carol, password });
  const many = 101; // the API's pages hold 100
  for (let i = 1; i <= many; i++) await rest('POST', '/api/lists/', carolToken, { name: `carol ${i}`, public: false });
  const p4 = await openPage(await browser.newContext(), 'page 4');
  await front(p4);
  await p4.locator(tid('auth-username')).fill(carol);
  await p4.locator(tid('auth-password')).fill(password);
  await p4.locator(tid('login')).click();
  await expect(p4, `her list "carol ${many}", on the second page`, listLink(p4, `carol ${many}`));
  // Public lists of the other pages' user are in her index too.
  const indexSize = (await rest('GET', '/api/lists/?limit=1', carolToken)).count;
  try {
    await p4.waitForFunction((n) => document.querySelectorAll('[data-testid="list-link"]').length === n, indexSize, { timeout, polling: 100 });
  } catch {
    fail(p4, `shows ${await p4.locator(tid('list-link')).count()} lists, GET counts ${indexSize}`);
  }
  await expectLive(p4);
  await closePage(p4);

  // --- A server restart under two pages on one list ---------------------
  if (controlURL) {
    step('pages 1 and 2 on a new list');
    const restartName = `Restart ${suffix}`;
    const restartId = await createList(p1, restartName, false);
    for (const text of ['alpha', 'beta', 'gamma']) await addTask(p1, text);
    await openList(p2, restartId, restartName);
    await expect(p2, 'task "gamma"', task(p2, 'gamma'));
    await expectLive(p1);
    await expectLive(p2);
    const before = [await pageStats(p1), await pageStats(p2)];
    const known = [await shownListIds(p1), await shownListIds(p2)];
    const from = [p1.sockets.length, p2.sockets.length];

    step('the server stops: both pages say so');
    await control('stop');
    await expectReconnecting(p1);
    await expectReconnecting(p2);

    step('while it is down, another process writes to the database');
    const { rows } = await control('sql', {
      statements: [
        { sql: 'INSERT INTO tasks (text, done, list_id) VALUES (?, ?, ?)', args: ['written while down', false, restartId] },
        { sql: 'UPDATE tasks SET done = ? WHERE list_id = ? AND text = ?', args: [true, restartId, 'alpha'] },
        { sql: 'DELETE FROM tasks WHERE list_id = ? AND text = ?', args: [restartId, 'beta'] },
      ],
    });
    if (rows.join() !== '1,1,1') throw new Error(`the writes while down changed ${rows} rows, want 1 each`);

    step('it starts again on the same port; page 2 writes at once, page 1 once live');
    await control('start');
    // Through the API, which answers at once, while the pages' sockets may
    // still be waiting out their backoff.
    await addTask(p2, 'written after restart', reconnectTimeout);
    await expectLive(p1, reconnectTimeout);
    await expectLive(p2, reconnectTimeout);
    await tick(p1, 'written after restart');
    await expectTicked(p2, 'written after restart');

    step('both pages show exactly what GET answers');
    const want = await expectShows(p1, restartId, token);
    await expectShows(p2, restartId, token);
    const texts = want.map((t) => `${t.text}${t.done ? ' (done)' : ''}`).join(', ');
    if (texts !== 'alpha (done), gamma, written while down, written after restart (done)') {
      throw new Error(`GET answers ${texts}: the writes were not all applied`);
    }

    step('both pages resumed what they held: no snapshot, no refetch');
    for (const [i, page] of [p1, p2].entries()) {
      const { resumed, added } = expectResumed(page, from[i], restartId, known[i]);
      const after = await pageStats(page);
      if (after.snapshot - before[i].snapshot !== added) {
        fail(page, `loaded ${after.snapshot - before[i].snapshot} collections from a snapshot after the restart, for ${added} lists new to it`);
      }
      console.log(
        `   ${page.label}: ${resumed} subscriptions resumed, ${added} lists new to the page loaded;` +
          ` collections changed by resume ${after.resume - before[i].resume}, by broadcast ${after.broadcast - before[i].broadcast}`,
      );
    }
  } else {
    console.log('   (no CONTROL_URL: the restart is skipped)');
  }

  // --- Losing sight of lists ----------------------------------------------
  step('page 1 makes the public list private: it leaves page 3');
  await front(p1);
  await listLink(p1, publicName).click();
  await expectList(p1, publicName);
  await p1.locator(tid('toggle-public')).click();
  await expect(p1, 'the list to say private', p1.locator(tid('list-visibility'), { hasText: 'private' }));
  await expect(p3, 'the list to close', p3.locator(tid('no-list')));
  await expect(p3, 'to be told why', p3.locator(tid('message'), { hasText: /no longer visible/ }));
  await expect(p3, 'the list to leave the index', listLink(p3, publicName), 'detached');

  step("page 1 logs out: page 2, the same browser's other tab, loses the private lists");
  await front(p1);
  await p1.locator(tid('logout')).click();
  await expect(p1, 'to be signed out', p1.locator(tid('auth-form')));
  await expect(p1, 'the private list to leave the index', listLink(p1, renamed), 'detached');
  await expect(p2, 'to be signed out', p2.locator(tid('auth-form')));
  await expect(p2, 'the private list to leave the index', listLink(p2, renamed), 'detached');
  await expect(p2, 'its open private list to close', p2.locator(tid('no-list')));
  await expectLive(p1);
  await expectLive(p2);

  step('no page was reloaded, threw, or read tasks over REST');
  for (const page of pages) {
    if (!(await page.evaluate(() => window.__notReloaded === true))) fail(page, 'was reloaded');
    if (page.taskReads.length) fail(page, `read tasks over REST: ${page.taskReads.join(', ')}`);
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
console.log(`PASS: the pages stayed in sync through the WebSocket${controlURL ? ', across a server restart' : ''} (${seconds} s against ${base})`);
