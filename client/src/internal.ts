// What the client and its subscriptions say to each other. Not exported
// from the package.

import type { ServerFrame, Target } from "./protocol.js";

/**
 * One subscription or live collection, as the client drives it. The client
 * owns the connection and the request ids; a channel owns what its frames
 * mean. Each subscribe frame the client sends for a channel starts a new
 * attempt with a new request id; frames of earlier attempts never reach
 * the channel.
 */
export interface Channel {
  readonly target: Target;
  /**
   * A subscribe frame is about to be sent: the start of an attempt.
   * Returns the fields to add to it ({ snapshot: true }, { since }).
   */
  begin(): Record<string, unknown>;
  /** A frame of the current attempt, in the order the server sent it. */
  receive(frame: ServerFrame): void;
  /** The current attempt ended with its connection. */
  disconnected(): void;
  /**
   * The client stopped connecting: failed (a close the client does not
   * retry; reconnect() may start it again) or, when final, closed.
   */
  stopped(error: Error, final: boolean): void;
}

/** What a channel may ask of its client. */
export interface Link {
  /** Sends a new subscribe for ch on this connection (after resync). */
  restart(ch: Channel): void;
  /**
   * Forgets ch and unsubscribes it on the server if it is subscribed
   * there; resolves when the server confirms, or at once.
   */
  remove(ch: Channel): Promise<void>;
  /** Forgets ch, which the server ended: nothing is sent. */
  drop(ch: Channel): void;
  /**
   * The server refused to subscribe ch again with 429 (too many requests,
   * as a burst of resubscribes after a reconnect may be): subscribes it
   * once more after the backoff's delay for refusal number attempt (0 for
   * the first), on this connection, or at once on the next.
   */
  retryLater(ch: Channel, attempt: number): void;
  /** Reports an error that no caller can catch (see ClientOptions.onError). */
  report(error: unknown): void;
}

/** A promise settled from outside, which never counts as unhandled. */
export class Deferred {
  readonly promise: Promise<void>;
  settled = false;
  #resolve!: () => void;
  #reject!: (error: Error) => void;

  constructor() {
    this.promise = new Promise<void>((resolve, reject) => {
      this.#resolve = resolve;
      this.#reject = reject;
    });
    // An application that never awaits `ready` must not crash Node with an
    // unhandled rejection; one that awaits it still gets the error.
    this.promise.catch(() => {});
  }

  resolve(): void {
    if (this.settled) return;
    this.settled = true;
    this.#resolve();
  }

  reject(error: Error): void {
    if (this.settled) return;
    this.settled = true;
    this.#reject(error);
  }
}

/** A set of listeners; a listener that throws is reported, not fatal. */
export class Listeners<A extends unknown[]> {
  #set = new Set<(...args: A) => void>();

  add(listener: (...args: A) => void): () => void {
    // Wrapped so that adding one function twice makes two listeners, each
    // removed by its own unsubscribe.
    const entry = (...args: A) => listener(...args);
    this.#set.add(entry);
    return () => {
      this.#set.delete(entry);
    };
  }

  emit(report: (error: unknown) => void, ...args: A): void {
    // A copy, so that a listener may add or remove listeners; one removed
    // by an earlier listener is not called.
    for (const listener of [...this.#set]) {
      if (this.#set.has(listener)) call(report, listener, ...args);
    }
  }
}

/** Calls fn, reporting what it throws. */
export function call<A extends unknown[]>(report: (error: unknown) => void, fn: ((...args: A) => void) | undefined, ...args: A): void {
  if (!fn) return;
  try {
    fn(...args);
  } catch (error) {
    report(error);
  }
}
