// The wire protocol (PROTOCOL.md in the restlive repository): what the
// client sends, and what it reads of what the server sends. Nothing here
// keeps state.

/** A value the protocol compares as the field's type: 14 and "14" match. */
export type Scalar = string | number | boolean;

/**
 * The two dialects a server accepts. "seed" frames carry `request_id`;
 * "typed" frames are django-rest-live 0.4's, with `type` and `id`.
 */
export type Dialect = "seed" | "typed";

/** What to subscribe to. */
export interface Target {
  /** The model's label, `app.Model`, as the server registered its view. */
  model: string;
  /**
   * The field that groups instances, one of the view's group-by fields,
   * such as "list_id" (a foreign key by its column). Omit it, or say "pk"
   * or "id", for one instance. The seed dialect only.
   */
  groupBy?: string;
  /**
   * The instance's primary key (or the view's lookup value), or the
   * group's value. In the typed dialect, omit it to subscribe to the
   * model's whole list, as narrowed by `query`.
   */
  value?: Scalar;
  /** View keyword arguments: what the URL path would have carried. */
  args?: Record<string, Scalar>;
  /** Query parameters, as the view's filters read `?a=b`; an array repeats one. */
  query?: Record<string, Scalar | readonly Scalar[]>;
}

/** What changed, as a broadcast says. */
export type Action = "CREATED" | "UPDATED" | "DELETED";

/** A decoded server frame, whichever dialect it came in. */
export interface ServerFrame {
  type: string;
  /** The request id it answers, as a string ("7" for 7); null if none. */
  key: string | null;
  action?: Action;
  instance?: unknown;
  instances?: unknown[];
  offset?: string;
  resumed?: boolean;
  code?: number;
  message?: string;
}

const isPK = (groupBy: string | undefined) => groupBy === undefined || groupBy === "pk" || groupBy === "id";

/**
 * Returns the subscribe frame for target. `extra` adds the snapshot and
 * resume fields. It throws a TypeError for a target the dialect cannot
 * express, so that a mistake shows where the subscription is made.
 */
export function encodeSubscribe(
  dialect: Dialect,
  id: number,
  target: Target,
  extra: Record<string, unknown>,
): Record<string, unknown> {
  if (typeof target.model !== "string" || target.model === "") {
    throw new TypeError("restlive: a subscription needs a model, such as \"todolist.Task\"");
  }
  const frame: Record<string, unknown> = {};
  if (dialect === "typed") {
    if (!isPK(target.groupBy)) {
      throw new TypeError(
        `restlive: the typed dialect has no groupBy ("${target.groupBy}"): filter the list with query instead, or use the seed dialect`,
      );
    }
    Object.assign(frame, { type: "subscribe", id, model: target.model });
    if (target.value === undefined) {
      frame["action"] = "list";
    } else {
      Object.assign(frame, { action: "retrieve", lookup_by: target.value });
    }
    if (target.args) frame["view_kwargs"] = target.args;
  } else {
    if (target.value === undefined) {
      throw new TypeError(`restlive: a subscription to ${target.model} needs a value (a primary key, or a group's value)`);
    }
    Object.assign(frame, { request_id: id, model: target.model });
    if (!isPK(target.groupBy)) frame["group_by"] = target.groupBy;
    frame["value"] = target.value;
    if (target.args) frame["arguments"] = target.args;
  }
  if (target.query) frame["query_params"] = target.query;
  // The ack tells the client when the subscription is live: the moment a
  // handle's ready resolves, and the end of a snapshot or a resume.
  frame["ack"] = true;
  return Object.assign(frame, extra);
}

/** Returns the unsubscribe frame for request id. */
export function encodeUnsubscribe(dialect: Dialect, id: number): Record<string, unknown> {
  if (dialect === "typed") return { type: "unsubscribe", id, ack: true };
  return { request_id: id, unsubscribe: true, ack: true };
}

/**
 * Decodes a server frame. It throws on a frame that is not a JSON object
 * with a string `type`: such a frame names no request the client could
 * hand it to.
 */
export function decodeFrame(data: unknown): ServerFrame {
  if (typeof data !== "string") {
    throw new Error("restlive: the server sent a binary frame");
  }
  const raw: unknown = JSON.parse(data);
  if (raw === null || typeof raw !== "object" || Array.isArray(raw)) {
    throw new Error(`restlive: the server sent a frame that is not an object: ${data.slice(0, 200)}`);
  }
  const m = raw as Record<string, unknown>;
  if (typeof m["type"] !== "string") {
    throw new Error(`restlive: the server sent a frame without a type: ${data.slice(0, 200)}`);
  }
  // Replies echo the dialect of the request: "request_id" or "id".
  const id = "request_id" in m ? m["request_id"] : m["id"];
  const frame: ServerFrame = {
    type: m["type"],
    key: typeof id === "number" || typeof id === "string" ? String(id) : null,
  };
  const action = m["action"];
  if (action === "CREATED" || action === "UPDATED" || action === "DELETED") frame.action = action;
  if ("instance" in m) frame.instance = m["instance"];
  if (Array.isArray(m["instances"])) frame.instances = m["instances"];
  if (typeof m["offset"] === "string") frame.offset = m["offset"];
  if (typeof m["resumed"] === "boolean") frame.resumed = m["resumed"];
  if (typeof m["code"] === "number") frame.code = m["code"];
  if (typeof m["message"] === "string") frame.message = m["message"];
  return frame;
}
