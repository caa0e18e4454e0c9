// Generated from client/src by examples/todolist/browsertest/client-assets.mjs: do not edit.
/**
 * The server refused a subscription, or ended one that was live. `code` is
 * the protocol's (400 bad request, 403 forbidden, 404 not found, 429 too
 * many), and `message` the server's own words.
 */
export class SubscriptionError extends Error {
    name = "SubscriptionError";
    code;
    constructor(code, message) {
        super(message);
        this.code = code;
    }
}
/**
 * The connection ended in a way that retrying cannot fix (`code` 4003,
 * authentication required or ended; 1008, origin or policy refused), or the
 * application closed the client (`code` 1000).
 */
export class ConnectionError extends Error {
    name = "ConnectionError";
    /** The WebSocket close code. */
    code;
    /** The close reason the server gave, if any. */
    reason;
    constructor(code, reason, message) {
        super(message ?? `restlive: connection closed with ${code}${reason ? `: ${reason}` : ""}`);
        this.code = code;
        this.reason = reason;
    }
}
