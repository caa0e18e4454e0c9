// Generated from client/src by examples/todolist/browsertest/client-assets.mjs: do not edit.
// @restlive/client: live subscriptions and live collections over a
// restlive server's WebSocket, with reconnect, resubscribe and resume.
//
//   const client = new LiveClient({ url: "/ws/subscribe/" });
//   const tasks = client.collection({ model: "todolist.Task", groupBy: "list_id", value: 14 });
//   tasks.onChange(() => render(tasks.items));
export { LiveClient } from "./client.js";
export { Subscription } from "./subscription.js";
export { LiveCollection, } from "./collection.js";
export { SubscriptionError, ConnectionError } from "./errors.js";
export { fullJitter } from "./backoff.js";
