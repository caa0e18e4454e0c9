// The client's protocol state machine against a scripted server: frames,
// ready and errors, unsubscribe, request ids, reconnect and resubscribe,
// close codes, backoff, tokens.

import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { WebSocket } from "ws";
import { type Broadcast, ConnectionError, type ResyncReason, SubscriptionError, fullJitter } from "../src/index.js";
import type { FakeConn, Frame } from "./fake.js";
import { Queue, within } from "./helpers.js";
import { reach, setup } from "./setup.js";

const TASKS = { model: "todolist.Task", groupBy: "list_id", value: 14 };

// Answers the next subscribe frame with "subscribed" and returns it.
async function ack(conn: FakeConn, extra: Frame = {}): Promise<Frame> {
  const frame = await conn.next("a subscribe frame");
  conn.send({ type: "subscribed", request_id: frame["request_id"], ...extra });
  return frame;
}

describe("subscribe", () => {
  test("sends the seed dialect's frame for a group, with arguments and query parameters, and for an instance", async (t) => {
    const { server, client } = await setup(t);
    const conn = await server.accept();
    client.subscribe({ ...TASKS, args: { list: 14 }, query: { search: "milk", tag: ["a", "b"] } });
    client.subscribe({ model: "todolist.Task", value: 1 });
    assert.deepEqual(await conn.next(), {
      request_id: 1,
      model: "todolist.Task",
      group_by: "list_id",
      value: 14,
      arguments: { list: 14 },
      query_params: { search: "milk", tag: ["a", "b"] },
      ack: true,
    });
    assert.deepEqual(await conn.next(), { request_id: 2, model: "todolist.Task", value: 1, ack: true });
  });

  test("speaks the typed dialect of django-rest-live 0.4, both ways", async (t) => {
    const { server, client } = await setup(t, { dialect: "typed" });
    const conn = await server.accept();
    const broadcasts = new Queue<Broadcast<unknown>>();
    const one = client.subscribe({ model: "todolist.Task", value: 5, args: { list: 14 } }, { onBroadcast: broadcasts.push });
    client.subscribe({ model: "todolist.Task", query: { list_id: 14 } });
    assert.deepEqual(await conn.next(), {
      type: "subscribe",
      id: 1,
      model: "todolist.Task",
      action: "retrieve",
      lookup_by: 5,
      view_kwargs: { list: 14 },
      ack: true,
    });
    assert.deepEqual(await conn.next(), { type: "subscribe", id: 2, model: "todolist.Task", action: "list", query_params: { list_id: 14 }, ack: true });
    conn.send({ type: "subscribed", id: 1 });
    await within(one.ready, "ready");
    conn.send({ type: "broadcast", id: 1, model: "todolist.Task", action: "UPDATED", instance: { id: 5 } });
    assert.deepEqual(await broadcasts.next("a broadcast"), { action: "UPDATED", instance: { id: 5 } });
    const done = one.unsubscribe();
    assert.deepEqual(await conn.next(), { type: "unsubscribe", id: 1, ack: true });
    conn.send({ type: "unsubscribed", id: 1 });
    await within(done, "unsubscribe");
    assert.throws(() => client.subscribe(TASKS), TypeError, "the typed dialect has no group_by");
  });

  test("refuses targets the dialect cannot express, where they are made", async (t) => {
    const { client } = await setup(t);
    assert.throws(() => client.subscribe({ model: "todolist.Task" }), /needs a value/);
    assert.throws(() => client.subscribe({ model: "", value: 1 }), /needs a model/);
  });

  test("resolves ready when live, delivers broadcasts in order, rejects with the server's code and message", async (t) => {
    const { server, client } = await setup(t);
    const conn = await server.accept();
    const broadcasts = new Queue<Broadcast<{ id: number; n: number }>>();
    const refusals = new Queue<SubscriptionError>();
    const good = client.subscribe<{ id: number; n: number }>(TASKS, { onBroadcast: broadcasts.push });
    const bad = client.subscribe({ model: "todolist.Nope", value: 1 }, { onError: refusals.push });
    assert.equal(good.status, "subscribing");
    const first = await ack(conn);
    const second = await conn.next();
    conn.send({ type: "error", request_id: second["request_id"], code: 404, message: "unknown model todolist.Nope" });
    await within(good.ready, "ready");
    assert.equal(good.status, "live");
    await assert.rejects(bad.ready, (err: unknown) => {
      assert.ok(err instanceof SubscriptionError);
      assert.equal(err.code, 404);
      assert.equal(err.message, "unknown model todolist.Nope");
      return true;
    });
    assert.equal((await refusals.next("onError")).code, 404);
    assert.equal(bad.status, "closed");
    assert.equal((bad.error as SubscriptionError).code, 404);

    for (let n = 1; n <= 3; n++) {
      conn.send({ type: "broadcast", request_id: first["request_id"], model: "todolist.Task", action: "UPDATED", instance: { id: 1, n } });
    }
    for (let n = 1; n <= 3; n++) assert.equal((await broadcasts.next(`broadcast ${n}`)).instance.n, n);
  });

  test("an error for a live subscription ends it, and it is not made again on the next connection", async (t) => {
    const { server, client } = await setup(t);
    let conn = await server.accept();
    const errors = new Queue<SubscriptionError>();
    const ended = client.subscribe(TASKS, { onError: errors.push });
    const kept = client.subscribe({ model: "todolist.List", value: 14 });
    const frame = await ack(conn);
    await ack(conn);
    await within(ended.ready, "ready");
    conn.send({ type: "error", request_id: frame["request_id"], code: 413, message: "too many instances in scope" });
    const error = await errors.next("onError");
    assert.equal(error.code, 413);
    assert.equal(ended.status, "closed");
    assert.equal(ended.error, error);

    conn.terminate();
    conn = await server.accept();
    const again = await conn.next();
    assert.equal(again["model"], "todolist.List", "only the subscription still active is made again");
    conn.send({ type: "subscribed", request_id: again["request_id"] });
    await within(kept.ready, "ready");
  });
});

describe("unsubscribe", () => {
  test("sends unsubscribe, resolves on the server's answer, and delivers nothing after it is called", async (t) => {
    const { server, client } = await setup(t);
    const conn = await server.accept();
    const broadcasts = new Queue<Broadcast<unknown>>();
    const sub = client.subscribe(TASKS, { onBroadcast: broadcasts.push });
    const frame = await ack(conn);
    await within(sub.ready, "ready");
    const done = sub.unsubscribe();
    assert.equal(sub.status, "closed");
    assert.deepEqual(await conn.next(), { request_id: frame["request_id"], unsubscribe: true, ack: true });
    // A broadcast already on its way when the client unsubscribed.
    conn.send({ type: "broadcast", request_id: frame["request_id"], model: "todolist.Task", action: "CREATED", instance: { id: 1 } });
    conn.send({ type: "unsubscribed", request_id: frame["request_id"] });
    await within(done, "unsubscribe to resolve");
    assert.equal(broadcasts.pending.length, 0);
    await sub.unsubscribe(); // a second call does nothing
  });

  test("before the server answers: sent after the subscribe, and ready rejects", async (t) => {
    const { server, client } = await setup(t);
    const conn = await server.accept();
    const sub = client.subscribe(TASKS);
    const subscribe = await conn.next();
    const done = sub.unsubscribe();
    assert.deepEqual(await conn.next(), { request_id: subscribe["request_id"], unsubscribe: true, ack: true });
    await assert.rejects(sub.ready, ConnectionError);
    // The server refused the subscribe meanwhile: its error answers the
    // unsubscribe too, which resolves.
    conn.send({ type: "error", request_id: subscribe["request_id"], code: 404, message: "unknown" });
    await within(done, "unsubscribe");
  });

  test("while disconnected: resolves at once, and the next connection does not subscribe it", async (t) => {
    const { server, client, states } = await setup(t, { retryDelay: () => 60_000 });
    let conn = await server.accept();
    const gone = client.subscribe(TASKS);
    const kept = client.subscribe({ model: "todolist.List", value: 1 });
    await ack(conn);
    await ack(conn);
    conn.close(1001, "going away");
    await reach(states, "reconnecting");
    await within(gone.unsubscribe(), "unsubscribe");
    client.reconnect();
    conn = await server.accept();
    const frame = await ack(conn);
    assert.equal(frame["model"], "todolist.List");
    await within(kept.ready, "ready");
    assert.equal(conn.unread.length, 0);
  });
});

describe("reconnect", () => {
  test("resubscribes everything with new request ids, in order, and says broadcasts may have been missed", async (t) => {
    const { server, client } = await setup(t);
    let conn = await server.accept();
    const resyncs = new Queue<ResyncReason>();
    const a = client.subscribe(TASKS, { onResync: resyncs.push });
    const b = client.subscribe({ model: "todolist.List", value: 14 });
    const ids = [(await ack(conn))["request_id"], (await ack(conn))["request_id"]];
    await within(Promise.all([a.ready, b.ready]), "ready");

    conn.terminate(); // no close frame: as when the network drops
    conn = await server.accept();
    const [fa, fb] = [await conn.next(), await conn.next()];
    assert.equal(fa["model"], "todolist.Task");
    assert.equal(fb["model"], "todolist.List");
    assert.equal(a.status, "subscribing");
    ids.push(fa["request_id"], fb["request_id"]);
    assert.equal(new Set(ids).size, 4, `request ids are never reused: ${ids}`);
    conn.send({ type: "subscribed", request_id: fa["request_id"] });
    assert.equal(await resyncs.next("onResync"), "reconnected");
    assert.equal(a.status, "live");
  });

  test("a subscription made while disconnected is sent once connected", async (t) => {
    const { server, client, states } = await setup(t, { retryDelay: () => 60_000 });
    let conn = await server.accept();
    conn.close(1013, "try again later");
    await reach(states, "reconnecting");
    const sub = client.subscribe(TASKS);
    client.reconnect();
    conn = await server.accept();
    await ack(conn);
    await within(sub.ready, "ready");
  });

  test("passes resync to the handler", async (t) => {
    const { server, client } = await setup(t);
    const conn = await server.accept();
    const resyncs = new Queue<ResyncReason>();
    client.subscribe(TASKS, { onResync: resyncs.push });
    const frame = await ack(conn);
    conn.send({ type: "resync", request_id: frame["request_id"] });
    assert.equal(await resyncs.next("onResync"), "resync");
  });
});

describe("429", () => {
  test("refusing a resubscribe: tried again after the backoff's delay, on the same connection", async (t) => {
    const delays: number[] = [];
    const { server, client } = await setup(t, { retryDelay: (n) => (delays.push(n), 0) });
    let conn = await server.accept();
    const resyncs = new Queue<ResyncReason>();
    const sub = client.subscribe(TASKS, { onResync: resyncs.push });
    await ack(conn);
    await within(sub.ready, "ready");
    conn.terminate();
    conn = await server.accept();
    for (let i = 0; i < 2; i++) {
      const frame = await conn.next("a resubscribe");
      conn.send({ type: "error", request_id: frame["request_id"], code: 429, message: "requests too fast" });
    }
    await ack(conn);
    assert.equal(await resyncs.next("onResync"), "reconnected");
    assert.equal(sub.status, "live");
    assert.deepEqual(delays, [0, 0, 1], "one reconnect, then refusals 0 and 1");
  });

  test("refusing an unsubscribe: asked again, since the subscription is still active there", async (t) => {
    const { server, client } = await setup(t);
    const conn = await server.accept();
    const sub = client.subscribe(TASKS);
    const frame = await ack(conn);
    await within(sub.ready, "ready");
    const done = sub.unsubscribe();
    const unsubscribe = { request_id: frame["request_id"], unsubscribe: true, ack: true };
    assert.deepEqual(await conn.next(), unsubscribe);
    conn.send({ type: "error", request_id: frame["request_id"], code: 429, message: "requests too fast" });
    assert.deepEqual(await conn.next("the unsubscribe, again"), unsubscribe);
    conn.send({ type: "unsubscribed", request_id: frame["request_id"] });
    await within(done, "unsubscribe");
  });

  test("refusing a first subscribe rejects it: the application decides", async (t) => {
    const { server, client } = await setup(t);
    const conn = await server.accept();
    const sub = client.subscribe(TASKS);
    const frame = await conn.next();
    conn.send({ type: "error", request_id: frame["request_id"], code: 429, message: "too many subscriptions" });
    await assert.rejects(sub.ready, (err: unknown) => err instanceof SubscriptionError && err.code === 429);
  });
});

describe("close codes", () => {
  for (const code of [4003, 1008]) {
    test(`${code}: fails without retrying, rejects what is not live, and reconnect() starts again`, async (t) => {
      const attempts: number[] = [];
      const { server, client, states } = await setup(t, { retryDelay: (n) => (attempts.push(n), 0) });
      let conn = await server.accept();
      await reach(states, "open");
      const sub = client.subscribe(TASKS);
      await conn.next();
      conn.close(code, "authentication required");
      const info = await reach(states, "failed");
      assert.ok(info.error instanceof ConnectionError);
      assert.equal(info.error.code, code);
      assert.equal(info.code, code);
      assert.equal(client.state, "failed");
      await assert.rejects(sub.ready, (err: unknown) => err instanceof ConnectionError && err.code === code);
      assert.deepEqual(attempts, [], "no retry was scheduled");

      client.reconnect();
      conn = await server.accept();
      const later = client.subscribe({ model: "todolist.List", value: 1 });
      await ack(conn);
      await ack(conn);
      await within(later.ready, "ready"); // frames are handled in order: sub's ack came first
      assert.equal(sub.status, "live");
    });
  }

  for (const code of [1001, 1013, 1011, 4001]) {
    test(`${code}: reconnects with backoff`, async (t) => {
      const { server, states } = await setup(t);
      const conn = await server.accept();
      await reach(states, "open");
      conn.close(code);
      const info = await reach(states, "reconnecting");
      assert.equal(info.code, code);
      assert.equal(info.retryIn, 0);
      await server.accept();
      await reach(states, "open");
    });
  }
});

describe("backoff", () => {
  test("grows while connections fail, and starts over after a connection that stayed up", async (t) => {
    const attempts: number[] = [];
    const resetBackoffAfter = 50;
    const { server, states } = await setup(t, { retryDelay: (n) => (attempts.push(n), 0), resetBackoffAfter });
    for (let i = 0; i < 4; i++) {
      const conn = await server.accept();
      await reach(states, "open");
      conn.close(1013);
      await reach(states, "reconnecting");
    }
    assert.deepEqual(attempts, [0, 1, 2, 3]);

    const conn = await server.accept();
    await reach(states, "open");
    // The client armed its reset timer when it saw the socket open, before
    // the state change that resolved the wait above; a timer of the same
    // length armed now fires after it.
    await new Promise((resolve) => setTimeout(resolve, resetBackoffAfter));
    conn.close(1001);
    await reach(states, "reconnecting");
    assert.deepEqual(attempts, [0, 1, 2, 3, 0]);
  });

  test("the default policy is full jitter, capped", () => {
    const top = fullJitter({ initial: 500, max: 15_000, random: () => 0.999999 });
    const bottom = fullJitter({ random: () => 0 });
    const caps = [500, 1000, 2000, 4000, 8000, 15_000, 15_000];
    caps.forEach((cap, attempt) => {
      assert.ok(top(attempt) < cap && top(attempt) >= cap - 1, `attempt ${attempt}: ${top(attempt)} near ${cap}`);
      assert.equal(bottom(attempt), 0);
    });
    assert.ok(top(10_000) <= 15_000, "no overflow after many attempts");
    const real = fullJitter();
    for (let attempt = 0; attempt < 50; attempt++) {
      const d = real(attempt);
      assert.ok(Number.isInteger(d) && d >= 0 && d < 15_000, `attempt ${attempt}: ${d}`);
    }
  });

  test("tells each retry's delay while reconnecting", async (t) => {
    const { server, states } = await setup(t, { retryDelay: (n) => (n === 0 ? 3 : 60_000) });
    const conn = await server.accept();
    conn.terminate();
    assert.equal((await reach(states, "reconnecting")).retryIn, 3);
    (await server.accept()).close(1013);
    const info = await reach(states, "reconnecting");
    assert.equal(info.retryIn, 60_000);
    assert.equal(info.code, 1013);
  });
});

describe("authentication", () => {
  test("offers the token as a subprotocol, asking the token function before each connection", async (t) => {
    let n = 0;
    const { server } = await setup(t, { token: async () => `t0k3n-${++n}` });
    const conn = await server.accept();
    assert.deepEqual(conn.protocols, ["restlive", "restlive.token.t0k3n-1"]);
    conn.terminate();
    assert.deepEqual((await server.accept()).protocols, ["restlive", "restlive.token.t0k3n-2"]);
  });

  test("a token function that fails is retried with backoff", async (t) => {
    let calls = 0;
    const { server, states } = await setup(t, {
      token: () => {
        if (++calls === 1) throw new Error("token service down");
        return "ok";
      },
    });
    const info = await reach(states, "reconnecting");
    assert.match(info.reason ?? "", /token: Error: token service down/);
    assert.deepEqual((await server.accept()).protocols, ["restlive", "restlive.token.ok"]);
  });

  test("offers nothing without a token, so that cookies authenticate", async (t) => {
    const { server } = await setup(t);
    assert.deepEqual((await server.accept()).protocols, []);
  });

  test("refuses a token that cannot be a subprotocol", async (t) => {
    const { server } = await setup(t);
    for (const token of ["has space", "base64+/=", ""]) {
      assert.throws(() => setupSync(server.url, token), TypeError, token);
    }
  });

  test("a socket factory can send headers, as Node's ws allows", async (t) => {
    const { server } = await setup(t, {
      createSocket: (url, protocols) => new WebSocket(url, protocols, { headers: { Cookie: "sessionid=abc" } }),
    });
    assert.equal((await server.accept()).headers["cookie"], "sessionid=abc");
  });
});

describe("close", () => {
  test("closes the socket, rejects what is not live, and refuses new subscriptions", async (t) => {
    const { server, client, states } = await setup(t);
    const conn = await server.accept();
    await reach(states, "open");
    const pending = client.subscribe(TASKS);
    client.close();
    assert.equal(await within(conn.closed, "the socket to close"), 1000);
    assert.equal(client.state, "closed");
    await assert.rejects(pending.ready, (err: unknown) => err instanceof ConnectionError && err.code === 1000);
    await assert.rejects(client.subscribe(TASKS).ready, ConnectionError);
    client.close();
    client.reconnect(); // nothing, once closed
    assert.equal(client.state, "closed");
  });
});

describe("state listeners", () => {
  test("may close the client when told it is reconnecting: no attempt follows", async (t) => {
    let sockets = 0;
    const { server, client, states } = await setup(t, {
      retryDelay: () => 0,
      createSocket: (url, protocols) => (sockets++, new WebSocket(url, protocols)),
    });
    client.onStateChange((state) => state === "reconnecting" && client.close());
    (await server.accept()).terminate();
    await reach(states, "reconnecting");
    await reach(states, "closed");
    // The retry was armed for 0 ms before the listener ran; a timer armed
    // now fires after it would have.
    await new Promise((resolve) => setTimeout(resolve, 0));
    assert.equal(sockets, 1);
    assert.equal(states.pending.length, 0, "no state after closed");
  });

  test("may reconnect the client when told it is connecting: one socket is opened", async (t) => {
    let sockets = 0;
    let once = true;
    const { server, client, states } = await setup(t, {
      createSocket: (url, protocols) => (sockets++, new WebSocket(url, protocols)),
    });
    await server.accept();
    await reach(states, "open");
    client.onStateChange((state) => {
      if (state === "connecting" && once) {
        once = false;
        client.reconnect(); // from inside: the outer connect must not open a second socket
      }
    });
    client.reconnect();
    await server.accept();
    await new Promise((resolve) => setTimeout(resolve, 0));
    assert.equal(sockets, 2, `sockets ${sockets}`);
    assert.equal(server.waiting, 0);
  });
});

describe("bad frames", () => {
  test("are reported, and the connection carries on", async (t) => {
    const { server, client, errors } = await setup(t);
    const conn = await server.accept();
    const broadcasts = new Queue<Broadcast<unknown>>();
    client.subscribe(TASKS, { onBroadcast: broadcasts.push });
    const frame = await ack(conn);
    conn.sendRaw("not json");
    conn.sendRaw("[1]");
    conn.send({ type: "error", request_id: null, code: 400, message: "the frame is not valid JSON" });
    conn.send({ type: "broadcast", request_id: frame["request_id"], model: "todolist.Task", action: "CREATED", instance: { id: 1 } });
    await broadcasts.next("the broadcast after the bad frames");
    assert.match(String(await errors.next("an error")), /SyntaxError/);
    assert.match(String(await errors.next("an error")), /not an object/);
    assert.match(String(await errors.next("an error")), /refused a frame: 400/);
  });

  test("a handler that throws is reported, and the others still run", async (t) => {
    const { server, client, errors } = await setup(t);
    const conn = await server.accept();
    const broadcasts = new Queue<Broadcast<unknown>>();
    client.subscribe(TASKS, {
      onBroadcast: () => {
        throw new Error("handler bug");
      },
    });
    client.subscribe({ model: "todolist.List", value: 1 }, { onBroadcast: broadcasts.push });
    const a = await ack(conn);
    const b = await ack(conn);
    conn.send({ type: "broadcast", request_id: a["request_id"], model: "todolist.Task", action: "CREATED", instance: { id: 1 } });
    conn.send({ type: "broadcast", request_id: b["request_id"], model: "todolist.List", action: "UPDATED", instance: { id: 1 } });
    await broadcasts.next("the other subscription's broadcast");
    assert.match(String(await errors.next("the handler's error")), /handler bug/);
  });
});

// A client made only to see its constructor throw.
function setupSync(url: string, token: string): void {
  const { LiveClient } = clientModule;
  new LiveClient({ url, WebSocket, token }).close();
}
const clientModule = await import("../src/index.js");
