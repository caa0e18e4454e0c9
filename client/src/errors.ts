/**
 * The server refused a subscription, or ended one that was live. `code` is
 * the protocol's (400 bad request, 403 forbidden, 404 not found, 429 too
 * many), and `message` the server's own words.
 */
export class SubscriptionError extends Error {
  override name = "SubscriptionError";
  readonly code: number;

  constructor(code: number, message: string) {
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
  override name = "ConnectionError";
  /** The WebSocket close code. */
  readonly code: number;
  /** The close reason the server gave, if any. */
  readonly reason: string;

  constructor(code: number, reason: string, message?: string) {
    super(message ?? `restlive: connection closed with ${code}${reason ? `: ${reason}` : ""}`);
    this.code = code;
    this.reason = reason;
  }
}
