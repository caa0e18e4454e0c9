// Generated from client/src by examples/todolist/browsertest/client-assets.mjs: do not edit.
/**
 * Returns the default retry policy: exponential backoff with full jitter.
 * Retry `attempt` (0 for the first) waits a random time between 0 and
 * min(max, initial × 2^attempt).
 *
 * Full jitter rather than a fixed or half-jittered delay because when a
 * server restarts, every client it had notices at the same instant; spread
 * over the whole window they reconnect at a steady rate instead of in
 * waves (see "Exponential Backoff And Jitter", AWS Architecture Blog).
 */
export function fullJitter(options = {}) {
    const initial = options.initial ?? 500;
    const max = options.max ?? 15_000;
    const random = options.random ?? Math.random;
    return (attempt) => {
        // 2 ** attempt overflows to Infinity long before it matters; min caps it.
        const cap = Math.min(max, initial * 2 ** attempt);
        return Math.floor(random() * cap);
    };
}
