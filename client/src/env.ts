// What the client uses of its environment. Browsers and Node both have all
// of it; it is typed here so that the package compiles without DOM or Node
// types, and so cannot come to depend on either by accident.

interface Env {
  setTimeout(callback: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
  console: { error(...data: unknown[]): void };
  URL: new (url: string, base?: string) => { protocol: string; href: string };
  location?: { href?: string };
  WebSocket?: unknown;
  addEventListener?: (type: string, listener: () => void) => void;
  removeEventListener?: (type: string, listener: () => void) => void;
}

export const env = globalThis as unknown as Env;

/** A timer handle, whatever the environment's is. */
export type Timer = unknown;

export const setTimer = (callback: () => void, ms: number): Timer => env.setTimeout(callback, ms);
export const clearTimer = (timer: Timer): void => {
  if (timer !== undefined) env.clearTimeout(timer);
};
