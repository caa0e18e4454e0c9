// The example app (examples/todolist) as a real server for the tests:
// built from this checkout, started as a process on a free port, driven
// through its REST API.

import assert from "node:assert/strict";
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { within } from "./helpers.js";

const run = promisify(execFile);

/** The repository's root: client/ is in it, and build/test/ in client/. */
export const ROOT = fileURLToPath(new URL("../../../", import.meta.url));

/** A temporary directory, removed by the returned function. */
export async function tempDir(): Promise<{ dir: string; remove: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), "restlive-client-"));
  return { dir, remove: () => rm(dir, { recursive: true, force: true }) };
}

/** Builds the example app into dir and returns the binary's path. */
export async function buildApp(dir: string): Promise<string> {
  const bin = join(dir, "todolist");
  await run("go", ["build", "-o", bin, "./examples/todolist"], { cwd: ROOT, timeout: 300_000 });
  return bin;
}

/** A free loopback port: one the kernel just handed out and took back. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

/** A process that is ready once a line of its output matches. */
class Process {
  readonly output: string[] = [];
  readonly exited: Promise<number | null>;
  readonly #child: ChildProcess;

  constructor(bin: string, args: string[], ready: RegExp, what: string) {
    this.#child = spawn(bin, args, { stdio: ["ignore", "pipe", "pipe"] });
    this.exited = new Promise((resolve) => this.#child.once("exit", (code) => resolve(code)));
    this.ready = within(
      new Promise<void>((resolve, reject) => {
        let partial = "";
        const onData = (chunk: Buffer) => {
          const lines = (partial + chunk.toString()).split("\n");
          partial = lines.pop()!;
          for (const line of lines) {
            this.output.push(line);
            if (ready.test(line)) resolve();
          }
        };
        this.#child.stdout!.on("data", onData);
        this.#child.stderr!.on("data", onData);
        this.exited.then((code) => reject(new Error(`${what} exited (${code}) before it was ready:\n${this.output.join("\n")}`)));
      }),
      `${what} to start`,
      60_000,
    );
  }

  readonly ready: Promise<void>;

  /** Kills the process (SIGKILL: as a crash would) and waits until it is gone. */
  async kill(signal: NodeJS.Signals = "SIGKILL"): Promise<void> {
    if (this.#child.exitCode === null && this.#child.signalCode === null) this.#child.kill(signal);
    await within(this.exited, "the process to exit", 30_000);
  }
}

/** One todolist server process. */
export class AppServer {
  readonly base: string;
  readonly ws: string;
  #proc: Process | undefined;

  constructor(
    readonly bin: string,
    readonly db: string,
    readonly port: number,
    readonly flags: string[] = [],
  ) {
    this.base = `http://127.0.0.1:${port}`;
    this.ws = `ws://127.0.0.1:${port}/ws/subscribe/`;
  }

  /** Starts the process and waits until it serves ("todolist: serving url=..."). */
  async start(): Promise<void> {
    assert.equal(this.#proc, undefined, "already running");
    this.#proc = new Process(this.bin, ["-addr", `127.0.0.1:${this.port}`, "-db", this.db, ...this.flags], /todolist: serving/, "todolist");
    await this.#proc.ready;
  }

  /** Stops it: SIGKILL, as a crash would, or SIGTERM for a clean stop (1001). */
  async stop(signal: NodeJS.Signals = "SIGTERM"): Promise<void> {
    const proc = this.#proc;
    this.#proc = undefined;
    await proc?.kill(signal);
  }

  get log(): string {
    return this.#proc?.output.join("\n") ?? "";
  }
}

/** Starts the example app on a free port with a new SQLite database in dir. */
export async function startApp(bin: string, dir: string, flags: string[] = []): Promise<AppServer> {
  const app = new AppServer(bin, join(dir, "db.sqlite"), await freePort(), flags);
  await app.start();
  return app;
}

/** A redis-server process of its own, on a free port; null without RESTLIVE_REDIS_SERVER. */
export class Redis {
  #proc: Process | undefined;
  private constructor(
    readonly bin: string,
    readonly port: number,
    readonly dir: string,
  ) {}

  get url(): string {
    return `redis://127.0.0.1:${this.port}/0`;
  }

  static async start(dir: string): Promise<Redis | null> {
    const bin = process.env["RESTLIVE_REDIS_SERVER"];
    if (!bin) return null;
    const r = new Redis(bin, await freePort(), dir);
    await r.start();
    return r;
  }

  async start(): Promise<void> {
    this.#proc = new Process(
      this.bin,
      ["--port", String(this.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", this.dir, "--daemonize", "no", "--protected-mode", "no", "--logfile", ""],
      /Ready to accept connections/,
      "redis-server",
    );
    await this.#proc.ready;
  }

  async stop(): Promise<void> {
    const proc = this.#proc;
    this.#proc = undefined;
    await proc?.kill();
  }
}

/** How a request authenticates: a token, a session cookie, or neither. */
export type Auth = { token: string } | { cookie: string } | null;

/** The REST API of one server, as one user. */
export class Api {
  constructor(
    readonly base: string,
    readonly auth: Auth = null,
  ) {}

  headers(): Record<string, string> {
    if (this.auth && "token" in this.auth) return { Authorization: `Token ${this.auth.token}` };
    if (this.auth && "cookie" in this.auth) return { Cookie: this.auth.cookie };
    return {};
  }

  /** Sends a request; returns the status and the JSON body (null when empty). */
  async request(method: string, path: string, body?: unknown): Promise<{ status: number; body: any }> {
    const init: RequestInit = { method, headers: { ...this.headers(), ...(body === undefined ? {} : { "Content-Type": "application/json" }) } };
    if (body !== undefined) init.body = JSON.stringify(body);
    const res = await fetch(new URL(path, this.base), init);
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : null };
  }

  /** Like request, failing unless the status is expected. */
  async must(method: string, path: string, body?: unknown, expected = method === "POST" ? 201 : method === "DELETE" ? 204 : 200): Promise<any> {
    const res = await this.request(method, path, body);
    assert.equal(res.status, expected, `${method} ${path}: ${res.status} ${JSON.stringify(res.body)}`);
    return res.body;
  }

  /**
   * Every item of a list endpoint: a bare array, or Django REST
   * Framework's page ({count, next, previous, results}), following next.
   */
  async list<T = any>(path: string): Promise<T[]> {
    const items: T[] = [];
    let url: string | null = new URL(path, this.base).href;
    for (let pages = 0; url !== null; pages++) {
      assert.ok(pages < 10_000, `GET ${path}: too many pages`);
      const res = await fetch(url, { headers: this.headers() });
      assert.equal(res.status, 200, `GET ${url}: ${res.status}`);
      const body = (await res.json()) as T[] | { results: T[]; next: string | null };
      if (Array.isArray(body)) return body;
      items.push(...body.results);
      url = body.next === null ? null : new URL(body.next, url).href;
    }
    return items;
  }
}

/** Registers a new user and returns their token. */
export async function register(base: string, username: string): Promise<string> {
  const api = new Api(base);
  const body = await api.must("POST", "/api/auth/register", { username, password: "correct horse battery" });
  return body.token as string;
}

/** Logs in and returns the session cookie ("sessionid=..."). */
export async function login(base: string, username: string): Promise<string> {
  const res = await fetch(new URL("/api/auth/login", base), {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ username, password: "correct horse battery" }),
  });
  assert.equal(res.status, 200);
  const cookie = res.headers.get("set-cookie") ?? "";
  const m = /sessionid=[^;]+/.exec(cookie);
  assert.ok(m, `no session cookie in ${cookie}`);
  return m[0];
}

/** Runs SQL on the app's SQLite file through the sqlite3 command: a writer that is not the server. */
export async function sqlite(db: string, sql: string): Promise<string> {
  const { stdout } = await run("sqlite3", ["-cmd", ".timeout 10000", db, sql], { timeout: 60_000 });
  return stdout;
}

/** Sorts instances by id, for comparing a collection with a GET. */
export function byId<T extends { id: number }>(items: readonly T[]): T[] {
  return [...items].sort((a, b) => a.id - b.id);
}
