// Live collections against a scripted server: snapshot, broadcasts,
// resume and its fallback, a connection lost mid-resume, resync, errors,
// and servers without snapshots.

import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { type CollectionChange, ConnectionError, type LiveClient, type LiveCollection, SubscriptionError } from "../src/index.js";
import type { FakeConn, Frame } from "./fake.js";
import { Queue, within } from "./helpers.js";
import { reach, setup } from "./setup.js";

interface Task {
  id: number;
  text: string;
  done?: boolean;
}

const TASKS = { model: "todolist.Task", groupBy: "list_id", value: 14 };
const t = (id: number, text = `task ${id}`): Task => ({ id, text });

// A collection whose changes are queued for the test to take.
function watch(client: LiveClient, options = {}) {
  const tasks = client.collection<Task>(TASKS, options);
  const changes = new Queue<CollectionChange<Task>>();
  tasks.onChange(changes.push);
  return { tasks, changes };
}

function ids(tasks: LiveCollection<Task>): number[] {
  return tasks.items.map((x) => x.id);
}

const broadcast = (id: unknown, action: string, instance: Task | { id: number }, offset?: string): Frame => ({
  type: "broadcast",
  request_id: id,
  model: "todolist.Task",
  action,
  instance,
  ...(offset ? { offset } : {}),
});

// Serves a fresh snapshot subscription: the snapshot in frames of two,
// then "subscribed" at offset. Returns the request id.
async function serveSnapshot(conn: FakeConn, instances: Task[], offset: string): Promise<unknown> {
  const frame = await conn.next("a snapshot subscribe");
  assert.equal(frame["snapshot"], true);
  assert.equal(frame["since"], undefined);
  const id = frame["request_id"];
  for (let i = 0; i < instances.length; i += 2) {
    conn.send({ type: "snapshot", request_id: id, model: "todolist.Task", instances: instances.slice(i, i + 2) });
  }
  conn.send({ type: "subscribed", request_id: id, offset });
  return id;
}

// Proves the client has handled every frame sent before it: a plain
// subscription's ack, sent last, has arrived.
async function flush(client: LiveClient, conn: FakeConn): Promise<void> {
  const marker = client.subscribe({ model: "test.Marker", value: 1 });
  const frame = await conn.next("the marker's subscribe");
  conn.send({ type: "subscribed", request_id: frame["request_id"] });
  await within(marker.ready, "the marker");
  void marker.unsubscribe(); // resolves only when the server confirms, which this one does not
  await conn.next("the marker's unsubscribe");
}

describe("live collection", () => {
  test("loads a snapshot sent in several frames, with one change", async (t0) => {
    const { server, client } = await setup(t0);
    const conn = await server.accept();
    const { tasks, changes } = watch(client);
    assert.equal(tasks.status, "loading");
    await serveSnapshot(conn, [t(3), t(1), t(2)], "o1");
    await within(tasks.ready, "ready");
    const change = await changes.next("the snapshot");
    assert.deepEqual(change, { added: [t(3), t(1), t(2)], updated: [], removed: [], cause: "snapshot" });
    assert.deepEqual(ids(tasks), [3, 1, 2], "in the server's order");
    assert.equal(tasks.status, "live");
    assert.equal(changes.pending.length, 0);
  });

  test("an empty snapshot is a change too: loading is over", async (t0) => {
    const { server, client } = await setup(t0);
    const conn = await server.accept();
    const { tasks, changes } = watch(client);
    await serveSnapshot(conn, [], "o1");
    assert.deepEqual(await changes.next("the snapshot"), { added: [], updated: [], removed: [], cause: "snapshot" });
    assert.equal(tasks.size, 0);
    assert.equal(tasks.status, "live");
  });

  test("applies broadcasts: insert, replace, delete; ignores what changes nothing", async (t0) => {
    const { server, client } = await setup(t0);
    const conn = await server.accept();
    const { tasks, changes } = watch(client);
    const id = await serveSnapshot(conn, [t(1), t(2)], "o1");
    await changes.next("the snapshot");
    const before = tasks.items;

    conn.send(broadcast(id, "CREATED", t(3), "o2"));
    conn.send(broadcast(id, "UPDATED", { id: 1, text: "changed" }, "o3"));
    conn.send(broadcast(id, "UPDATED", t(2), "o4")); // as held: nothing changes
    conn.send(broadcast(id, "DELETED", { id: 9 }, "o5")); // never held
    conn.send(broadcast(id, "DELETED", { id: 2 }, "o6"));
    conn.send(broadcast(id, "CREATED", t(1, "changed"), "o7")); // as held: nothing
    assert.deepEqual(await changes.next("created"), { added: [t(3)], updated: [], removed: [], cause: "broadcast" });
    assert.deepEqual(await changes.next("updated"), { added: [], updated: [t(1, "changed")], removed: [], cause: "broadcast" });
    assert.deepEqual(await changes.next("deleted"), { added: [], updated: [], removed: [t(2)], cause: "broadcast" });
    await flush(client, conn);
    assert.equal(changes.pending.length, 0, "no change for broadcasts that changed nothing");
    assert.deepEqual(ids(tasks), [1, 3], "an update keeps its place");
    assert.equal(tasks.get(1)?.text, "changed");
    assert.equal(tasks.get("1"), tasks.get(1), "14 and \"14\" are one key");
    assert.notEqual(tasks.items, before);
    assert.equal(tasks.items, tasks.items, "the same array between changes");
  });

  test("resumes after a reconnect from the last offset applied, holding its state until the resume is complete", async (t0) => {
    const { server, client } = await setup(t0);
    let conn = await server.accept();
    const { tasks, changes } = watch(client);
    const id = await serveSnapshot(conn, [t(1), t(2), t(3)], "o1");
    await changes.next("the snapshot");
    conn.send(broadcast(id, "UPDATED", t(1, "one"), "o2"));
    await changes.next("the broadcast");

    conn.terminate();
    conn = await server.accept();
    const frame = await conn.next("the resume");
    assert.equal(frame["since"], "o2");
    assert.equal(frame["snapshot"], undefined);
    const rid = frame["request_id"];
    conn.send(broadcast(rid, "UPDATED", t(2, "two"), "o3"));
    conn.send(broadcast(rid, "CREATED", t(4), "o4"));
    conn.send(broadcast(rid, "DELETED", { id: 3 }, "o5"));
    conn.send(broadcast(rid, "DELETED", { id: 99 }, "o6"));
    conn.send(broadcast(rid, "CREATED", t(1, "one"), "o7")); // insert-or-replace: already so
    await flush(client, conn);
    assert.equal(tasks.status, "syncing");
    assert.deepEqual(ids(tasks), [1, 2, 3], "nothing applied before subscribed");
    assert.equal(changes.pending.length, 0);

    conn.send({ type: "subscribed", request_id: rid, offset: "o8", resumed: true });
    assert.deepEqual(await changes.next("the resume"), {
      added: [t(4)],
      updated: [t(2, "two")],
      removed: [t(3)],
      cause: "resume",
    });
    assert.equal(tasks.status, "live");
    assert.deepEqual(ids(tasks), [1, 2, 4]);

    // The next resume starts from the resume's own offset.
    conn.terminate();
    conn = await server.accept();
    assert.equal((await conn.next("the second resume"))["since"], "o8");
  });

  test("onStatus tells each change of status, a resume that changed nothing included", async (t0) => {
    const { server, client } = await setup(t0);
    let conn = await server.accept();
    const { tasks } = watch(client);
    const statuses = new Queue<string>();
    let seen: readonly Task[] = [];
    tasks.onStatus((status) => {
      seen = tasks.items;
      statuses.push(status);
    });
    await serveSnapshot(conn, [t(1), t(2)], "o1");
    assert.equal(await statuses.next("live"), "live");
    assert.deepEqual(
      seen.map((x) => x.id),
      [1, 2],
      "a status listener sees the state the status is about",
    );

    conn.terminate();
    assert.equal(await statuses.next("syncing"), "syncing");
    conn = await server.accept();
    const resume = await conn.next("the resume");
    conn.send({ type: "subscribed", request_id: resume["request_id"], offset: "o1", resumed: true });
    assert.equal(await statuses.next("live again"), "live");

    void tasks.close(); // resolves when the server acknowledges, which this one does not
    assert.equal(await statuses.next("closed"), "closed");
    assert.equal(statuses.pending.length, 0, "one call per change of status");
  });

  test("replaces its state with the snapshot when the server cannot resume", async (t0) => {
    const { server, client } = await setup(t0);
    let conn = await server.accept();
    const { tasks, changes } = watch(client);
    await serveSnapshot(conn, [t(1), t(2), t(3)], "o1");
    await changes.next("the snapshot");

    conn.terminate();
    conn = await server.accept();
    const frame = await conn.next("the resume");
    assert.equal(frame["since"], "o1");
    const rid = frame["request_id"];
    conn.send({ type: "snapshot", request_id: rid, model: "todolist.Task", instances: [t(2), t(3, "three")] });
    conn.send({ type: "snapshot", request_id: rid, model: "todolist.Task", instances: [t(5)] });
    conn.send({ type: "subscribed", request_id: rid, offset: "x9", resumed: false });
    assert.deepEqual(await changes.next("the fresh snapshot"), {
      added: [t(5)],
      updated: [t(3, "three")],
      removed: [t(1)],
      cause: "snapshot",
    });
    assert.deepEqual(ids(tasks), [2, 3, 5]);
    conn.terminate();
    conn = await server.accept();
    assert.equal((await conn.next("the next resume"))["since"], "x9");
  });

  test("a connection lost mid-resume changes nothing; the next resume starts from the same offset", async (t0) => {
    const { server, client } = await setup(t0);
    let conn = await server.accept();
    const { tasks, changes } = watch(client);
    await serveSnapshot(conn, [t(1), t(2)], "o1");
    await changes.next("the snapshot");

    conn.terminate();
    conn = await server.accept();
    let rid = (await conn.next("the resume"))["request_id"];
    conn.send(broadcast(rid, "DELETED", { id: 1 }, "o2"));
    conn.send({ type: "snapshot", request_id: rid, model: "todolist.Task", instances: [t(7)] });
    await flush(client, conn);
    conn.terminate();

    conn = await server.accept();
    const frame = await conn.next("the resume, again");
    assert.equal(frame["since"], "o1");
    rid = frame["request_id"];
    conn.send(broadcast(rid, "CREATED", t(3), "o3"));
    conn.send({ type: "subscribed", request_id: rid, offset: "o3", resumed: true });
    assert.deepEqual(await changes.next("the resume"), { added: [t(3)], updated: [], removed: [], cause: "resume" });
    assert.deepEqual(ids(tasks), [1, 2, 3]);
  });

  test("resync: resubscribes with since under a new id, ignoring what was still on its way for the old one", async (t0) => {
    const { server, client } = await setup(t0);
    const conn = await server.accept();
    const { tasks, changes } = watch(client);
    const id = await serveSnapshot(conn, [t(1)], "o1");
    await changes.next("the snapshot");
    conn.send(broadcast(id, "CREATED", t(2), "o2"));
    await changes.next("the broadcast");

    conn.send({ type: "resync", request_id: id });
    assert.deepEqual(await conn.next("the unsubscribe"), { request_id: id, unsubscribe: true, ack: true });
    const frame = await conn.next("the resume");
    assert.equal(frame["since"], "o2");
    assert.notEqual(frame["request_id"], id);
    conn.send(broadcast(id, "CREATED", t(66), "o3")); // the old subscription's, in flight
    conn.send({ type: "unsubscribed", request_id: id });
    conn.send(broadcast(frame["request_id"], "UPDATED", t(2, "two"), "o4"));
    conn.send({ type: "subscribed", request_id: frame["request_id"], offset: "o4", resumed: true });
    assert.deepEqual(await changes.next("the resume"), { added: [], updated: [t(2, "two")], removed: [], cause: "resume" });
    assert.deepEqual(ids(tasks), [1, 2]);
    assert.equal(tasks.status, "live");
  });

  test("after a resync it is still resumed on the next connection", async (t0) => {
    const { server, client } = await setup(t0);
    let conn = await server.accept();
    const { changes } = watch(client);
    const id = await serveSnapshot(conn, [t(1)], "o1");
    await changes.next("the snapshot");
    conn.send({ type: "resync", request_id: id });
    await conn.next("the unsubscribe");
    const frame = await conn.next("the resume");
    conn.send({ type: "subscribed", request_id: frame["request_id"], offset: "o2", resumed: true });
    await flush(client, conn);
    conn.terminate();
    conn = await server.accept();
    assert.equal((await conn.next("the resume after the reconnect"))["since"], "o2");
  });

  test("resync in the middle of a resume starts it again from the same offset", async (t0) => {
    const { server, client } = await setup(t0);
    let conn = await server.accept();
    const { tasks, changes } = watch(client);
    await serveSnapshot(conn, [t(1)], "o1");
    await changes.next("the snapshot");
    conn.terminate();
    conn = await server.accept();
    const first = await conn.next("the resume");
    conn.send(broadcast(first["request_id"], "CREATED", t(2), "o2"));
    conn.send({ type: "resync", request_id: first["request_id"] });
    await conn.next("the unsubscribe");
    const second = await conn.next("the resume, again");
    assert.equal(second["since"], "o1");
    conn.send({ type: "subscribed", request_id: second["request_id"], offset: "o2", resumed: true });
    await flush(client, conn);
    assert.equal(changes.pending.length, 0, "the first attempt's change was dropped with it");
    assert.equal(tasks.status, "live");
  });

  test("a resume refused with 429 is tried again from the same offset, holding the state", async (t0) => {
    const { server, client } = await setup(t0);
    let conn = await server.accept();
    const { tasks, changes } = watch(client);
    await serveSnapshot(conn, [t(1)], "o1");
    await changes.next("the snapshot");
    conn.terminate();
    conn = await server.accept();
    const refused = await conn.next("the resume");
    conn.send(broadcast(refused["request_id"], "CREATED", t(2), "o2")); // not applied: the attempt failed
    conn.send({ type: "error", request_id: refused["request_id"], code: 429, message: "requests too fast" });
    const again = await conn.next("the resume, again");
    assert.equal(again["since"], "o1");
    assert.notEqual(again["request_id"], refused["request_id"]);
    assert.equal(tasks.status, "syncing");
    conn.send({ type: "subscribed", request_id: again["request_id"], offset: "o1", resumed: true });
    await flush(client, conn);
    assert.equal(tasks.status, "live");
    assert.deepEqual(ids(tasks), [1]);
    assert.equal(changes.pending.length, 0);
  });

  test("an error ends the collection, keeping what it holds", async (t0) => {
    const { server, client } = await setup(t0);
    const conn = await server.accept();
    const errors = new Queue<SubscriptionError>();
    const { tasks } = watch(client, { onError: errors.push });
    const id = await serveSnapshot(conn, [t(1)], "o1");
    await within(tasks.ready, "ready");
    conn.send({ type: "error", request_id: id, code: 413, message: "the scope grew beyond 10000 instances" });
    const error = await errors.next("onError");
    assert.ok(error instanceof SubscriptionError);
    assert.equal(error.code, 413);
    assert.equal(tasks.status, "closed");
    assert.equal(tasks.error, error);
    assert.deepEqual(ids(tasks), [1]);
  });

  test("a refused subscription rejects ready", async (t0) => {
    const { server, client } = await setup(t0);
    const conn = await server.accept();
    const tasks = client.collection(TASKS);
    const frame = await conn.next();
    conn.send({ type: "error", request_id: frame["request_id"], code: 403, message: "You do not have permission to perform this action." });
    await assert.rejects(tasks.ready, (err: unknown) => err instanceof SubscriptionError && err.code === 403);
  });

  test("close: unsubscribes, rejects ready if not loaded, keeps what it holds", async (t0) => {
    const { server, client } = await setup(t0);
    const conn = await server.accept();
    const tasks = client.collection(TASKS);
    const frame = await conn.next();
    const done = tasks.close();
    assert.deepEqual(await conn.next(), { request_id: frame["request_id"], unsubscribe: true, ack: true });
    conn.send({ type: "unsubscribed", request_id: frame["request_id"] });
    await within(done, "close");
    await assert.rejects(tasks.ready, ConnectionError);
    assert.equal(tasks.status, "closed");
  });

  test("made while disconnected, it subscribes once connected", async (t0) => {
    const { server, client, states } = await setup(t0, { retryDelay: () => 60_000 });
    let conn = await server.accept();
    conn.close(1001);
    await reach(states, "reconnecting");
    const { tasks } = watch(client);
    client.reconnect();
    conn = await server.accept();
    await serveSnapshot(conn, [t(1)], "o1");
    await within(tasks.ready, "ready");
    assert.deepEqual(ids(tasks), [1]);
  });

  test("a custom key", async (t0) => {
    const { server, client } = await setup(t0);
    const conn = await server.accept();
    const tasks = client.collection<{ slug: string }>(TASKS, { key: (x) => x.slug });
    const frame = await conn.next();
    conn.send({ type: "snapshot", request_id: frame["request_id"], instances: [{ slug: "a" }, { slug: "b" }] });
    conn.send({ type: "subscribed", request_id: frame["request_id"], offset: "o1" });
    await within(tasks.ready, "ready");
    assert.deepEqual(tasks.get("b"), { slug: "b" });
  });
});

describe("live collection on a server without snapshots", () => {
  test("ends with 501 and unsubscribes", async (t0) => {
    const { server, client } = await setup(t0);
    const conn = await server.accept();
    const tasks = client.collection(TASKS);
    const frame = await conn.next();
    conn.send({ type: "subscribed", request_id: frame["request_id"] }); // no offset: "snapshot" was ignored
    await assert.rejects(tasks.ready, (err: unknown) => err instanceof SubscriptionError && err.code === 501);
    assert.equal(tasks.status, "closed");
    assert.deepEqual(await conn.next(), { request_id: frame["request_id"], unsubscribe: true, ack: true });
  });
});
