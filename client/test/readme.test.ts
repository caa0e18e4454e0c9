// The README's examples, run against a scripted server, and the check that
// every example in the README is one of them, word for word.
//
// A "// #region name" ... "// #endregion" block here is the code of the
// README block that follows "<!-- example: name -->". Import lines of
// React and Svelte are left out here: the bindings are tested by the
// contracts those frameworks rely on, without them.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, test } from "node:test";
import { type LiveCollection, LiveClient, SubscriptionError } from "@restlive/client";
import { WebSocket } from "ws";
import { FakeServer } from "./fake.js";
import { Queue, within } from "./helpers.js";

interface Task {
  id: number;
  text: string;
  done: boolean;
  list: number;
}

const README = readFileSync(new URL("../../README.md", import.meta.url), "utf8");
const SOURCE = readFileSync(new URL("../../test/readme.test.ts", import.meta.url), "utf8");

// The code of each region of this file, dedented.
function regions(): Map<string, string> {
  const found = new Map<string, string>();
  for (const m of SOURCE.matchAll(/^( *)\/\/ #region (\S+)\n([\s\S]*?)^ *\/\/ #endregion/gm)) {
    const indent = m[1]!.length;
    found.set(m[2]!, m[3]!.split("\n").map((line) => line.slice(indent)).join("\n").trimEnd());
  }
  return found;
}

test("every example in the README is code that a test runs", () => {
  const code = regions();
  const blocks = [...README.matchAll(/<!-- example: (\S+) -->\n```ts\n([\s\S]*?)```/g)];
  assert.ok(blocks.length >= 6, `found ${blocks.length} examples`);
  for (const [, name, body] of blocks) {
    const lines = body!.trimEnd().split("\n");
    const imports = lines.filter((l) => l.startsWith("import "));
    for (const line of imports) {
      const [, names, from] = /^import \{ (.*) \} from "(.*)";$/.exec(line) ?? [];
      assert.ok(names && from, `example ${name}: an import of a form the check does not read: ${line}`);
      if (from === "react" || from.startsWith("svelte")) continue; // the frameworks are not pulled in
      const imported = SOURCE.match(new RegExp(`^import \\{ (.*) \\} from "${from}";$`, "m"))?.[1]?.split(", ") ?? [];
      for (const n of names.split(", ")) {
        assert.ok(imported.includes(n) || imported.includes(`type ${n}`), `example ${name}: the test does not import ${n} from ${from}`);
      }
    }
    const rest = lines.slice(imports.length).join("\n").trim();
    assert.ok(code.has(name!), `example ${name} has no region in readme.test.ts`);
    assert.equal(rest, code.get(name!)!.trim(), `example ${name} differs from its region`);
  }
  const used = new Set(blocks.map((b) => b[1]));
  for (const name of code.keys()) assert.ok(used.has(name), `region ${name} is in no README example`);
});

// A page served by the fake server's origin, so that the browser examples
// run as they are: a relative URL, the global WebSocket.
async function page(t: { after(fn: () => unknown): void }) {
  const server = await FakeServer.start();
  const g = globalThis as { location?: unknown; WebSocket?: unknown };
  g.location = { href: server.url.replace("ws:", "http:").replace("/ws/subscribe/", "/app/") };
  g.WebSocket = WebSocket;
  t.after(async () => {
    delete g.location;
    delete g.WebSocket;
    await server.close();
  });
  return server;
}

describe("README", () => {
  test("connect with cookies, subscribe, handle errors, unsubscribe", async (t) => {
    const server = await page(t);
    const shown = new Queue<string>();
    const show = (action: string, task: Task) => shown.push(`${action} ${task.text}`);
    const refetch = () => {};
    const warned = new Queue<string>();
    const console = { warn: (...args: unknown[]) => warned.push(args.join(" ")) };

    // #region connect
    const client = new LiveClient({ url: "/ws/subscribe/" });
    // #endregion
    t.after(() => client.close());
    const conn = await server.accept();
    assert.deepEqual(conn.protocols, [], "no token: cookies authenticate");

    const script = (async () => {
      const one = await conn.next();
      conn.send({ type: "subscribed", request_id: one["request_id"] });
      const group = await conn.next();
      assert.deepEqual(group["query_params"], { search: "milk" });
      conn.send({ type: "subscribed", request_id: group["request_id"] });
      conn.send({ type: "broadcast", request_id: group["request_id"], model: "todolist.Task", action: "UPDATED", instance: { id: 1, text: "buy milk" } });
      const third = await conn.next();
      conn.send({ type: "error", request_id: third["request_id"], code: 404, message: "Not found." });
      const unsubscribe = await conn.next();
      assert.equal(unsubscribe["request_id"], one["request_id"]);
      conn.send({ type: "unsubscribed", request_id: one["request_id"] });
    })();

    // #region subscribe
    // One instance, by primary key:
    const task = client.subscribe<Task>({ model: "todolist.Task", value: 1 });
    // A group, with view arguments and query parameters (what ?search=milk would filter):
    const milk = client.subscribe<Task>(
      { model: "todolist.Task", groupBy: "list_id", value: 14, query: { search: "milk" } },
      {
        onBroadcast: ({ action, instance }) => show(action, instance), // "CREATED", "UPDATED" or "DELETED"
        onResync: () => refetch(), // broadcasts may have been missed: reload what you show
        onError: (error) => console.warn("ended:", error.code, error.message), // refused, or ended by the server
      },
    );
    await milk.ready; // live: every change committed from now on is broadcast
    // #endregion
    assert.equal(await shown.next("the broadcast"), "UPDATED buy milk");

    // #region errors
    try {
      await client.subscribe({ model: "todolist.Task", value: 404 }).ready;
    } catch (error) {
      if (!(error instanceof SubscriptionError)) throw error;
      console.warn(error.code, error.message); // 404 Not found.
    }
    // #endregion
    assert.equal(await warned.next("the warning"), "404 Not found.");

    // #region unsubscribe
    await task.unsubscribe(); // nothing is delivered after this call
    // #endregion
    await within(script, "the server's script");
  });

  test("a token, read before every connection", async (t) => {
    const server = await page(t);
    const auth = { token: "9c1e0f" };
    // #region token
    const client = new LiveClient({
      url: "/ws/subscribe/",
      token: () => auth.token, // offered as the subprotocol "restlive.token.<token>"
    });
    // #endregion
    t.after(() => client.close());
    assert.deepEqual((await server.accept()).protocols, ["restlive", "restlive.token.9c1e0f"]);
  });

  test("Node, with headers through ws", async (t) => {
    const server = await FakeServer.start();
    t.after(() => server.close());
    const url = server.url;
    const token = "9c1e0f";
    // #region node
    const client = new LiveClient({
      url, // "ws://localhost:8000/ws/subscribe/"
      createSocket: (url, protocols) => new WebSocket(url, protocols, { headers: { Authorization: `Token ${token}` } }),
    });
    // #endregion
    t.after(() => client.close());
    assert.equal((await server.accept()).headers["authorization"], "Token 9c1e0f");
  });

  test("a live collection, its listeners, and the connection's state", async (t) => {
    const server = await page(t);
    const client = new LiveClient({ url: "/ws/subscribe/" });
    t.after(() => client.close());
    const conn = await server.accept();
    const rendered = new Queue<readonly Task[]>();
    const render = rendered.push;
    const log = new Queue<string>();
    const banner = (text: string | null) => log.push(`banner ${text}`);
    const signIn = (error: unknown) => log.push(`sign in: ${String(error)}`);
    const console = { log: (..._: unknown[]) => {} };

    const script = (async () => {
      const sub = await conn.next();
      assert.equal(sub["snapshot"], true);
      conn.send({ type: "snapshot", request_id: sub["request_id"], instances: [{ id: 1, text: "buy milk", done: false, list: 14 }] });
      conn.send({ type: "subscribed", request_id: sub["request_id"], offset: "o1" });
      conn.send({ type: "broadcast", request_id: sub["request_id"], action: "CREATED", instance: { id: 2, text: "bread", done: false, list: 14 }, offset: "o2" });
    })();

    // #region collection
    const tasks = client.collection<Task>({ model: "todolist.Task", groupBy: "list_id", value: 14 });
    const stop = tasks.onChange(({ added, updated, removed, cause }) => {
      // cause: "snapshot", "resume" or "broadcast"; one call per change, however many instances
      console.log(cause, added.length, updated.length, removed.length);
      render(tasks.items); // the same array until the next change
    });
    await tasks.ready; // holds the scope's instances now, and keeps them current
    tasks.get(1); // the task whose id is 1, or undefined
    // #endregion
    assert.deepEqual((await rendered.next("the snapshot")).map((x) => x.id), [1]);
    assert.deepEqual((await rendered.next("the broadcast")).map((x) => x.id), [1, 2]);
    await script;

    // #region state
    client.onStateChange((state, { retryIn, error }) => {
      if (state === "open") banner(null);
      if (state === "reconnecting") banner(`Connection lost; retrying in ${Math.ceil(retryIn! / 1000)} s`);
      if (state === "failed") signIn(error); // 4003: sign in again, then call client.reconnect()
    });
    // #endregion
    conn.close(4003, "authentication required");
    assert.match(await log.next("the failure"), /^sign in: ConnectionError: .*4003/);

    stop();
    await tasks.close();
  });

  test("a Svelte store, by the store contract", async (t) => {
    const { tasks, conn, id } = await loadedCollection(t);
    // #region svelte
    function liveStore<T>(collection: LiveCollection<T>) {
      return {
        subscribe(run: (items: readonly T[]) => void): () => void {
          run(collection.items);
          return collection.onChange(() => run(collection.items));
        },
      };
    }
    // #endregion
    // The contract: subscribe calls run at once with the value, then on
    // every change, until the returned function is called.
    const store = liveStore(tasks);
    const values = new Queue<readonly Task[]>();
    const unsubscribe = store.subscribe(values.push);
    assert.deepEqual((await values.next("the value, at once")).map((x) => x.id), [1]);
    conn.send({ type: "broadcast", request_id: id, action: "DELETED", instance: { id: 1 }, offset: "o2" });
    assert.deepEqual(await values.next("the change"), []);
    unsubscribe();
    conn.send({ type: "broadcast", request_id: id, action: "CREATED", instance: { id: 3 }, offset: "o3" });
    await until(() => tasks.size === 1);
    assert.equal(values.pending.length, 0, "no call after unsubscribe");
  });

  test("a React hook, by the useSyncExternalStore contract", async (t) => {
    const { tasks, conn, id } = await loadedCollection(t);
    // React's useSyncExternalStore, reduced to what the hook relies on:
    // getSnapshot returns the same value until the store calls back (else
    // React renders forever), and subscribe returns its unsubscribe.
    const renders = new Queue<readonly Task[]>();
    let unsubscribe = () => {};
    function useSyncExternalStore<S>(subscribe: (onStoreChange: () => void) => () => void, getSnapshot: () => S): S {
      const snapshot = getSnapshot();
      assert.equal(getSnapshot(), snapshot, "getSnapshot is stable between changes");
      unsubscribe = subscribe(() => {
        if (getSnapshot() !== snapshot) renders.push(getSnapshot() as readonly Task[]);
      });
      return snapshot;
    }
    // #region react
    function useLive<T>(collection: LiveCollection<T>): readonly T[] {
      return useSyncExternalStore(collection.onChange, () => collection.items);
    }
    // #endregion
    assert.deepEqual(useLive(tasks).map((x) => x.id), [1]);
    conn.send({ type: "broadcast", request_id: id, action: "CREATED", instance: { id: 2 }, offset: "o2" });
    assert.deepEqual((await renders.next("a render")).map((x) => x.id), [1, 2]);
    unsubscribe();
    conn.send({ type: "broadcast", request_id: id, action: "CREATED", instance: { id: 3 }, offset: "o3" });
    await until(() => tasks.size === 3);
    assert.equal(renders.pending.length, 0);
  });
});

// A collection with one task, loaded from the fake server.
async function loadedCollection(t: { after(fn: () => unknown): void }) {
  const server = await FakeServer.start();
  const client = new LiveClient({ url: server.url, WebSocket });
  t.after(async () => {
    client.close();
    await server.close();
  });
  const conn = await server.accept();
  const tasks = client.collection<Task>({ model: "todolist.Task", groupBy: "list_id", value: 14 });
  const sub = await conn.next();
  conn.send({ type: "snapshot", request_id: sub["request_id"], instances: [{ id: 1, text: "a", done: false, list: 14 }] });
  conn.send({ type: "subscribed", request_id: sub["request_id"], offset: "o1" });
  await within(tasks.ready, "ready");
  return { tasks, conn, id: sub["request_id"] };
}

// Resolves once check() is true; the collection's own listeners run first.
async function until(check: () => boolean): Promise<void> {
  await within(
    (async () => {
      while (!check()) await new Promise((resolve) => setImmediate(resolve));
    })(),
    "a condition",
  );
}
