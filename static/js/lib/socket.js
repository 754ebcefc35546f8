// @ts-check
/*
 * The reconnecting websocket's rules, shared by the widget, the knowledge pages (and the console, once it
 * moves over). Two halves:
 *
 * - Pure state, with no DOM, timer or WebSocket in it, so Node's test runner checks it
 *   (tests/js/socket.test.mjs): `backoff` (exponential, capped, with jitter), `SeqTracker` (apply each
 *   stored event's `seq` once and in order, notice a gap, drop duplicates) and `Outbox` (messages sent but
 *   not acknowledged yet, kept across reconnects and sent again once per connection).
 * - `ReconnectingSocket`, the browser glue: opens the socket, reconnects with `backoff` after a close,
 *   pings, gives up on a half-open socket, and stops for good on the close codes that say it is no use.
 *
 * The database is the truth and pushes are best effort (docs/architecture/realtime.md): a gap is filled by
 * reading the stored events after the last applied `seq`, never by guessing.
 */

/**
 * How long to wait before reconnect attempt `attempt` (1 for the first): the ceiling doubles from `baseMs`
 * up to `capMs`, and the wait is drawn between half the ceiling and the ceiling, so a desk restart is not
 * met by every open tab at the same instant.
 *
 * @param {number} attempt
 * @param {{baseMs?: number, capMs?: number, random?: () => number}} [options]
 * @returns {number} milliseconds
 */
export function backoff(attempt, options) {
  var o = options || {};
  var base = o.baseMs === undefined ? 500 : o.baseMs;
  var cap = o.capMs === undefined ? 10000 : o.capMs;
  var random = o.random || Math.random;
  var ceiling = Math.min(cap, base * Math.pow(2, Math.max(0, attempt - 1)));
  return Math.round(ceiling / 2 + random() * (ceiling / 2));
}

/** @typedef {"apply" | "duplicate" | "gap"} SeqVerdict */

/**
 * Which stored events to apply. Each event carries its conversation's `seq` (1, 2, 3, …); an event is
 * applied once, in order. A live event past a gap is not applied: the caller reads the stored events after
 * `last` (which include it) and offers them with `fromCatchUp`, which are applied in the order given.
 */
export class SeqTracker {
  constructor() {
    /** The highest seq applied; 0 before any. */
    this.last = 0;
    /** The highest seq heard of, applied or not. */
    this.highest = 0;
  }

  /**
   * @param {number} seq
   * @param {boolean} [fromCatchUp] the event comes from reading the stored events, not from a push
   * @returns {SeqVerdict} "apply" (and `last` moves to it), "duplicate" (already applied: drop it) or
   *   "gap" (events before it are missing: catch up from `last`)
   */
  accept(seq, fromCatchUp) {
    if (seq <= this.last) return "duplicate";
    if (seq > this.highest) this.highest = seq;
    if (!fromCatchUp && seq !== this.last + 1) return "gap";
    this.last = seq;
    return "apply";
  }

  /** Whether an event past `last` was heard of but not applied yet (catch up again). */
  behind() {
    return this.highest > this.last;
  }

  reset() {
    this.last = 0;
    this.highest = 0;
  }
}

/**
 * @typedef {{client_msg_id: string, text: string, conversation_id?: string}} OutboxItem
 */

/**
 * Messages written but not acknowledged. Each stays until its ack (or a refusal that sending again cannot
 * fix) and is sent again after every reconnect; on one connection it is sent once, however often the
 * caller flushes. `items()` is what a page keeps in storage across reloads.
 */
export class Outbox {
  /** @param {{max?: number}} [options] */
  constructor(options) {
    this.max = (options && options.max) || 20;
    /** @type {OutboxItem[]} */
    this.list = [];
    /** @type {Record<string, boolean>} client_msg_id -> sent on the current connection, no answer yet */
    this.inFlight = {};
  }

  /** @returns {OutboxItem[]} */
  items() {
    return this.list.slice();
  }

  size() {
    return this.list.length;
  }

  full() {
    return this.list.length >= this.max;
  }

  /** @returns {OutboxItem | undefined} the newest item */
  newest() {
    return this.list[this.list.length - 1];
  }

  /** @param {OutboxItem} item */
  add(item) {
    this.list.push(item);
  }

  /**
   * Replaces the items with ones read back from storage: malformed ones and those of another conversation
   * are dropped, and at most `max` of the newest are kept.
   * @param {unknown} saved
   * @param {string} [conversationId]
   * @returns {OutboxItem[]} the items kept
   */
  restore(saved, conversationId) {
    var list = Array.isArray(saved) ? saved : [];
    this.list = list
      .filter(function (item) {
        return item && item.client_msg_id && typeof item.text === "string" && item.conversation_id === conversationId;
      })
      .slice(-this.max);
    this.inFlight = {};
    return this.items();
  }

  /**
   * The item is settled (acknowledged, or refused for good): it is never sent again.
   * @param {string} clientMsgId
   * @returns {boolean} whether it was in the outbox
   */
  remove(clientMsgId) {
    var before = this.list.length;
    this.list = this.list.filter(function (item) {
      return item.client_msg_id !== clientMsgId;
    });
    delete this.inFlight[clientMsgId];
    return this.list.length !== before;
  }

  /**
   * The desk answered without settling it (a rate limit, a brief outage): the next flush sends it again.
   * @param {string} clientMsgId
   */
  release(clientMsgId) {
    delete this.inFlight[clientMsgId];
  }

  /**
   * What to send now on an open connection: every item not sent on it yet, each marked as sent.
   * @returns {OutboxItem[]}
   */
  takeUnsent() {
    var inFlight = this.inFlight;
    return this.list.filter(function (item) {
      if (inFlight[item.client_msg_id]) return false;
      inFlight[item.client_msg_id] = true;
      return true;
    });
  }

  /** A new connection: nothing is in flight on it, so every item is sent again by the next flush. */
  reconnected() {
    this.inFlight = {};
  }

  clear() {
    this.list = [];
    this.inFlight = {};
  }
}

/**
 * @typedef {object} ReconnectingSocketOptions
 * @property {() => string} url the socket's address, asked before each connection
 * @property {(socket: ReconnectingSocket) => void} [onOpen] the socket opened (send a hello here)
 * @property {(frame: any, socket: ReconnectingSocket) => void} onFrame a JSON frame arrived
 * @property {(code: number) => void} [onClose] the socket closed; a reconnect follows unless it stopped
 * @property {(code: number) => void} [onStop] it stopped for good (a close code in `fatal`)
 * @property {number[]} [fatal] close codes after which reconnecting is no use (signed out, forbidden)
 * @property {number} [baseMs] backoff's first ceiling
 * @property {number} [capMs] backoff's cap
 * @property {number} [pingMs] ping interval while open; 0 for none
 * @property {number} [silenceMs] nothing heard for this long: the socket is taken for dead and closed
 * @property {number} [connectTimeoutMs] a handshake not answered by then counts as a failed connection
 */

/** A websocket that reconnects with `backoff` after every close, until `stop()` or a fatal close code. */
export class ReconnectingSocket {
  /** @param {ReconnectingSocketOptions} options */
  constructor(options) {
    this.options = options;
    /** @type {WebSocket | null} */
    this.ws = null;
    this.attempts = 0;
    this.stopped = false;
    this.lastHeard = 0;
    /** @type {ReturnType<typeof setTimeout> | null} */
    this.reconnectTimer = null;
    /** @type {ReturnType<typeof setTimeout> | null} */
    this.connectTimer = null;
    /** @type {ReturnType<typeof setInterval> | null} */
    this.pingTimer = null;
    var self = this;
    this.onOnline = function () {
      if (self.ws || self.stopped) return;
      self.clearReconnect();
      self.attempts = 0;
      self.connect();
    };
    window.addEventListener("online", this.onOnline);
  }

  isOpen() {
    return !!this.ws && this.ws.readyState === WebSocket.OPEN;
  }

  /** The peer said hello (or otherwise proved the connection works): the next failure starts over. */
  healthy() {
    this.attempts = 0;
    if (this.connectTimer) clearTimeout(this.connectTimer);
    this.connectTimer = null;
  }

  connect() {
    if (this.stopped || this.ws || this.reconnectTimer) return;
    var o = this.options;
    var self = this;
    /** @type {WebSocket} */
    var ws;
    try {
      ws = new WebSocket(o.url());
    } catch (e) {
      this.scheduleReconnect();
      return;
    }
    this.ws = ws;
    this.lastHeard = Date.now();
    if (o.connectTimeoutMs) {
      this.connectTimer = setTimeout(function () {
        self.connectTimer = null;
        if (self.ws === ws) ws.close();
      }, o.connectTimeoutMs);
    }
    ws.onopen = function () {
      if (self.ws !== ws) return;
      self.lastHeard = Date.now();
      self.startPing();
      if (o.onOpen) o.onOpen(self);
    };
    ws.onmessage = function (event) {
      if (self.ws !== ws) return;
      self.lastHeard = Date.now();
      if (typeof event.data !== "string") return;
      var frame;
      try {
        frame = JSON.parse(event.data);
      } catch (e) {
        return;
      }
      o.onFrame(frame, self);
    };
    ws.onclose = function (event) {
      if (self.ws !== ws) return;
      self.ws = null;
      self.stopPing();
      if (self.connectTimer) clearTimeout(self.connectTimer);
      self.connectTimer = null;
      if ((o.fatal || []).indexOf(event.code) >= 0) {
        self.stop();
        if (o.onStop) o.onStop(event.code);
        return;
      }
      if (o.onClose) o.onClose(event.code);
      self.scheduleReconnect();
    };
  }

  /** @param {object} frame @returns {boolean} whether it was handed to an open socket */
  send(frame) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return false;
    try {
      this.ws.send(JSON.stringify(frame));
      return true;
    } catch (e) {
      return false; // closing already: onclose reconnects
    }
  }

  /** @param {number} [delay] milliseconds; by default the next backoff */
  scheduleReconnect(delay) {
    if (this.stopped || this.reconnectTimer) return;
    this.attempts += 1;
    var self = this;
    var wait =
      delay === undefined
        ? backoff(this.attempts, { baseMs: this.options.baseMs, capMs: this.options.capMs })
        : delay;
    this.reconnectTimer = setTimeout(function () {
      self.reconnectTimer = null;
      self.connect();
    }, wait);
  }

  clearReconnect() {
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    this.reconnectTimer = null;
  }

  startPing() {
    this.stopPing();
    var o = this.options;
    if (!o.pingMs) return;
    var self = this;
    this.pingTimer = setInterval(function () {
      if (!self.isOpen()) return;
      if (o.silenceMs && Date.now() - self.lastHeard > o.silenceMs) {
        if (self.ws) self.ws.close();
        return;
      }
      self.send({ type: "ping" });
    }, o.pingMs);
  }

  stopPing() {
    if (this.pingTimer) clearInterval(this.pingTimer);
    this.pingTimer = null;
  }

  /** No more connections. */
  stop() {
    this.stopped = true;
    this.clearReconnect();
    this.stopPing();
    if (this.connectTimer) clearTimeout(this.connectTimer);
    this.connectTimer = null;
    window.removeEventListener("online", this.onOnline);
    if (this.ws) {
      var ws = this.ws;
      this.ws = null;
      try {
        ws.close();
      } catch (e) {
        /* already closing */
      }
    }
  }
}
