// A scripted restlive server in the test process: each test says what the
// server sends and checks what the client sent.

import type { AddressInfo } from "node:net";
import { type WebSocket, WebSocketServer } from "ws";
import { Queue } from "./helpers.js";

export type Frame = Record<string, unknown>;

export class FakeServer {
  readonly url: string;
  readonly #wss: WebSocketServer;
  readonly #connections = new Queue<FakeConn>();

  private constructor(wss: WebSocketServer) {
    this.#wss = wss;
    this.url = `ws://127.0.0.1:${(wss.address() as AddressInfo).port}/ws/subscribe/`;
    wss.on("connection", (ws, req) => {
      const offered = (req.headers["sec-websocket-protocol"] ?? "").split(",").map((p) => p.trim()).filter(Boolean);
      this.#connections.push(new FakeConn(ws, offered, req.headers));
    });
  }

  /** Starts a server on a free loopback port. It selects "restlive" when offered, as the real one will. */
  static start(): Promise<FakeServer> {
    return new Promise((resolve, reject) => {
      const wss = new WebSocketServer({
        host: "127.0.0.1",
        port: 0,
        handleProtocols: (protocols) => (protocols.has("restlive") ? "restlive" : false),
      });
      wss.once("listening", () => resolve(new FakeServer(wss)));
      wss.once("error", reject);
    });
  }

  /** The next connection a client opens. */
  accept(): Promise<FakeConn> {
    return this.#connections.next("a connection");
  }

  /** Connections accepted and not yet taken by accept(). */
  get waiting(): number {
    return this.#connections.pending.length;
  }

  close(): Promise<void> {
    for (const ws of this.#wss.clients) ws.terminate();
    return new Promise((resolve) => this.#wss.close(() => resolve()));
  }
}

export class FakeConn {
  readonly protocols: string[];
  readonly headers: Record<string, string | string[] | undefined>;
  readonly closed: Promise<number>;
  readonly #ws: WebSocket;
  readonly #frames = new Queue<Frame>();

  constructor(ws: WebSocket, protocols: string[], headers: Record<string, string | string[] | undefined>) {
    this.#ws = ws;
    this.protocols = protocols;
    this.headers = headers;
    ws.on("message", (data) => this.#frames.push(JSON.parse(String(data)) as Frame));
    this.closed = new Promise((resolve) => ws.once("close", (code) => resolve(code)));
  }

  /** The next frame the client sent. */
  next(what = "a frame from the client"): Promise<Frame> {
    return this.#frames.next(what);
  }

  /** Frames received and not yet taken by next(). */
  get unread(): readonly Frame[] {
    return this.#frames.pending;
  }

  send(frame: Frame): void {
    this.#ws.send(JSON.stringify(frame));
  }

  sendRaw(data: string): void {
    this.#ws.send(data);
  }

  close(code: number, reason = ""): void {
    this.#ws.close(code, reason);
  }

  /** Drops the TCP connection without a close frame: the client sees 1006. */
  terminate(): void {
    this.#ws.terminate();
  }
}
