// Compiled (not run) with the DOM's types only, by tsconfig.dom.json: a
// browser application uses the client without a cast.

import { LiveClient, type WebSocketConstructor } from "../src/index.js";

export const ctor: WebSocketConstructor = WebSocket;

export function connect(): LiveClient {
  const client = new LiveClient({ url: "/ws/subscribe/", WebSocket });
  const tasks = client.collection<{ id: number; text: string }>({ model: "todolist.Task", groupBy: "list_id", value: 14 });
  tasks.onChange(() => {
    document.title = `${tasks.size} tasks`;
  });
  return client;
}
