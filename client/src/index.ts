// @restlive/client: live subscriptions and live collections over a
// restlive server's WebSocket, with reconnect, resubscribe and resume.
//
//   const client = new LiveClient({ url: "/ws/subscribe/" });
//   const tasks = client.collection({ model: "todolist.Task", groupBy: "list_id", value: 14 });
//   tasks.onChange(() => render(tasks.items));

export { LiveClient, type ClientOptions, type ConnectionState, type StateInfo } from "./client.js";
export { Subscription, type Broadcast, type ResyncReason, type SubscriptionHandlers, type SubscriptionStatus } from "./subscription.js";
export {
  LiveCollection,
  type ChangeCause,
  type CollectionChange,
  type CollectionOptions,
  type CollectionStatus,
  type Key,
} from "./collection.js";
export { SubscriptionError, ConnectionError } from "./errors.js";
export { fullJitter, type BackoffOptions } from "./backoff.js";
export type { Action, Dialect, Scalar, Target } from "./protocol.js";
export type { WebSocketConstructor, WebSocketLike, MessageEventLike, CloseEventLike } from "./socket.js";
