// Generated from client/src by examples/todolist/browsertest/client-assets.mjs: do not edit.
import { ConnectionError, SubscriptionError } from "./errors.js";
import { Deferred, Listeners, call } from "./internal.js";
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
export class LiveCollection {
    target;
    /**
     * Resolves once the collection holds the scope's state for the first
     * time. Rejects with a SubscriptionError if the server refuses the
     * subscription, or a ConnectionError if the client fails or is closed,
     * or close() is called, first.
     */
    ready;
    #link;
    #key;
    #onError;
    #ready = new Deferred();
    #listeners = new Listeners();
    // What the collection holds, by String(key), in the order instances came.
    #items = new Map();
    // #items as an array, built when asked for and kept until the next change,
    // so that it is the same array between changes (what React's
    // useSyncExternalStore and Svelte's stores compare).
    #array;
    #status = "loading";
    #error;
    #synced = false;
    // The offset of the last frame applied: where a resume starts.
    #offset;
    #attempt;
    // 429s in a row answering resubscribes.
    #refusals = 0;
    /** Made by `client.collection`. */
    constructor(link, target, options) {
        this.#link = link;
        this.target = target;
        this.#key = options.key ?? ((instance) => instance.id);
        this.#onError = options.onError;
        this.ready = this.#ready.promise;
    }
    get status() {
        return this.#status;
    }
    /** Why the collection closed, if not by close(). */
    get error() {
        return this.#error;
    }
    /** The instances, in the order they came; the same array until the next change. */
    get items() {
        this.#array ??= Object.freeze([...this.#items.values()]);
        return this.#array;
    }
    get size() {
        return this.#items.size;
    }
    /** The instance whose key is key (14 and "14" are the same). */
    get(key) {
        return this.#items.get(String(key));
    }
    has(key) {
        return this.#items.has(String(key));
    }
    /**
     * Calls listener after each change, with what changed; returns the
     * function that stops it. Bound to the collection, so it can be passed
     * as it is: `useSyncExternalStore(tasks.onChange, () => tasks.items)`.
     */
    onChange = (listener) => this.#listeners.add(listener);
    /** Stops the subscription. What the collection holds stays, no longer updated. */
    close() {
        this.#status = "closed";
        this.#attempt = undefined;
        this.#ready.reject(new ConnectionError(1000, "", "restlive: collection closed before it was loaded"));
        return this.#link.remove(this);
    }
    /** @internal */
    begin() {
        this.#attempt = { ops: [] };
        if (this.#synced)
            this.#status = "syncing";
        return this.#offset === undefined ? { snapshot: true } : { since: this.#offset };
    }
    /** @internal */
    receive(frame) {
        switch (frame.type) {
            case "snapshot":
                // Only an attempt's first frames are a snapshot.
                if (!this.#attempt)
                    return;
                for (const instance of frame.instances ?? [])
                    this.#attempt.ops.push({ set: instance });
                return;
            case "broadcast":
                if (frame.action === undefined)
                    return;
                if (this.#attempt) {
                    this.#attempt.ops.push(op(frame.action, frame.instance));
                    return;
                }
                this.#apply(frame.action, frame.instance);
                if (frame.offset !== undefined)
                    this.#offset = frame.offset;
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
    disconnected() {
        // What an unfinished attempt gathered is dropped: the next one starts
        // again from the offset of what was applied.
        this.#attempt = undefined;
        if (this.#synced && this.#status === "live")
            this.#status = "syncing";
    }
    /** @internal */
    stopped(error, final) {
        this.#attempt = undefined;
        this.#ready.reject(error);
        if (final) {
            this.#status = "closed";
            this.#error = error;
        }
    }
    #keyOf = (instance) => {
        const key = this.#key(instance);
        if (key === undefined || key === null) {
            this.#link.report(new Error(`restlive: ${this.target.model}: an instance without a key: ${JSON.stringify(instance)}`));
            return undefined;
        }
        return String(key);
    };
    #subscribed(frame) {
        const attempt = this.#attempt;
        if (!attempt)
            return;
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
        const base = resumed ? new Map(this.#items) : new Map();
        this.#attempt = undefined;
        this.#offset = frame.offset;
        this.#commit(applyOps(base, attempt.ops, this.#keyOf), resumed ? "resume" : "snapshot");
    }
    // Applies one broadcast of a live collection in place: the common case,
    // which must not cost a copy of the whole collection.
    #apply(action, instance) {
        const key = this.#keyOf(instance);
        if (key === undefined)
            return;
        const change = { added: [], updated: [], removed: [], cause: "broadcast" };
        const old = this.#items.get(key);
        if (action === "DELETED") {
            if (old === undefined)
                return;
            this.#items.delete(key);
            change.removed.push(old);
        }
        else {
            if (old !== undefined && jsonEqual(old, instance))
                return;
            this.#items.set(key, instance);
            (old === undefined ? change.added : change.updated).push(instance);
        }
        this.#array = undefined;
        this.#listeners.emit((e) => this.#link.report(e), change);
    }
    // Makes next what the collection holds, tells the listeners what that
    // changed, and marks the collection live.
    #commit(next, cause) {
        const change = { added: [], updated: [], removed: [], cause };
        for (const [key, value] of next) {
            const old = this.#items.get(key);
            if (old === undefined)
                change.added.push(value);
            else if (!jsonEqual(old, value))
                change.updated.push(value);
        }
        for (const [key, value] of this.#items) {
            if (!next.has(key))
                change.removed.push(value);
        }
        const first = !this.#synced;
        this.#synced = true;
        this.#status = "live";
        const changed = change.added.length + change.updated.length + change.removed.length > 0;
        // The first state is news even when it is empty: it ends "loading".
        if (!changed && !first)
            return;
        this.#items = next;
        this.#array = undefined;
        this.#ready.resolve();
        this.#listeners.emit((e) => this.#link.report(e), change);
    }
    #end(error) {
        this.#link.drop(this); // nothing if already removed
        this.#attempt = undefined;
        this.#status = "closed";
        this.#error = error;
        this.#ready.reject(error);
        call((e) => this.#link.report(e), this.#onError, error);
    }
}
function op(action, instance) {
    return action === "DELETED" ? { delete: instance } : { set: instance };
}
// Applies ops to items in order: CREATED and UPDATED insert or replace (a
// resume may send either for an instance held or not), DELETED removes
// what is held and ignores what is not.
function applyOps(items, ops, keyOf) {
    for (const o of ops) {
        if ("set" in o) {
            const key = keyOf(o.set);
            if (key !== undefined)
                items.set(key, o.set);
        }
        else {
            const key = keyOf(o.delete);
            if (key !== undefined)
                items.delete(key);
        }
    }
    return items;
}
/** Reports whether two JSON values are equal, whatever their keys' order. */
export function jsonEqual(a, b) {
    if (a === b)
        return true;
    if (typeof a !== "object" || typeof b !== "object" || a === null || b === null)
        return false;
    if (Array.isArray(a) !== Array.isArray(b))
        return false;
    if (Array.isArray(a) && Array.isArray(b)) {
        return a.length === b.length && a.every((v, i) => jsonEqual(v, b[i]));
    }
    const ka = Object.keys(a);
    if (ka.length !== Object.keys(b).length)
        return false;
    return ka.every((k) => Object.hasOwn(b, k) && jsonEqual(a[k], b[k]));
}
