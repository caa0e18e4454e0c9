import { ConnectionError, SubscriptionError } from "./errors.js";
import { Deferred, type Link, call } from "./internal.js";
import type { Action, ServerFrame, Target } from "./protocol.js";

/** One broadcast: an instance entered, changed within or left the scope. */
export interface Broadcast<T> {
  action: Action;
  /** The instance as the REST endpoint serializes it; for DELETED, only its identifying fields. */
  instance: T;
}

/** Why broadcasts may have been missed. */
export type ResyncReason = "reconnected" | "resync";

/** Handlers of a {@link Subscription}, given to `client.subscribe`. */
export interface SubscriptionHandlers<T> {
  /** Each broadcast, in the order the server sent them. */
  onBroadcast?(broadcast: Broadcast<T>): void;
  /**
   * Broadcasts may have been missed: the subscription is live again on a
   * new connection ("reconnected"), or the server says it lost track
   * ("resync"). Refetch what you show, or use a live collection, which
   * catches up by itself.
   */
  onResync?(reason: ResyncReason): void;
  /** The server refused the subscription or ended it; it is closed. */
  onError?(error: SubscriptionError): void;
}

/** "subscribing" until the server confirms, and again while reconnecting. */
export type SubscriptionStatus = "subscribing" | "live" | "closed";

/**
 * A subscription to one instance or a group, made by `client.subscribe`.
 * It is resubscribed on every new connection until `unsubscribe()` or an
 * error from the server ends it.
 */
export class Subscription<T = unknown> {
  readonly target: Target;
  /**
   * Resolves once the subscription is live: the server confirmed it, and
   * every change committed after that is broadcast. Rejects with a
   * SubscriptionError if the server refuses it, or a ConnectionError if
   * the client fails or is closed, or unsubscribe() is called, first.
   */
  readonly ready: Promise<void>;
  #ready = new Deferred();
  #status: SubscriptionStatus = "subscribing";
  #error: Error | undefined;
  #wasLive = false;
  // 429s in a row answering resubscribes.
  #refusals = 0;
  #handlers: SubscriptionHandlers<T>;
  #link: Link;

  /** Made by `client.subscribe`. */
  constructor(link: Link, target: Target, handlers: SubscriptionHandlers<T>) {
    this.#link = link;
    this.target = target;
    this.#handlers = handlers;
    this.ready = this.#ready.promise;
  }

  get status(): SubscriptionStatus {
    return this.#status;
  }

  /** Why the subscription closed, if not by unsubscribe(). */
  get error(): Error | undefined {
    return this.#error;
  }

  /**
   * Ends the subscription: no broadcast is delivered after this call.
   * Resolves when the server confirms (at once when not connected).
   */
  unsubscribe(): Promise<void> {
    this.#status = "closed";
    this.#ready.reject(new ConnectionError(1000, "", "restlive: unsubscribed before the subscription was live"));
    return this.#link.remove(this);
  }

  /** @internal */
  begin(): Record<string, unknown> {
    return {};
  }

  /** @internal */
  receive(frame: ServerFrame): void {
    const report = (e: unknown) => this.#link.report(e);
    switch (frame.type) {
      case "subscribed": {
        if (this.#status !== "subscribing") return;
        this.#status = "live";
        this.#refusals = 0;
        this.#ready.resolve();
        const again = this.#wasLive;
        this.#wasLive = true;
        if (again) call(report, this.#handlers.onResync, "reconnected");
        return;
      }
      case "broadcast":
        if (frame.action === undefined) return;
        call(report, this.#handlers.onBroadcast, { action: frame.action, instance: frame.instance as T });
        return;
      case "resync":
        call(report, this.#handlers.onResync, "resync");
        return;
      case "error":
        // A resubscribe refused as too many requests (a burst after a
        // reconnect) is tried again: the subscription was fine before.
        if (frame.code === 429 && this.#wasLive && this.#status === "subscribing") {
          this.#link.retryLater(this, this.#refusals++);
          return;
        }
        this.#end(new SubscriptionError(frame.code ?? 0, frame.message ?? "refused"));
        return;
    }
  }

  /** @internal */
  disconnected(): void {
    if (this.#status === "live") this.#status = "subscribing";
  }

  /** @internal */
  stopped(error: Error, final: boolean): void {
    this.#ready.reject(error);
    if (final) {
      this.#status = "closed";
      this.#error = error;
    }
  }

  #end(error: SubscriptionError): void {
    this.#link.drop(this);
    this.#status = "closed";
    this.#error = error;
    this.#ready.reject(error);
    call((e) => this.#link.report(e), this.#handlers.onError, error);
  }
}
