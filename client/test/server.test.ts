// The client against the real example server, built from this checkout:
// subscriptions and their errors in both dialects, authentication by
// cookie and by token, and what a subscription goes through: a server
// restart and a resync. Live collections are in snapshot.test.ts.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { WebSocket } from "ws";
import { type Broadcast, ConnectionError, type ConnectionState, LiveClient, type ResyncReason, type StateInfo, SubscriptionError } from "../src/index.js";
import { Queue, within } from "./helpers.js";
import { type Task, world } from "./scenarios.js";
import { Api, Redis, buildApp, login, register, sqlite, tempDir } from "./server.js";

let bin = "";
let removeBuild = async () => {};
before(async () => {
  const { dir, remove } = await tempDir();
  removeBuild = remove;
  bin = await buildApp(dir);
});
after(() => removeBuild());

describe("subscriptions", () => {
  test("subscribe, receive, unsubscribe: nothing arrives after", async (t) => {
    const { app, api, lists } = await world(t, bin);
    const task = await api.must("POST", "/api/tasks/", { text: "buy milk", list: lists[0] });
    const client = new LiveClient({ url: app.ws, WebSocket });
    t.after(() => client.close());
    const one = new Queue<Broadcast<Task>>();
    const all = new Queue<Broadcast<Task>>();
    const sub = client.subscribe<Task>({ model: "todolist.Task", value: task.id }, { onBroadcast: one.push });
    const group = client.subscribe<Task>({ model: "todolist.Task", groupBy: "list_id", value: lists[0]! }, { onBroadcast: all.push });
    await within(Promise.all([sub.ready, group.ready]), "ready");

    const done = await api.must("PATCH", `/api/tasks/${task.id}/`, { done: true });
    const b = await one.next("the update");
    assert.equal(b.action, "UPDATED");
    assert.deepEqual(b.instance, done, "the instance is what REST answers");
    assert.deepEqual(b.instance, await api.must("GET", `/api/tasks/${task.id}/`));
    await all.next("the group's update");

    await within(sub.unsubscribe(), "unsubscribe");
    await api.must("PATCH", `/api/tasks/${task.id}/`, { text: "buy oat milk" });
    // The group's broadcast of the same write comes after the one the
    // unsubscribed subscription would have had.
    assert.equal((await all.next("the group's second update")).instance.text, "buy oat milk");
    assert.equal(one.pending.length, 0);
  });

  test("refusals reject ready with the server's code and message", async (t) => {
    const { app, lists } = await world(t, bin);
    const client = new LiveClient({ url: app.ws, WebSocket });
    t.after(() => client.close());
    const cases = [
      { target: { model: "todolist.Nope", value: 1 }, code: 404 },
      { target: { model: "todolist.Task", value: 999_999 }, code: 404 },
      { target: { model: "todolist.Task", groupBy: "text", value: "x" }, code: 400 },
      { target: { model: "todolist.Task", groupBy: "list_id", value: lists[0]!, query: { done: "maybe" } }, code: 400 },
    ];
    for (const { target, code } of cases) {
      const errors = new Queue<SubscriptionError>();
      const sub = client.subscribe(target, { onError: errors.push });
      await assert.rejects(sub.ready, (err: unknown) => {
        assert.ok(err instanceof SubscriptionError, String(err));
        assert.equal(err.code, code, `${JSON.stringify(target)}: ${err.message}`);
        assert.ok(err.message.length > 0);
        return true;
      });
      assert.equal((await errors.next("onError")).code, code);
      assert.equal(sub.status, "closed");
    }
    assert.equal(client.state, "open", "refusals leave the connection open");
  });

  test("the typed dialect (django-rest-live 0.4)", async (t) => {
    const { app, api, lists } = await world(t, bin);
    const client = new LiveClient({ url: app.ws, WebSocket, dialect: "typed" });
    t.after(() => client.close());
    const got = new Queue<Broadcast<Task>>();
    const list = client.subscribe({ model: "todolist.Task", query: { list: lists[1]! } }, { onBroadcast: got.push });
    await within(list.ready, "ready");
    const task = await api.must("POST", "/api/tasks/", { text: "typed", list: lists[1] });
    assert.deepEqual(await got.next("the creation"), { action: "CREATED", instance: task });
    await assert.rejects(client.subscribe({ model: "todolist.Task", value: 999_999 }).ready, (e: unknown) => e instanceof SubscriptionError && e.code === 404);
  });

  test("a session cookie authenticates through the socket factory; without it a private list is not found", async (t) => {
    const { app } = await world(t, bin);
    await register(app.base, "bob");
    const cookie = await login(app.base, "bob");
    const bob = new Api(app.base, { cookie });
    const secret = await bob.must("POST", "/api/lists/", { name: "secret", public: false });

    const anonymous = new LiveClient({ url: app.ws, WebSocket });
    t.after(() => anonymous.close());
    await assert.rejects(anonymous.subscribe({ model: "todolist.List", value: secret.id }).ready, (e: unknown) => e instanceof SubscriptionError && e.code === 404);

    const client = new LiveClient({ url: app.ws, createSocket: (url, protocols) => new WebSocket(url, protocols, { headers: { Cookie: cookie } }) });
    t.after(() => client.close());
    const got = new Queue<Broadcast<unknown>>();
    await within(client.subscribe({ model: "todolist.List", value: secret.id }, { onBroadcast: got.push }).ready, "ready");
    await bob.must("PATCH", `/api/lists/${secret.id}/`, { name: "still secret" });
    assert.deepEqual((await got.next("the rename")).instance, { ...secret, name: "still secret" });
  });
});

describe("a subscription across", () => {
  test("a server restart (1001): reconnects, resubscribes, tells the handler, and receives again", async (t) => {
    const { app, api, lists } = await world(t, bin);
    const states = new Queue<[ConnectionState, StateInfo]>();
    const client = new LiveClient({ url: app.ws, WebSocket, retryDelay: (n) => Math.min(1000, 50 * 2 ** n) });
    t.after(() => client.close());
    client.onStateChange((state, info) => states.push([state, info]));
    const resyncs = new Queue<ResyncReason>();
    const got = new Queue<Broadcast<Task>>();
    const sub = client.subscribe<Task>({ model: "todolist.Task", groupBy: "list_id", value: lists[0]! }, { onResync: resyncs.push, onBroadcast: got.push });
    await within(sub.ready, "ready");

    await app.stop("SIGTERM"); // a clean stop closes the WebSockets with 1001
    let state: ConnectionState, info: StateInfo;
    do [state, info] = await states.next("reconnecting");
    while (state !== "reconnecting");
    assert.equal(info.code, 1001);
    await sqlite(app.db, `INSERT INTO tasks (text, done, list_id) VALUES ('while down', 0, ${lists[0]})`);
    await app.start();
    assert.equal(await resyncs.next("onResync", 30_000), "reconnected");
    assert.equal(sub.status, "live");

    const task = await api.must("POST", "/api/tasks/", { text: "after the restart", list: lists[0] });
    for (;;) {
      // The write made while the server was down may come first: the
      // server publishes it when it is back.
      const b = await got.next("the creation", 30_000);
      if (b.instance.id === task.id) break;
      assert.equal(b.instance.text, "while down");
    }
  });

  test("a broker outage: the server's resync reaches the handler, and broadcasts go on", async (t) => {
    const { dir, remove } = await tempDir();
    t.after(remove);
    const redis = await Redis.start(dir);
    if (!redis) return t.skip("RESTLIVE_REDIS_SERVER is not set (./test.sh sets it)");
    t.after(() => redis.stop());
    const { app, api, lists } = await world(t, bin, async () => ["-redis", redis.url]);
    const client = new LiveClient({ url: app.ws, WebSocket });
    t.after(() => client.close());
    const resyncs = new Queue<ResyncReason>();
    const got = new Queue<Broadcast<Task>>();
    const sub = client.subscribe<Task>({ model: "todolist.Task", groupBy: "list_id", value: lists[1]! }, { onResync: resyncs.push, onBroadcast: got.push });
    await within(sub.ready, "ready");

    await redis.stop();
    await redis.start();
    assert.equal(await resyncs.next("onResync", 30_000), "resync");
    const task = await api.must("POST", "/api/tasks/", { text: "after the outage", list: lists[1] });
    assert.deepEqual(await got.next("the creation", 30_000), { action: "CREATED", instance: task });
    assert.equal(client.state, "open", "a resync is no reconnect");
  });
});

describe("a token as a subprotocol", () => {
  test("authenticates a connection as the token's user", async (t) => {
    const { app } = await world(t, bin);
    const token = await register(app.base, "carol");
    const carol = new Api(app.base, { token });
    const secret = await carol.must("POST", "/api/lists/", { name: "carol's", public: false });
    const client = new LiveClient({ url: app.ws, WebSocket, token });
    t.after(() => client.close());
    await within(client.subscribe({ model: "todolist.List", value: secret.id }).ready, "ready");
  });

  test("a token the server refuses (4003) fails the client instead of retrying", async (t) => {
    const { app } = await world(t, bin);
    const attempts: number[] = [];
    const client = new LiveClient({ url: app.ws, WebSocket, token: "deadbeef", retryDelay: (n) => (attempts.push(n), 0) });
    t.after(() => client.close());
    const failed = new Promise<StateInfo>((resolve) => client.onStateChange((state, info) => state === "failed" && resolve(info)));
    const info = await within(failed, "the client to fail");
    assert.ok(info.error instanceof ConnectionError);
    assert.equal(info.error.code, 4003);
    assert.deepEqual(attempts, []);
  });
});
