// Generated from client/src by examples/todolist/browsertest/client-assets.mjs: do not edit.
import { fullJitter } from "./backoff.js";
import { LiveCollection } from "./collection.js";
import { ConnectionError } from "./errors.js";
import { clearTimer, env, setTimer } from "./env.js";
import { Listeners } from "./internal.js";
import { decodeFrame, encodeSubscribe, encodeUnsubscribe } from "./protocol.js";
import { OPEN, tokenProtocols, webSocketURL } from "./socket.js";
import { Subscription } from "./subscription.js";
// Close codes after which the client stops: retrying would be refused the
// same way (4003: authentication required or refused; 1008: origin or
// policy). Every other close is retried with backoff: 1001 going away,
// 1006 lost, 1011 server error, 1013 overloaded, and 4001 sessions ended,
// where the next connection authenticates again with what it has now.
const FATAL = new Set([4003, 1008]);
/**
 * A connection to a restlive server: one WebSocket, reconnected with
 * backoff for as long as the client is open, on which every subscription
 * and live collection is made again after each reconnect.
 *
 * Methods may be called in any state; the client is not for sharing
 * across threads (workers), like the WebSocket it holds.
 */
export class LiveClient {
    #url;
    #token;
    #createSocket;
    #dialect;
    #retryDelay;
    #resetBackoffAfter;
    #onError;
    #state = "connecting";
    // Why the client failed, while it is "failed".
    #failure;
    #stateListeners = new Listeners();
    #socket;
    // Bumped by every connect, close and reconnect: a token that arrives for
    // an older generation is dropped.
    #generation = 0;
    // Connections since the last good one: the backoff's exponent.
    #attempt = 0;
    #retryTimer;
    #goodTimer;
    // Every subscription and collection, in the order they were made.
    #channels = new Set();
    // The request ids of the current connection. Ids are never reused, so a
    // late frame of an ended request cannot reach a newer one.
    #nextId = 1;
    #byId = new Map();
    #idOf = new Map();
    // Unsubscribes sent, by request id, waiting for the server to confirm:
    // what to call then, and the 429s met on the way.
    #unsubscribing = new Map();
    // Channels refused with 429, waiting to subscribe again on this connection.
    #later = new Map();
    #link = {
        restart: (ch) => this.#restart(ch),
        remove: (ch) => this.#remove(ch),
        drop: (ch) => this.#dropChannel(ch),
        retryLater: (ch, attempt) => this.#retryLater(ch, attempt),
        report: (error) => this.#report(error),
    };
    constructor(options) {
        this.#url = webSocketURL(options.url);
        if (typeof options.token === "string")
            tokenProtocols(options.token); // a bad token fails here, not later
        this.#token = options.token;
        this.#createSocket = options.createSocket ?? socketFactory(options.WebSocket);
        this.#dialect = options.dialect ?? "seed";
        this.#retryDelay = options.retryDelay ?? fullJitter();
        this.#resetBackoffAfter = options.resetBackoffAfter ?? 5_000;
        this.#onError = options.onError ?? ((error) => env.console.error(error));
        onlineEvents(this.#online, true);
        this.#connect();
    }
    /** The connection's state. */
    get state() {
        return this.#state;
    }
    /** Calls listener on every change of state; returns the function that stops it. */
    onStateChange(listener) {
        return this.#stateListeners.add(listener);
    }
    /**
     * Subscribes to target and returns the subscription at once; it is sent
     * as soon as the connection is open, and again after every reconnect.
     * Throws a TypeError if the target cannot be expressed.
     */
    subscribe(target, handlers = {}) {
        return this.#add(new Subscription(this.#link, this.#check(target), handlers));
    }
    /**
     * Returns a live collection of target's scope: it subscribes with a
     * snapshot and keeps the instances current. Throws a TypeError if the
     * target cannot be expressed.
     */
    collection(target, options = {}) {
        return this.#add(new LiveCollection(this.#link, this.#check(target), options));
    }
    /**
     * Drops the connection, if any, and connects again now, with the backoff
     * reset. After "failed" (say, once the user has logged in again), this
     * is how the client starts again. Does nothing once closed.
     */
    reconnect() {
        if (this.#state === "closed")
            return;
        this.#release(1000, "reconnect");
        this.#attempt = 0;
        this.#connect();
    }
    /**
     * Closes the connection for good. Subscriptions and collections close;
     * those not yet live reject their `ready` with a ConnectionError (1000).
     */
    close() {
        if (this.#state === "closed")
            return;
        this.#release(1000, "closed");
        onlineEvents(this.#online, false);
        const error = new ConnectionError(1000, "", "restlive: the client was closed");
        const channels = [...this.#channels];
        this.#channels.clear();
        this.#setState("closed", {});
        for (const ch of channels)
            ch.stopped(error, true);
    }
    #check(target) {
        encodeSubscribe(this.#dialect, 0, target, {}); // throws for a target the dialect cannot say
        // A copy, so that changing the caller's object later changes nothing.
        return { ...target };
    }
    #add(ch) {
        if (this.#state === "closed") {
            ch.stopped(new ConnectionError(1000, "", "restlive: the client is closed"), true);
            return ch;
        }
        this.#channels.add(ch);
        // Failed, it is kept for reconnect(), but told that it will not be live before.
        if (this.#failure)
            ch.stopped(this.#failure, false);
        else if (this.#isOpen())
            this.#subscribe(ch);
        return ch;
    }
    // --- the connection ---
    #connect() {
        const generation = ++this.#generation;
        this.#setState("connecting", {});
        // A state listener may have closed or reconnected the client: state
        // listeners run before the client goes on, here and below.
        if (generation !== this.#generation)
            return;
        const token = this.#token;
        if (typeof token !== "function") {
            this.#open(token);
            return;
        }
        // Asked anew for every connection; whatever it returns or throws,
        // settled the same way.
        Promise.resolve()
            .then(token)
            .then((t) => generation === this.#generation && this.#open(t), (error) => generation === this.#generation && this.#retry({ reason: `token: ${String(error)}` }));
    }
    #open(token) {
        let socket;
        try {
            socket = this.#createSocket(this.#url, tokenProtocols(token));
        }
        catch (error) {
            if (error instanceof TypeError) {
                this.#fail(error, {}); // a bad token or URL: retrying cannot help
            }
            else {
                this.#retry({ reason: String(error) });
            }
            return;
        }
        this.#socket = socket;
        socket.onopen = () => this.#opened(socket);
        socket.onmessage = (event) => this.#socket === socket && this.#receive(event.data);
        socket.onclose = (event) => this.#socket === socket && this.#closed(event.code, event.reason);
        // Every error is followed by a close, which does the work.
        socket.onerror = () => { };
    }
    #opened(socket) {
        if (this.#socket !== socket)
            return;
        this.#setState("open", {});
        if (this.#socket !== socket)
            return;
        // A connection that stays up this long was a good one: the next
        // outage starts its backoff from the beginning.
        this.#goodTimer = setTimer(() => {
            this.#attempt = 0;
        }, this.#resetBackoffAfter);
        for (const ch of this.#channels) {
            if (this.#socket !== socket)
                return; // a handler closed or reconnected the client
            this.#subscribe(ch);
        }
    }
    #closed(code, reason) {
        this.#release();
        if (FATAL.has(code)) {
            this.#fail(new ConnectionError(code, reason), { code, reason });
        }
        else {
            this.#retry({ code, reason });
        }
    }
    #retry(info) {
        const delay = Math.max(0, this.#retryDelay(this.#attempt++));
        // Armed before the listeners hear of it, so that one that closes or
        // reconnects the client clears it.
        this.#retryTimer = setTimer(() => {
            this.#retryTimer = undefined;
            this.#connect();
        }, delay);
        this.#setState("reconnecting", { ...info, retryIn: delay });
    }
    #fail(error, info) {
        this.#failure = error;
        for (const ch of [...this.#channels])
            ch.stopped(error, false);
        this.#setState("failed", { ...info, error });
    }
    // Lets go of the socket (closing it with code, if given, when it is
    // still ours to close), and of everything tied to it: timers, the
    // request ids, what waited for the server.
    #release(code, reason) {
        this.#generation++;
        clearTimer(this.#retryTimer);
        clearTimer(this.#goodTimer);
        this.#retryTimer = this.#goodTimer = undefined;
        const socket = this.#socket;
        this.#socket = undefined;
        if (socket) {
            socket.onopen = socket.onmessage = socket.onclose = null;
            // Not null: ws (Node) emits an error when a socket still connecting
            // is closed, and an error event nobody listens to crashes Node.
            socket.onerror = () => { };
            if (code !== undefined) {
                try {
                    socket.close(code, reason);
                }
                catch {
                    // Closing a socket still connecting may throw in some implementations; it is gone either way.
                }
            }
        }
        this.#byId.clear();
        this.#idOf.clear();
        for (const timer of this.#later.values())
            clearTimer(timer);
        this.#later.clear(); // the next connection subscribes them anyway
        // An unsubscribe the server never confirmed is done: its subscription
        // ended with the connection.
        for (const u of this.#unsubscribing.values()) {
            clearTimer(u.timer);
            u.done();
        }
        this.#unsubscribing.clear();
        for (const ch of [...this.#channels])
            ch.disconnected();
    }
    #online = () => {
        if (this.#state === "reconnecting")
            this.reconnect();
    };
    #isOpen() {
        return this.#socket !== undefined && this.#socket.readyState === OPEN;
    }
    #send(frame) {
        this.#socket?.send(JSON.stringify(frame));
    }
    #setState(state, info) {
        if (state !== "failed")
            this.#failure = undefined;
        // Reconnecting is told on every attempt, so that a countdown stays right.
        if (state === this.#state && state !== "reconnecting")
            return;
        this.#state = state;
        this.#stateListeners.emit(this.#report, state, info);
    }
    #report = (error) => {
        try {
            this.#onError(error);
        }
        catch {
            // The error handler failing leaves nobody to tell.
        }
    };
    // --- subscriptions ---
    #subscribe(ch) {
        const id = this.#nextId++;
        const frame = encodeSubscribe(this.#dialect, id, ch.target, ch.begin());
        this.#byId.set(String(id), ch);
        this.#idOf.set(ch, id);
        this.#send(frame);
    }
    #restart(ch) {
        if (!this.#channels.has(ch) || !this.#isOpen())
            return; // the next connection subscribes it anyway
        void this.#endRequest(ch);
        this.#subscribe(ch);
    }
    #remove(ch) {
        if (!this.#channels.delete(ch))
            return Promise.resolve();
        return this.#endRequest(ch);
    }
    #dropChannel(ch) {
        this.#channels.delete(ch);
        this.#forgetRequest(ch);
    }
    #retryLater(ch, attempt) {
        this.#forgetRequest(ch); // refused: the server has no such request
        const timer = setTimer(() => {
            this.#later.delete(ch);
            if (this.#channels.has(ch) && this.#isOpen())
                this.#subscribe(ch);
        }, Math.max(0, this.#retryDelay(attempt)));
        this.#later.set(ch, timer);
    }
    // Ends ch's request on the server, if it has one there; resolves when
    // the server confirms. Frames still on their way for it are dropped.
    #endRequest(ch) {
        const id = this.#forgetRequest(ch);
        if (id === undefined || !this.#isOpen())
            return Promise.resolve();
        this.#send(encodeUnsubscribe(this.#dialect, id));
        return new Promise((done) => this.#unsubscribing.set(String(id), { done, refusals: 0 }));
    }
    // Forgets ch's request of this connection, and a retry of it waiting;
    // returns the request's id, if it had one.
    #forgetRequest(ch) {
        clearTimer(this.#later.get(ch));
        this.#later.delete(ch);
        const id = this.#idOf.get(ch);
        this.#idOf.delete(ch);
        if (id !== undefined)
            this.#byId.delete(String(id));
        return id;
    }
    #receive(data) {
        let frame;
        try {
            frame = decodeFrame(data);
        }
        catch (error) {
            this.#report(error);
            return;
        }
        const key = frame.key;
        // The answer to an unsubscribe: "unsubscribed", or an error if the
        // server had already ended the subscription.
        const u = key === null ? undefined : this.#unsubscribing.get(key);
        if (u && (frame.type === "unsubscribed" || frame.type === "error")) {
            if (frame.type === "error" && frame.code === 429) {
                // Refused as too fast: the subscription is still active there,
                // and would hold the server's resources (and count against this
                // connection's limits) until the connection ends. Ask again.
                u.timer = setTimer(() => {
                    u.timer = undefined;
                    if (this.#isOpen())
                        this.#send(encodeUnsubscribe(this.#dialect, Number(key)));
                }, Math.max(0, this.#retryDelay(u.refusals++)));
                return;
            }
            this.#unsubscribing.delete(key);
            u.done();
            return;
        }
        if (frame.type === "resync" && key === null) {
            for (const ch of [...this.#byId.values()])
                ch.receive(frame);
            return;
        }
        const ch = key === null ? undefined : this.#byId.get(key);
        if (ch) {
            ch.receive(frame);
        }
        else if (frame.type === "error" && key === null) {
            this.#report(new Error(`restlive: the server refused a frame: ${frame.code ?? "?"} ${frame.message ?? ""}`));
        }
        // Anything else names a request that has ended: a broadcast already on
        // its way when the client unsubscribed.
    }
}
function socketFactory(ctor) {
    const WS = ctor ?? env.WebSocket;
    if (!WS) {
        throw new TypeError("restlive: there is no global WebSocket (Node 20): pass one, such as the ws package's, as options.WebSocket");
    }
    return (url, protocols) => new WS(url, protocols);
}
// A browser says when the network comes back: reconnect then rather than
// wait out the backoff.
function onlineEvents(listener, add) {
    if (add)
        env.addEventListener?.("online", listener);
    else
        env.removeEventListener?.("online", listener);
}
