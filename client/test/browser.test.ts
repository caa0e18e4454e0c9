// The built package in real headless Chromium, served from the example
// app's origin: ESM, the browser's own WebSocket, a session cookie, a token
// offered as a subprotocol (which Chromium checks the server selected), and
// a live collection kept current.
//
// It needs RESTLIVE_CHROMIUM (the browser, as ./test.sh sets it) and
// playwright-core, which ./test.sh installs for the example's browser test
// (examples/todolist/browsertest); it skips without them.

import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";
import { world } from "./scenarios.js";
import { Api, ROOT, buildApp, login, register, tempDir } from "./server.js";

// The little of playwright-core used here.
interface Page {
  goto(url: string): Promise<unknown>;
  evaluate<R, A>(fn: (arg: A) => R | Promise<R>, arg: A): Promise<R>;
  waitForFunction<A>(fn: (arg: A) => boolean, arg: A, options: { timeout: number }): Promise<unknown>;
}
interface Context {
  route(url: string, handler: (route: { request(): { url(): string }; fulfill(r: { status?: number; contentType?: string; body: string }): Promise<void> }) => unknown): Promise<void>;
  newPage(): Promise<Page>;
  addCookies(cookies: { name: string; value: string; url: string }[]): Promise<void>;
  close(): Promise<void>;
}
interface Browser {
  newContext(): Promise<Context>;
  close(): Promise<void>;
}

function playwright(): { chromium: { launch(o: object): Promise<Browser> } } | null {
  try {
    return createRequire(join(ROOT, "examples/todolist/browsertest/package.json"))("playwright-core");
  } catch {
    return null;
  }
}

const chromiumPath = process.env["RESTLIVE_CHROMIUM"];
const pw = chromiumPath ? playwright() : null;
const skip = !chromiumPath ? "RESTLIVE_CHROMIUM is not set (./test.sh sets it)" : !pw ? "playwright-core is not installed in examples/todolist/browsertest (./test.sh installs it)" : false;

const DIST = fileURLToPath(new URL("../../dist/", import.meta.url));

let bin = "";
let browser: Browser | undefined;
let removeBuild = async () => {};
before(async () => {
  if (skip) return;
  const { dir, remove } = await tempDir();
  removeBuild = remove;
  bin = await buildApp(dir);
  browser = await pw!.chromium.launch({
    executablePath: chromiumPath,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
    timeout: 30_000,
  });
});
after(async () => {
  await browser?.close();
  await removeBuild();
});

// A page of the app's origin, on which /client/ serves the built package.
async function clientPage(base: string, cookie?: string): Promise<{ page: Page; context: Context }> {
  const context = await browser!.newContext();
  if (cookie) {
    const [name, value] = cookie.split("=") as [string, string];
    await context.addCookies([{ name, value, url: base }]);
  }
  await context.route(`${base}/client/**`, async (route) => {
    const file = new URL(route.request().url()).pathname.replace(/^\/client\//, "");
    await route.fulfill({ contentType: "text/javascript", body: await readFile(join(DIST, file), "utf8") });
  });
  const page = await context.newPage();
  // The app's own page, served by the server: Chromium lets a page whose
  // document did not come from a loopback address (one a route made up)
  // open no WebSocket to one (local network access checks).
  await page.goto(`${base}/`);
  return { page, context };
}

test("in Chromium: a token, a cookie, refusals, and a live collection kept current", { skip }, async (t) => {
  const { app } = await world(t, bin);
  const token = await register(app.base, "dora");
  const dora = new Api(app.base, { token });
  const secret = await dora.must("POST", "/api/lists/", { name: "dora's", public: false });
  await dora.must("POST", "/api/tasks/", { text: "one", list: secret.id });

  // A token, offered as a subprotocol; the collection follows a REST write.
  const { page, context } = await clientPage(app.base);
  t.after(() => context.close());
  const first = await page.evaluate(
    async ({ token, list }) => {
      const { LiveClient } = await import("/client/index.js" as string);
      const client = new LiveClient({ url: "/ws/subscribe/", token });
      const tasks = client.collection({ model: "todolist.Task", groupBy: "list_id", value: list });
      await tasks.ready;
      (globalThis as Record<string, unknown>)["tasks"] = tasks;
      return tasks.items.map((x: { text: string }) => x.text);
    },
    { token, list: secret.id },
  );
  assert.deepEqual(first, ["one"]);
  await dora.must("POST", "/api/tasks/", { text: "two", list: secret.id });
  await page.waitForFunction(() => (globalThis as any).tasks.size === 2, undefined, { timeout: 15_000 });

  // Anonymous, the private list is not found; with the session cookie it is.
  const refused = await page.evaluate(async (list) => {
    const { LiveClient, SubscriptionError } = await import("/client/index.js" as string);
    const client = new LiveClient({ url: "/ws/subscribe/" });
    try {
      await client.subscribe({ model: "todolist.List", value: list }).ready;
      return "live";
    } catch (error) {
      return error instanceof SubscriptionError ? `refused ${(error as { code: number }).code}` : String(error);
    } finally {
      client.close();
    }
  }, secret.id);
  assert.equal(refused, "refused 404");

  const session = await clientPage(app.base, await login(app.base, "dora"));
  t.after(() => session.context.close());
  const withCookie = await session.page.evaluate(async (list) => {
    const { LiveClient } = await import("/client/index.js" as string);
    const client = new LiveClient({ url: "/ws/subscribe/" });
    await client.subscribe({ model: "todolist.List", value: list }).ready;
    client.close();
    return "live";
  }, secret.id);
  assert.equal(withCookie, "live");
});
