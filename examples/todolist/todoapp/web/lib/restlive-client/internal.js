// Generated from client/src by examples/todolist/browsertest/client-assets.mjs: do not edit.
// What the client and its subscriptions say to each other. Not exported
// from the package.
/** A promise settled from outside, which never counts as unhandled. */
export class Deferred {
    promise;
    settled = false;
    #resolve;
    #reject;
    constructor() {
        this.promise = new Promise((resolve, reject) => {
            this.#resolve = resolve;
            this.#reject = reject;
        });
        // An application that never awaits `ready` must not crash Node with an
        // unhandled rejection; one that awaits it still gets the error.
        this.promise.catch(() => { });
    }
    resolve() {
        if (this.settled)
            return;
        this.settled = true;
        this.#resolve();
    }
    reject(error) {
        if (this.settled)
            return;
        this.settled = true;
        this.#reject(error);
    }
}
/** A set of listeners; a listener that throws is reported, not fatal. */
export class Listeners {
    #set = new Set();
    add(listener) {
        // Wrapped so that adding one function twice makes two listeners, each
        // removed by its own unsubscribe.
        const entry = (...args) => listener(...args);
        this.#set.add(entry);
        return () => {
            this.#set.delete(entry);
        };
    }
    emit(report, ...args) {
        // A copy, so that a listener may add or remove listeners; one removed
        // by an earlier listener is not called.
        for (const listener of [...this.#set]) {
            if (this.#set.has(listener))
                call(report, listener, ...args);
        }
    }
}
/** Calls fn, reporting what it throws. */
export function call(report, fn, ...args) {
    if (!fn)
        return;
    try {
        fn(...args);
    }
    catch (error) {
        report(error);
    }
}
