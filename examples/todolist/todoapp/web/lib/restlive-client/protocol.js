// Generated from client/src by examples/todolist/browsertest/client-assets.mjs: do not edit.
// The wire protocol (PROTOCOL.md in the restlive repository): what the
// client sends, and what it reads of what the server sends. Nothing here
// keeps state.
const isPK = (groupBy) => groupBy === undefined || groupBy === "pk" || groupBy === "id";
/**
 * Returns the subscribe frame for target. `extra` adds the snapshot and
 * resume fields. It throws a TypeError for a target the dialect cannot
 * express, so that a mistake shows where the subscription is made.
 */
export function encodeSubscribe(dialect, id, target, extra) {
    if (typeof target.model !== "string" || target.model === "") {
        throw new TypeError("restlive: a subscription needs a model, such as \"todolist.Task\"");
    }
    const frame = {};
    if (dialect === "typed") {
        if (!isPK(target.groupBy)) {
            throw new TypeError(`restlive: the typed dialect has no groupBy ("${target.groupBy}"): filter the list with query instead, or use the seed dialect`);
        }
        Object.assign(frame, { type: "subscribe", id, model: target.model });
        if (target.value === undefined) {
            frame["action"] = "list";
        }
        else {
            Object.assign(frame, { action: "retrieve", lookup_by: target.value });
        }
        if (target.args)
            frame["view_kwargs"] = target.args;
    }
    else {
        if (target.value === undefined) {
            throw new TypeError(`restlive: a subscription to ${target.model} needs a value (a primary key, or a group's value)`);
        }
        Object.assign(frame, { request_id: id, model: target.model });
        if (!isPK(target.groupBy))
            frame["group_by"] = target.groupBy;
        frame["value"] = target.value;
        if (target.args)
            frame["arguments"] = target.args;
    }
    if (target.query)
        frame["query_params"] = target.query;
    // The ack tells the client when the subscription is live: the moment a
    // handle's ready resolves, and the end of a snapshot or a resume.
    frame["ack"] = true;
    return Object.assign(frame, extra);
}
/** Returns the unsubscribe frame for request id. */
export function encodeUnsubscribe(dialect, id) {
    if (dialect === "typed")
        return { type: "unsubscribe", id, ack: true };
    return { request_id: id, unsubscribe: true, ack: true };
}
/**
 * Decodes a server frame. It throws on a frame that is not a JSON object
 * with a string `type`: such a frame names no request the client could
 * hand it to.
 */
export function decodeFrame(data) {
    if (typeof data !== "string") {
        throw new Error("restlive: the server sent a binary frame");
    }
    const raw = JSON.parse(data);
    if (raw === null || typeof raw !== "object" || Array.isArray(raw)) {
        throw new Error(`restlive: the server sent a frame that is not an object: ${data.slice(0, 200)}`);
    }
    const m = raw;
    if (typeof m["type"] !== "string") {
        throw new Error(`restlive: the server sent a frame without a type: ${data.slice(0, 200)}`);
    }
    // Replies echo the dialect of the request: "request_id" or "id".
    const id = "request_id" in m ? m["request_id"] : m["id"];
    const frame = {
        type: m["type"],
        key: typeof id === "number" || typeof id === "string" ? String(id) : null,
    };
    const action = m["action"];
    if (action === "CREATED" || action === "UPDATED" || action === "DELETED")
        frame.action = action;
    if ("instance" in m)
        frame.instance = m["instance"];
    if (Array.isArray(m["instances"]))
        frame.instances = m["instances"];
    if (typeof m["offset"] === "string")
        frame.offset = m["offset"];
    if (typeof m["resumed"] === "boolean")
        frame.resumed = m["resumed"];
    if (typeof m["code"] === "number")
        frame.code = m["code"];
    if (typeof m["message"] === "string")
        frame.message = m["message"];
    return frame;
}
