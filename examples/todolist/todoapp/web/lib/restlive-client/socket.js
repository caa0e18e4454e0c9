// Generated from client/src by examples/todolist/browsertest/client-assets.mjs: do not edit.
import { env } from "./env.js";
/** readyState of an open socket, the same in every implementation. */
export const OPEN = 1;
/** The subprotocol the server selects when the client offers a token. */
export const PROTOCOL = "restlive";
/** The prefix of the subprotocol that carries a token. */
export const TOKEN_PREFIX = "restlive.token.";
// An HTTP token (RFC 9110, section 5.6.2): what a subprotocol name may hold.
const TCHARS = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/**
 * Returns the subprotocols that carry token: the WebSocket constructor of
 * a browser cannot set headers, but it can offer subprotocols, which the
 * server reads during the handshake. Without a token, none.
 */
export function tokenProtocols(token) {
    if (token === undefined)
        return [];
    if (!TCHARS.test(token)) {
        // Not a secret-revealing message: it says what is wrong, not the token.
        throw new TypeError("restlive: a token must be a valid WebSocket subprotocol token: letters, digits and !#$%&'*+-.^_`|~ " +
            "(hex and unpadded base64url work; standard base64 with + / = does not)");
    }
    return [PROTOCOL, TOKEN_PREFIX + token];
}
/**
 * Returns the absolute ws: or wss: URL of url: a ws(s) URL as it is, an
 * http(s) URL with its scheme changed, or a path on the page's origin.
 */
export function webSocketURL(url) {
    const base = env.location?.href;
    let u;
    try {
        u = new env.URL(url, base);
    }
    catch {
        throw new TypeError(`restlive: ${JSON.stringify(url)} is not an absolute URL, and there is no page to resolve it against`);
    }
    if (u.protocol === "http:")
        u.protocol = "ws:";
    else if (u.protocol === "https:")
        u.protocol = "wss:";
    if (u.protocol !== "ws:" && u.protocol !== "wss:") {
        throw new TypeError(`restlive: ${JSON.stringify(url)} is not a ws:, wss:, http: or https: URL`);
    }
    return u.href;
}
