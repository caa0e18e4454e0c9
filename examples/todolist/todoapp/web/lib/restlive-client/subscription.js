// Generated from client/src by examples/todolist/browsertest/client-assets.mjs: do not edit.
import { ConnectionError, SubscriptionError } from "./errors.js";
import { Deferred, call } from "./internal.js";
/**
 * A subscription to one instance or a group, made by `client.subscribe`.
 * It is resubscribed on every new connection until `unsubscribe()` or an
 * error from the server ends it.
 */
export class Subscription {
    target;
    /**
     * Resolves once the subscription is live: the server confirmed it, and
     * every change committed after that is broadcast. Rejects with a
     * SubscriptionError if the server refuses it, or a ConnectionError if
     * the client fails or is closed, or unsubscribe() is called, first.
     */
    ready;
    #ready = new Deferred();
    #status = "subscribing";
    #error;
    #wasLive = false;
    // 429s in a row answering resubscribes.
    #refusals = 0;
    #handlers;
    #link;
    /** Made by `client.subscribe`. */
    constructor(link, target, handlers) {
        this.#link = link;
        this.target = target;
        this.#handlers = handlers;
        this.ready = this.#ready.promise;
    }
    get status() {
        return this.#status;
    }
    /** Why the subscription closed, if not by unsubscribe(). */
    get error() {
        return this.#error;
    }
    /**
     * Ends the subscription: no broadcast is delivered after this call.
     * Resolves when the server confirms (at once when not connected).
     */
    unsubscribe() {
        this.#status = "closed";
        this.#ready.reject(new ConnectionError(1000, "", "restlive: unsubscribed before the subscription was live"));
        return this.#link.remove(this);
    }
    /** @internal */
    begin() {
        return {};
    }
    /** @internal */
    receive(frame) {
        const report = (e) => this.#link.report(e);
        switch (frame.type) {
            case "subscribed": {
                if (this.#status !== "subscribing")
                    return;
                this.#status = "live";
                this.#refusals = 0;
                this.#ready.resolve();
                const again = this.#wasLive;
                this.#wasLive = true;
                if (again)
                    call(report, this.#handlers.onResync, "reconnected");
                return;
            }
            case "broadcast":
                if (frame.action === undefined)
                    return;
                call(report, this.#handlers.onBroadcast, { action: frame.action, instance: frame.instance });
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
    disconnected() {
        if (this.#status === "live")
            this.#status = "subscribing";
    }
    /** @internal */
    stopped(error, final) {
        this.#ready.reject(error);
        if (final) {
            this.#status = "closed";
            this.#error = error;
        }
    }
    #end(error) {
        this.#link.drop(this);
        this.#status = "closed";
        this.#error = error;
        this.#ready.reject(error);
        call((e) => this.#link.report(e), this.#handlers.onError, error);
    }
}
