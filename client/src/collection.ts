import { ConnectionError, SubscriptionError } from "./errors.js";
import { Deferred, type Link, Listeners, call } from "./internal.js";
import type { Action, ServerFrame, Target } from "./protocol.js";

/** A key of an instance in a collection: its id, by default. */
export type Key = string | number;

/** Options of `client.collection`. */
export interface CollectionOptions<T> {
  /**
   * Returns an instance's key. It must read only the identifying fields,
   * which are all a DELETED broadcast carries. Defaults to `instance.id`.
   */
  key?: (instance: T) => Key;
  /** The server refused or ended the subscription; the collection is closed. */
  onError?(error: SubscriptionError): void;
}

/** How a change came: the first or a fresh full state, a resume, or one broadcast. */
export type ChangeCause = "snapshot" | "resume" | "broadcast";

/** What one change did to a collection. */
export interface CollectionChange<T> {
  /** Instances that entered the collection. */
  added: T[];
  /** Instances that changed: their new values. */
  updated: T[];
  /** Instances that left the collection: their last values. */
  removed: T[];
  cause: ChangeCause;
}

/**
 * "loading" until the first state arrives; "syncing" while it catches up
 * after a reconnect or a resync (holding what it had); "closed" once
 * closed by the application or ended by the server.
 */
export type CollectionStatus = "loading" | "live" | "syncing" | "closed";

// A change received while an attempt is incomplete, kept to be applied
// with the rest once it is.
type Op = { set: unknown } | { delete: unknown };

// An attempt: one subscribe of the collection, from the frame that starts
// it until "subscribed" completes the state it brings.
interface Attempt {
  // The snapshot's instances and the changes, in the order they came.
  ops: Op[];
}

/**
 * The instances of a subscription's scope, keyed by id, kept current.
 *
 * It subscribes with a snapshot, then applies each broadcast. After a
 * reconnect or a resync it resumes from the offset of the last frame it
 * applied, so the server sends only what changed, or a fresh snapshot when
 * it cannot tell; meanwhile it keeps what it had, and applies what comes
 * back all at once, with one change event. No instance is lost or held
 * twice across any of that.
 *
 * Instances are the server's JSON, shared with listeners: treat them as
 * read-only.
 */
export class LiveCollection<T = unknown> {
  readonly target: Target;
  /**
   * Resolves once the collection holds the scope's state for the first
   * time. Rejects with a SubscriptionError if the server refuses the
   * subscription, or a ConnectionError if the client fails or is closed,
   * or close() is called, first.
   */
  readonly ready: Promise<void>;

  #link: Link;
  #key: (instance: T) => Key;
  #onError: ((error: SubscriptionError) => void) | undefined;
  #ready = new Deferred();
  #listeners = new Listeners<[CollectionChange<T>]>();
  #statusListeners = new Listeners<[CollectionStatus]>();

  // What the collection holds, by String(key), in the order instances came.
  #items = new Map<string, T>();
  // #items as an array, built when asked for and kept until the next change,
  // so that it is the same array between changes (what React's
  // useSyncExternalStore and Svelte's stores compare).
  #array: readonly T[] | undefined;
  #status: CollectionStatus = "loading";
  #error: Error | undefined;
  #synced = false;
  // The offset of the last frame applied: where a resume starts.
  #offset: string | undefined;
  #attempt: Attempt | undefined;
  // 429s in a row answering resubscribes.
  #refusals = 0;

  /** Made by `client.collection`. */
  constructor(link: Link, target: Target, options: CollectionOptions<T>) {
    this.#link = link;
    this.target = target;
    this.#key = options.key ?? ((instance) => (instance as { id: Key }).id);
    this.#onError = options.onError;
    this.ready = this.#ready.promise;
  }

  get status(): CollectionStatus {
    return this.#status;
  }

  /** Why the collection closed, if not by close(). */
  get error(): Error | undefined {
    return this.#error;
  }

  /** The instances, in the order they came; the same array until the next change. */
  get items(): readonly T[] {
    this.#array ??= Object.freeze([...this.#items.values()]);
    return this.#array;
  }

  get size(): number {
    return this.#items.size;
  }

  /** The instance whose key is key (14 and "14" are the same). */
  get(key: Key): T | undefined {
    return this.#items.get(String(key));
  }

  has(key: Key): boolean {
    return this.#items.has(String(key));
  }

  /**
   * Calls listener after each change, with what changed; returns the
   * function that stops it. Bound to the collection, so it can be passed
   * as it is: `useSyncExternalStore(tasks.onChange, () => tasks.items)`.
   */
  readonly onChange = (listener: (change: CollectionChange<T>) => void): (() => void) => this.#listeners.add(listener);

  /**
   * Calls listener each time status changes, with the new status; returns
   * the function that stops it. A resume that changed nothing calls no
   * onChange listener, but does tell this one that the collection is live
   * again.
   */
  readonly onStatus = (listener: (status: CollectionStatus) => void): (() => void) => this.#statusListeners.add(listener);

  #setStatus(status: CollectionStatus): void {
    if (this.#status === status) return;
    this.#status = status;
    this.#statusListeners.emit((e) => this.#link.report(e), status);
  }

  /** Stops the subscription. What the collection holds stays, no longer updated. */
  close(): Promise<void> {
    this.#setStatus("closed");
    this.#attempt = undefined;
    this.#ready.reject(new ConnectionError(1000, "", "restlive: collection closed before it was loaded"));
    return this.#link.remove(this);
  }

  /** @internal */
  begin(): Record<string, unknown> {
    this.#attempt = { ops: [] };
    if (this.#synced) this.#setStatus("syncing");
    return this.#offset === undefined ? { snapshot: true } : { since: this.#offset };
  }

  /** @internal */
  receive(frame: ServerFrame): void {
    switch (frame.type) {
      case "snapshot":
        // Only an attempt's first frames are a snapshot.
        if (!this.#attempt) return;
        for (const instance of frame.instances ?? []) this.#attempt.ops.push({ set: instance });
        return;
      case "broadcast":
        if (frame.action === undefined) return;
        if (this.#attempt) {
          this.#attempt.ops.push(op(frame.action, frame.instance));
          return;
        }
        this.#apply(frame.action, frame.instance);
        if (frame.offset !== undefined) this.#offset = frame.offset;
        return;
      case "subscribed":
        this.#subscribed(frame);
        return;
      case "resync":
        // The server may have missed changes of this scope: catch up from
        // the last offset applied, as after a reconnect.
        this.#link.restart(this);
        return;
      case "error":
        // A resume refused as too many requests (a burst after a
        // reconnect) is tried again, from the same offset.
        if (frame.code === 429 && this.#synced && this.#attempt) {
          this.#attempt = undefined;
          this.#link.retryLater(this, this.#refusals++);
          return;
        }
        this.#end(new SubscriptionError(frame.code ?? 0, frame.message ?? "refused"));
        return;
    }
  }

  /** @internal */
  disconnected(): void {
    // What an unfinished attempt gathered is dropped: the next one starts
    // again from the offset of what was applied.
    this.#attempt = undefined;
    if (this.#synced && this.#status === "live") this.#setStatus("syncing");
  }

  /** @internal */
  stopped(error: Error, final: boolean): void {
    this.#attempt = undefined;
    this.#ready.reject(error);
    if (final) {
      this.#setStatus("closed");
      this.#error = error;
    }
  }

  #keyOf = (instance: unknown): string | undefined => {
    const key = this.#key(instance as T);
    if (key === undefined || key === null) {
      this.#link.report(new Error(`restlive: ${this.target.model}: an instance without a key: ${JSON.stringify(instance)}`));
      return undefined;
    }
    return String(key);
  };

  #subscribed(frame: ServerFrame): void {
    const attempt = this.#attempt;
    if (!attempt) return;
    if (frame.offset === undefined) {
      // The server ignored "snapshot": true. Loading the state some other
      // way (a GET) cannot be made exact: a server may fold an instance's
      // entering and leaving the scope into no broadcast at all, and a GET
      // that saw it in between would hold it forever.
      // The subscription is live on the server: end it there too.
      void this.#link.remove(this);
      this.#end(new SubscriptionError(501, `restlive: the server sent no snapshot of ${this.target.model}: it does not support snapshots`));
      return;
    }
    // A resume adds what changed to what the collection holds; anything
    // else (a first subscribe, or a resume the server could not serve)
    // brings the whole state, which replaces it.
    const resumed = frame.resumed === true;
    this.#refusals = 0;
    const base = resumed ? new Map(this.#items) : new Map<string, T>();
    this.#attempt = undefined;
    this.#offset = frame.offset;
    this.#commit(applyOps(base, attempt.ops, this.#keyOf), resumed ? "resume" : "snapshot");
  }

  // Applies one broadcast of a live collection in place: the common case,
  // which must not cost a copy of the whole collection.
  #apply(action: Action, instance: unknown): void {
    const key = this.#keyOf(instance);
    if (key === undefined) return;
    const change: CollectionChange<T> = { added: [], updated: [], removed: [], cause: "broadcast" };
    const old = this.#items.get(key);
    if (action === "DELETED") {
      if (old === undefined) return;
      this.#items.delete(key);
      change.removed.push(old);
    } else {
      if (old !== undefined && jsonEqual(old, instance)) return;
      this.#items.set(key, instance as T);
      (old === undefined ? change.added : change.updated).push(instance as T);
    }
    this.#array = undefined;
    this.#listeners.emit((e) => this.#link.report(e), change);
  }

  // Makes next what the collection holds, tells the listeners what that
  // changed, and marks the collection live.
  #commit(next: Map<string, T>, cause: ChangeCause): void {
    const change: CollectionChange<T> = { added: [], updated: [], removed: [], cause };
    for (const [key, value] of next) {
      const old = this.#items.get(key);
      if (old === undefined) change.added.push(value);
      else if (!jsonEqual(old, value)) change.updated.push(value);
    }
    for (const [key, value] of this.#items) {
      if (!next.has(key)) change.removed.push(value);
    }
    const first = !this.#synced;
    this.#synced = true;
    const changed = change.added.length + change.updated.length + change.removed.length > 0;
    if (changed) {
      this.#items = next;
      this.#array = undefined;
    }
    // Status listeners see the new state; change listeners, the new status.
    this.#setStatus("live");
    this.#ready.resolve();
    // The first state is news even when it is empty: it ends "loading".
    if (changed || first) this.#listeners.emit((e) => this.#link.report(e), change);
  }

  #end(error: SubscriptionError): void {
    this.#link.drop(this); // nothing if already removed
    this.#attempt = undefined;
    this.#setStatus("closed");
    this.#error = error;
    this.#ready.reject(error);
    call((e) => this.#link.report(e), this.#onError, error);
  }
}

function op(action: Action, instance: unknown): Op {
  return action === "DELETED" ? { delete: instance } : { set: instance };
}

// Applies ops to items in order: CREATED and UPDATED insert or replace (a
// resume may send either for an instance held or not), DELETED removes
// what is held and ignores what is not.
function applyOps<T>(items: Map<string, T>, ops: readonly Op[], keyOf: (instance: unknown) => string | undefined): Map<string, T> {
  for (const o of ops) {
    if ("set" in o) {
      const key = keyOf(o.set);
      if (key !== undefined) items.set(key, o.set as T);
    } else {
      const key = keyOf(o.delete);
      if (key !== undefined) items.delete(key);
    }
  }
  return items;
}

/** Reports whether two JSON values are equal, whatever their keys' order. */
export function jsonEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== "object" || typeof b !== "object" || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a) && Array.isArray(b)) {
    return a.length === b.length && a.every((v, i) => jsonEqual(v, b[i]));
  }
  const ka = Object.keys(a);
  if (ka.length !== Object.keys(b).length) return false;
  return ka.every((k) => Object.hasOwn(b, k) && jsonEqual((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]));
}
