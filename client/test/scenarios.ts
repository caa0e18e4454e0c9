// What the tests against the real example server share: a world of
// lists and tasks, writers (through REST, and through sqlite3 behind the
// server's back), collections compared with GET, and scenarios of
// concurrent writes, a server restart and a broker outage.

import assert from "node:assert/strict";
import { WebSocket } from "ws";
import { type ClientOptions, type ConnectionState, LiveClient, type LiveCollection, type Target } from "../src/index.js";
import { DEADLINE, Queue, until } from "./helpers.js";
import type { TestContext } from "node:test";
import { Api, type AppServer, Redis, byId, register, sqlite, startApp, tempDir } from "./server.js";

export interface Task {
  id: number;
  text: string;
  done: boolean;
  list: number;
}

type Frame = Record<string, any>;

/**
 * Every frame a client sent and received, on every connection: the tests
 * count snapshot frames and read the resume fields through it.
 */
export class Tap {
  readonly sent: Frame[] = [];
  readonly received: Frame[] = [];
  // Called after each frame received.
  readonly #listeners = new Set<() => void>();

  socket(headers: Record<string, string>): NonNullable<ClientOptions["createSocket"]> {
    return (url, protocols) => {
      const ws = new WebSocket(url, protocols, { headers });
      const send = ws.send.bind(ws);
      ws.send = ((data: string) => {
        this.sent.push(JSON.parse(data));
        send(data);
      }) as typeof ws.send;
      ws.on("message", (data) => {
        this.received.push(JSON.parse(String(data)));
        for (const l of [...this.#listeners]) l();
      });
      return ws;
    };
  }

  onFrame = (listener: () => void): (() => void) => {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  };

  /** Received frames of type, from index from on. */
  count(type: string, from = 0): number {
    return this.received.slice(from).filter((f) => f["type"] === type).length;
  }
}

/** A client of app authenticated by headers (cookie or token), its frames tapped. */
export function tappedClient(app: AppServer, api: Api, options: Partial<ClientOptions> = {}) {
  const tap = new Tap();
  const states = new Queue<ConnectionState>();
  const client = new LiveClient({
    url: app.ws,
    createSocket: tap.socket(api.headers()),
    // Quick retries: the server is on this machine, and comes back soon.
    retryDelay: (n) => Math.min(1000, 50 * 2 ** n),
    ...options,
  });
  client.onStateChange(states.push);
  return { client, tap, states };
}

/** A collection of the tasks of list (narrowed by query), and the GET path of the same. */
export function tasksOf(client: LiveClient, list: number, query: Record<string, string> = {}) {
  const target: Target = { model: "todolist.Task", groupBy: "list_id", value: list, query };
  const path = `/api/tasks/?${new URLSearchParams({ list: String(list), ...query })}`;
  return { collection: client.collection<Task>(target), path };
}

/** Waits until collection holds exactly what GET path answers now. */
export async function equalsGet(collection: LiveCollection<Task>, api: Api, path: string, ms = DEADLINE): Promise<void> {
  const expected = byId(await api.list<Task>(path));
  await until(
    collection.onChange,
    () => {
      try {
        assert.deepEqual(byId(collection.items), expected);
        return true;
      } catch {
        return false;
      }
    },
    `the collection to equal GET ${path}`,
    ms,
  ).catch(() => {
    // Fail with the difference, not just the timeout.
    assert.deepEqual(byId(collection.items), expected, `the collection differs from GET ${path}`);
  });
}

// A deterministic pseudo-random sequence (mulberry32), so that a failure
// can be replayed with the same writes.
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Writes n random changes to the tasks of lists through the REST API:
 * creates, edits, ticks, moves between the lists and deletes. Writers
 * running at once race on the same tasks; a task another writer deleted
 * answers 404, which is part of the game.
 */
export async function restWriter(api: Api, lists: number[], n: number, seed: number): Promise<void> {
  const random = prng(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)]!;
  const mine: number[] = [];
  for (let i = 0; i < n; i++) {
    const r = random();
    if (r < 0.4 || mine.length === 0) {
      const body = await api.must("POST", "/api/tasks/", { text: `task ${seed}.${i}`, list: pick(lists), done: random() < 0.5 });
      mine.push(body.id);
      continue;
    }
    const id = pick(mine);
    const change = r < 0.6 ? { done: random() < 0.5 } : r < 0.75 ? { text: `edited ${seed}.${i}` } : r < 0.85 ? { list: pick(lists) } : null;
    const res = change ? await api.request("PATCH", `/api/tasks/${id}/`, change) : await api.request("DELETE", `/api/tasks/${id}/`);
    assert.ok([200, 204, 404].includes(res.status), `task ${id}: ${res.status} ${JSON.stringify(res.body)}`);
    if (!change || res.status === 404) mine.splice(mine.indexOf(id), 1);
  }
}

/**
 * Writes n random changes to the tasks of lists with the sqlite3 command,
 * straight into the database file: a writer that is not the server, and
 * keeps writing while the server is down.
 */
export async function sqlWriter(db: string, lists: number[], n: number, seed: number, onWrite = () => {}): Promise<void> {
  const random = prng(seed);
  for (let i = 0; i < n; i++) {
    const list = lists[Math.floor(random() * lists.length)]!;
    const r = random();
    const one = `(SELECT id FROM tasks WHERE list_id = ${list} ORDER BY random() LIMIT 1)`;
    const sql =
      r < 0.45
        ? `INSERT INTO tasks (text, done, list_id) VALUES ('sql ${seed}.${i}', ${random() < 0.5 ? 1 : 0}, ${list});`
        : r < 0.8
          ? `UPDATE tasks SET done = 1 - done, text = 'sql edit ${seed}.${i}' WHERE id = ${one};`
          : r < 0.9
            ? `UPDATE tasks SET list_id = ${lists[(lists.indexOf(list) + 1) % lists.length]} WHERE id = ${one};`
            : `DELETE FROM tasks WHERE id = ${one};`;
    await sqlite(db, sql);
    onWrite();
  }
}

/** Resolves once count frames of type have been received since index from of tap.received. */
export function frames(tap: Tap, type: string, count: number, from: number, what: string, ms = DEADLINE): Promise<void> {
  return until(tap.onFrame, () => tap.count(type, from) >= count, what, ms);
}

/** A server with a user and two public lists of a few tasks each. */
export async function world(t: TestContext, bin: string, flags: (dir: string) => Promise<string[]> = async () => []) {
  const { dir, remove } = await tempDir();
  t.after(remove);
  const app = await startApp(bin, dir, await flags(dir));
  t.after(() => app.stop());
  const api = new Api(app.base, { token: await register(app.base, "alice") });
  const lists: number[] = [];
  for (const name of ["groceries", "chores"]) {
    lists.push((await api.must("POST", "/api/lists/", { name, public: true })).id);
  }
  for (let i = 0; i < 6; i++) {
    await api.must("POST", "/api/tasks/", { text: `seed ${i}`, list: lists[i % 2], done: i % 3 === 0 });
  }
  return { dir, app, api, lists };
}

/** The collections the scenarios watch: whole lists and filtered ones. */
export function watchAll(client: LiveClient, lists: number[]) {
  return [
    tasksOf(client, lists[0]!),
    tasksOf(client, lists[1]!),
    tasksOf(client, lists[0]!, { done: "true" }),
    tasksOf(client, lists[1]!, { search: "EDIT" }),
  ];
}

/**
 * Collections made while three REST writers race on two lists end equal
 * to GET. Returns what the test may check further.
 */
export async function concurrentWrites(t: TestContext, bin: string) {
  const { app, api, lists } = await world(t, bin);
  const { client, tap } = tappedClient(app, api);
  t.after(() => client.close());
  const writers = [1, 2, 3].map((seed) => restWriter(api, lists, 40, seed));
  const watched = watchAll(client, lists); // while the writers write
  await Promise.all(writers);
  for (const w of watched) await equalsGet(w.collection, api, w.path);
  return { tap, watched };
}

/**
 * The server is killed while a writer that is not the server (sqlite3)
 * keeps writing, and started again on the same port; then the client
 * reconnects, and every collection ends equal to GET. Returns the frames
 * received after the restart began, and the collections.
 */
export async function restart(t: TestContext, bin: string) {
  const { app, api, lists } = await world(t, bin);
  const { client, tap, states } = tappedClient(app, api);
  t.after(() => client.close());
  const watched = watchAll(client, lists);
  await restWriter(api, lists, 20, 7);
  for (const w of watched) await equalsGet(w.collection, api, w.path);

  const mark = tap.received.length;
  const written = new Queue<void>();
  const writer = sqlWriter(app.db, lists, 30, 11, () => written.push());
  for (let i = 0; i < 5; i++) await written.next("a write before the kill");
  await app.stop("SIGKILL");
  await untilState(states, "reconnecting");
  for (let i = 0; i < 10; i++) await written.next("a write while the server is down");
  await app.start();
  await untilState(states, "open");
  await writer;
  await restWriter(api, lists, 10, 13); // through the restarted server too
  for (const w of watched) await equalsGet(w.collection, api, w.path, 30_000);
  return { tap, mark, watched };
}

/**
 * The server's broker (Redis) dies and comes back while REST writes go
 * on: the server sends every subscription resync, and every collection
 * ends equal to GET. Skips without RESTLIVE_REDIS_SERVER.
 */
export async function resync(t: TestContext, bin: string) {
  const { dir, remove } = await tempDir();
  t.after(remove);
  const redis = await Redis.start(dir);
  if (!redis) {
    t.skip("RESTLIVE_REDIS_SERVER is not set (./test.sh sets it)");
    return null;
  }
  t.after(() => redis.stop());
  const { app, api, lists } = await world(t, bin, async () => ["-redis", redis.url]);
  const { client, tap } = tappedClient(app, api);
  t.after(() => client.close());
  const watched = watchAll(client, lists);
  await restWriter(api, lists, 10, 21);
  for (const w of watched) await equalsGet(w.collection, api, w.path);

  const mark = tap.received.length;
  await redis.stop();
  await restWriter(api, lists, 10, 22); // committed while the broker is away
  await redis.start();
  await frames(tap, "resync", watched.length, mark, "a resync for every collection", 30_000);
  await restWriter(api, lists, 10, 23);
  for (const w of watched) await equalsGet(w.collection, api, w.path, 30_000);
  return { tap, mark, watched };
}

async function untilState(states: Queue<ConnectionState>, state: ConnectionState): Promise<void> {
  while ((await states.next(`state ${state}`, 30_000)) !== state) {
    // Earlier states: keep taking.
  }
}
