import { env } from "./env.js";

// The little of a WebSocket the client uses, so that the browser's, Node
// 22's and the ws package's all fit without DOM or Node types.

/** The event handlers' arguments, as every WebSocket implementation passes them. */
export interface MessageEventLike {
  readonly data: unknown;
}
export interface CloseEventLike {
  readonly code: number;
  readonly reason: string;
}

/**
 * A WebSocket: the browser's, Node 22's global one, or the `ws` package's.
 * The handler properties are written as methods so that implementations
 * whose events carry more fields (all of them) still fit.
 */
export interface WebSocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: { handle(event: unknown): void }["handle"] | null;
  onmessage: { handle(event: MessageEventLike): void }["handle"] | null;
  onclose: { handle(event: CloseEventLike): void }["handle"] | null;
  onerror: { handle(event: unknown): void }["handle"] | null;
}

/** A WebSocket constructor, such as `WebSocket` or `(await import("ws")).WebSocket`. */
export type WebSocketConstructor = new (url: string, protocols?: string | string[]) => WebSocketLike;

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
export function tokenProtocols(token: string | undefined): string[] {
  if (token === undefined) return [];
  if (!TCHARS.test(token)) {
    // Not a secret-revealing message: it says what is wrong, not the token.
    throw new TypeError(
      "restlive: a token must be a valid WebSocket subprotocol token: letters, digits and !#$%&'*+-.^_`|~ " +
        "(hex and unpadded base64url work; standard base64 with + / = does not)",
    );
  }
  return [PROTOCOL, TOKEN_PREFIX + token];
}

/**
 * Returns the absolute ws: or wss: URL of url: a ws(s) URL as it is, an
 * http(s) URL with its scheme changed, or a path on the page's origin.
 */
export function webSocketURL(url: string): string {
  const base = env.location?.href;
  let u;
  try {
    u = new env.URL(url, base);
  } catch {
    throw new TypeError(`restlive: ${JSON.stringify(url)} is not an absolute URL, and there is no page to resolve it against`);
  }
  if (u.protocol === "http:") u.protocol = "ws:";
  else if (u.protocol === "https:") u.protocol = "wss:";
  if (u.protocol !== "ws:" && u.protocol !== "wss:") {
    throw new TypeError(`restlive: ${JSON.stringify(url)} is not a ws:, wss:, http: or https: URL`);
  }
  return u.href;
}
