// Starting a fake server and a client against it, stopped after the test.

import type { TestContext } from "node:test";
import { WebSocket } from "ws";
import { type ClientOptions, type ConnectionState, LiveClient, type StateInfo } from "../src/index.js";
import { FakeServer } from "./fake.js";
import { Queue } from "./helpers.js";

export interface Setup {
  server: FakeServer;
  client: LiveClient;
  /** Every state the client went through, with its info. */
  states: Queue<[ConnectionState, StateInfo]>;
  /** What the client reported to onError. */
  errors: Queue<unknown>;
}

/** A fake server and a client connecting to it; both closed after the test. */
export async function setup(t: TestContext, options: Partial<ClientOptions> = {}): Promise<Setup> {
  const server = await FakeServer.start();
  const errors = new Queue<unknown>();
  const states = new Queue<[ConnectionState, StateInfo]>();
  // Retries at once unless the test says otherwise: waits come from events.
  const client = new LiveClient({ url: server.url, WebSocket, retryDelay: () => 0, onError: errors.push, ...options });
  client.onStateChange((state, info) => states.push([state, info]));
  t.after(async () => {
    client.close();
    await server.close();
  });
  return { server, client, states, errors };
}

/** Takes states until state, failing on a deadline. */
export async function reach(states: Queue<[ConnectionState, StateInfo]>, state: ConnectionState): Promise<StateInfo> {
  for (;;) {
    const [s, info] = await states.next(`state ${state}`);
    if (s === state) return info;
  }
}
