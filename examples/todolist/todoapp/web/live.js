// live.js: a small browser client for a restlive WebSocket endpoint.
//
// It speaks the seed dialect of the wire protocol (one JSON object per
// frame: {"request_id", "model", "group_by", "value", "query_params"}),
// keeps one socket open, reconnects by itself with capped exponential
// backoff and resubscribes every active subscription on each new socket.
//
//   const live = new LiveClient({ url: '/ws/subscribe/', onStatus: s => ... });
//   const sub = live.subscribe(
//     { model: 'todolist.Task', groupBy: 'list_id', value: 14 },
//     { onMessage: (action, instance) => ..., onLive: ({ reconnected }) => refetch() });
//   sub.close();
//
// Changes committed while the socket was down are not replayed by the
// server, so every subscription gets onLive each time it becomes active on
// a socket (first subscribe, then after every reconnect, and when the
// server sends {"type":"resync"}): that is the moment to refetch the
// current state through REST. Subscriptions ask for an ack, so onLive runs
// once the server has the subscription in place and nothing committed after
// the refetch can be missed; a server that does not ack is given
// `ackTimeout` milliseconds before onLive runs anyway.

/** Connection states reported to onStatus. */
export const Status = Object.freeze({
  CONNECTING: 'connecting', // first attempt, nothing received yet
  OPEN: 'open', // socket open, some subscriptions may still await their ack
  LIVE: 'live', // socket open and every subscription confirmed
  RECONNECTING: 'reconnecting', // socket lost; waiting for the next attempt
  CLOSED: 'closed', // close() was called
});

export class LiveClient {
  /**
   * @param {object} options
   * @param {string} [options.url] WebSocket URL, absolute or a path on this
   *   origin. Defaults to '/ws/subscribe/'.
   * @param {(status: string, detail: object) => void} [options.onStatus]
   *   called on every state change; detail has `retryIn` (ms) while
   *   reconnecting and `code`/`reason` of the last close.
   * @param {number} [options.minBackoff] first retry delay in ms. Defaults to 500.
   * @param {number} [options.maxBackoff] longest retry delay in ms. Defaults to 15000.
   * @param {number} [options.ackTimeout] ms to wait for a subscribe ack
   *   before treating the subscription as live. Defaults to 3000.
   */
  constructor(options = {}) {
    this.url = toWebSocketURL(options.url || '/ws/subscribe/');
    this.onStatus = options.onStatus || (() => {});
    this.minBackoff = options.minBackoff ?? 500;
    this.maxBackoff = options.maxBackoff ?? 15000;
    this.ackTimeout = options.ackTimeout ?? 3000;

    this.status = Status.CONNECTING;
    this.socket = null;
    this.subs = new Map(); // request_id -> Subscription
    this.nextId = 1;
    this.attempt = 0; // failed attempts since the last successful open
    this.retryTimer = null;
    this.closed = false;

    // Retry at once when the browser says the network is back, instead of
    // waiting out a long backoff.
    this.onOnline = () => {
      if (this.status === Status.RECONNECTING) this.reconnect();
    };
    if (typeof window !== 'undefined') window.addEventListener('online', this.onOnline);
    this.connect();
  }

  /**
   * Subscribes to one instance (groupBy 'pk', the default) or to a group.
   * @returns {{close(): void, resync(): void, requestId: number}}
   */
  subscribe({ model, groupBy = 'pk', value, queryParams = {} }, handlers = {}) {
    const sub = {
      requestId: this.nextId++,
      model,
      groupBy,
      value,
      queryParams,
      onMessage: handlers.onMessage || (() => {}),
      onLive: handlers.onLive || (() => {}),
      onError: handlers.onError || (() => {}),
      live: false,
      failed: false, // refused on the current socket; retried on the next one
      wasLive: false,
      ackTimer: null,
    };
    this.subs.set(sub.requestId, sub);
    if (this.isOpen()) this.sendSubscribe(sub);
    this.updateStatus();
    return {
      requestId: sub.requestId,
      close: () => this.unsubscribe(sub),
      resync: () => sub.onLive({ reconnected: false, resync: true }),
    };
  }

  /** Drops the current socket (if any) and connects again now. */
  reconnect() {
    if (this.closed) return;
    clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.attempt = 0;
    if (this.socket) {
      const old = this.socket;
      this.detach(old);
      old.close(1000, 'reconnect');
    }
    this.connect();
  }

  /** Closes the socket for good; subscriptions are forgotten. */
  close() {
    this.closed = true;
    clearTimeout(this.retryTimer);
    if (typeof window !== 'undefined') window.removeEventListener('online', this.onOnline);
    for (const sub of this.subs.values()) clearTimeout(sub.ackTimer);
    this.subs.clear();
    if (this.socket) {
      const old = this.socket;
      this.detach(old);
      old.close(1000, 'closed');
    }
    this.setStatus(Status.CLOSED, {});
  }

  // --- internals ---

  isOpen() {
    return this.socket !== null && this.socket.readyState === WebSocket.OPEN;
  }

  connect() {
    if (this.closed) return;
    // A retry keeps showing "reconnecting"; a first or deliberate attempt
    // shows "connecting".
    if (this.attempt === 0) this.setStatus(Status.CONNECTING, {});
    let socket;
    try {
      socket = new WebSocket(this.url);
    } catch (err) {
      this.scheduleRetry({ code: 0, reason: String(err) });
      return;
    }
    this.socket = socket;
    socket.onopen = () => {
      this.attempt = 0;
      for (const sub of this.subs.values()) this.sendSubscribe(sub);
      this.updateStatus();
    };
    socket.onmessage = (event) => this.handleFrame(event.data);
    socket.onclose = (event) => {
      this.detach(socket);
      this.scheduleRetry({ code: event.code, reason: event.reason });
    };
    // An error is always followed by close, which does the work.
    socket.onerror = () => {};
  }

  detach(socket) {
    socket.onopen = socket.onmessage = socket.onclose = socket.onerror = null;
    if (this.socket === socket) this.socket = null;
    for (const sub of this.subs.values()) {
      clearTimeout(sub.ackTimer);
      sub.live = false;
    }
  }

  scheduleRetry(detail) {
    if (this.closed) return;
    // Full jitter keeps many tabs from reconnecting in lockstep after a
    // server restart.
    const cap = Math.min(this.maxBackoff, this.minBackoff * 2 ** this.attempt);
    const delay = Math.round(cap / 2 + Math.random() * (cap / 2));
    this.attempt++;
    this.setStatus(Status.RECONNECTING, { ...detail, retryIn: delay });
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      this.connect();
    }, delay);
  }

  sendSubscribe(sub) {
    clearTimeout(sub.ackTimer);
    sub.live = false;
    sub.failed = false;
    const frame = {
      request_id: sub.requestId,
      model: sub.model,
      group_by: sub.groupBy,
      value: sub.value,
      query_params: sub.queryParams,
      ack: true,
    };
    this.send(frame);
    sub.ackTimer = setTimeout(() => this.markLive(sub), this.ackTimeout);
  }

  unsubscribe(sub) {
    if (!this.subs.delete(sub.requestId)) return;
    clearTimeout(sub.ackTimer);
    if (this.isOpen()) this.send({ request_id: sub.requestId, unsubscribe: true });
    this.updateStatus();
  }

  send(frame) {
    if (this.isOpen()) this.socket.send(JSON.stringify(frame));
  }

  markLive(sub) {
    clearTimeout(sub.ackTimer);
    if (sub.live || sub.failed || this.subs.get(sub.requestId) !== sub || !this.isOpen()) return;
    sub.live = true;
    const reconnected = sub.wasLive;
    sub.wasLive = true;
    this.updateStatus();
    safeCall(sub.onLive, { reconnected, resync: false });
  }

  handleFrame(data) {
    let msg;
    try {
      msg = JSON.parse(data);
    } catch {
      console.warn('live: ignoring a frame that is not JSON', data);
      return;
    }
    // The 0.4+ dialect says "id" where the seed dialect says "request_id".
    const rid = msg.request_id !== undefined ? msg.request_id : msg.id;
    const sub = rid === undefined || rid === null ? undefined : this.subs.get(Number(rid));
    switch (msg.type) {
      case 'broadcast':
        if (!sub) return; // a late message for a subscription already closed
        // A broadcast proves the subscription is in place.
        if (!sub.live) this.markLive(sub);
        safeCall(sub.onMessage, msg.action, msg.instance, msg);
        return;
      case 'subscribed':
        if (sub) this.markLive(sub);
        return;
      case 'unsubscribed':
        return;
      case 'resync':
        // The server lost track of what it sent (for example its fan-out
        // layer dropped messages): every affected subscriber refetches.
        for (const s of sub ? [sub] : [...this.subs.values()]) {
          safeCall(s.onLive, { reconnected: false, resync: true });
        }
        return;
      case 'error':
        if (sub) {
          clearTimeout(sub.ackTimer);
          sub.live = false;
          sub.failed = true;
          this.updateStatus();
          safeCall(sub.onError, { code: msg.code, message: msg.message || '' });
        } else {
          console.warn('live: server error', msg);
        }
        return;
      default:
        console.warn('live: ignoring unknown message', msg);
    }
  }

  updateStatus() {
    if (!this.isOpen()) return;
    // A refused subscription is settled too: it will not become live on
    // this socket, and its onError has told the application.
    const allLive = [...this.subs.values()].every((s) => s.live || s.failed);
    this.setStatus(allLive ? Status.LIVE : Status.OPEN, {});
  }

  setStatus(status, detail) {
    const changed = status !== this.status;
    this.status = status;
    // Reconnecting is re-reported on every attempt, so the retry countdown
    // stays right.
    if (changed || status === Status.RECONNECTING) safeCall(this.onStatus, status, detail);
  }
}

function toWebSocketURL(url) {
  const u = new URL(url, window.location.href);
  if (u.protocol === 'http:') u.protocol = 'ws:';
  if (u.protocol === 'https:') u.protocol = 'wss:';
  return u.href;
}

function safeCall(fn, ...args) {
  try {
    fn(...args);
  } catch (err) {
    console.error('live: callback failed', err);
  }
}
