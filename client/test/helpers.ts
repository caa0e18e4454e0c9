// Waiting for events with deadlines: tests never sleep for a fixed time.

/** How long a test waits for one expected event. */
export const DEADLINE = Number(process.env["RESTLIVE_TEST_DEADLINE_MS"]) || 10_000;

/** Rejects with what was awaited if promise has not settled within ms. */
export function within<T>(promise: Promise<T>, what: string, ms = DEADLINE): Promise<T> {
  let timer: NodeJS.Timeout;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** A queue of values pushed by callbacks and taken by tests, in order. */
export class Queue<T> {
  #items: T[] = [];
  #waiters: ((value: T) => void)[] = [];

  push = (value: T): void => {
    const waiter = this.#waiters.shift();
    if (waiter) waiter(value);
    else this.#items.push(value);
  };

  /** The next value, waiting for it up to the deadline. */
  next(what: string, ms = DEADLINE): Promise<T> {
    if (this.#items.length > 0) return Promise.resolve(this.#items.shift()!);
    return within(new Promise<T>((resolve) => this.#waiters.push(resolve)), what, ms);
  }

  /** The values pushed and not yet taken. */
  get pending(): readonly T[] {
    return this.#items;
  }
}

/**
 * Resolves once check() is true, testing it now and after each call of the
 * function given to subscribe; rejects at the deadline with what.
 */
export function until(subscribe: (listener: () => void) => () => void, check: () => boolean, what: string, ms = DEADLINE): Promise<void> {
  if (check()) return Promise.resolve();
  let stop = () => {};
  const done = new Promise<void>((resolve) => {
    stop = subscribe(() => {
      if (check()) resolve();
    });
  });
  return within(done, what, ms).finally(() => stop());
}
