// Generated from client/src by examples/todolist/browsertest/client-assets.mjs: do not edit.
// What the client uses of its environment. Browsers and Node both have all
// of it; it is typed here so that the package compiles without DOM or Node
// types, and so cannot come to depend on either by accident.
export const env = globalThis;
export const setTimer = (callback, ms) => env.setTimeout(callback, ms);
export const clearTimer = (timer) => {
    if (timer !== undefined)
        env.clearTimeout(timer);
};
