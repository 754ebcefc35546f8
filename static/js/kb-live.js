// @ts-check
/*
 * Live ingestion status on the knowledge pages (loaded as <script type="module">). Progressive
 * enhancement: without it the pages still work, the editor just reloads to see progress.
 *
 * Elements carrying data-version-id (with data-status and data-label) are kept in step with the server:
 * pushed `kb.version` events over the staff websocket while it is open, polling of the version API while
 * it is not (including while it is still connecting). The database is the truth and pushes are best
 * effort, so after every (re)connect the unfinished versions are read to catch up on anything missed while
 * no socket was listening, and read again now and then in case a push is lost. The socket's reconnecting,
 * backoff and pings are the shared ones (static/js/lib/socket.js).
 */

import { api } from "./lib/api.js";
import { el } from "./lib/el.js";
import { ReconnectingSocket } from "./lib/socket.js";

/** @typedef {{version_id: string, status: string, progress?: number, error_message?: string,
 *   chunk_count?: number}} VersionUpdate */

var FINAL = { ready: true, failed: true };
/** @type {Record<string, string>} */
var LABELS = { queued: "Queued", parsing: "Parsing", embedding: "Embedding", ready: "Ready", failed: "Failed" };
var POLL_MS = 2000;
var PING_MS = 25000;
var CONNECT_TIMEOUT_MS = 10000;
var SWEEP_MS = 15000;
var MAX_BACKOFF_MS = 30000;
var MAX_ANNOUNCEMENTS = 20; // older lines were read out already; the cap only bounds the DOM

/** @param {HTMLElement} root */
function start(root) {
  var slug = root.getAttribute("data-slug") || "";
  var announcer = root.querySelector("[data-kb-announcer]");
  var socketOpen = false; // the staff socket said hello: pushes arrive
  /** @type {ReturnType<typeof setTimeout> | null} */
  var pollTimer = null;
  var stopped = false; // signed out or no longer allowed: nothing more can be learnt
  /** @type {ReconnectingSocket | null} */
  var socket = null;

  /** @param {string} id */
  function containers(id) {
    return root.querySelectorAll('[data-version-id="' + CSS.escape(id) + '"]');
  }

  function unfinished() {
    /** @type {string[]} */
    var ids = [];
    root.querySelectorAll("[data-version-id]").forEach(function (node) {
      var id = node.getAttribute("data-version-id") || "";
      var status = node.getAttribute("data-status") || "";
      if (!(status in FINAL) && !node.hasAttribute("data-kb-gone") && ids.indexOf(id) < 0) ids.push(id);
    });
    return ids;
  }

  /** @param {string} text */
  function announce(text) {
    if (!announcer) return;
    announcer.appendChild(el("p", { text: text }));
    while (announcer.childNodes.length > MAX_ANNOUNCEMENTS && announcer.firstChild) {
      announcer.removeChild(announcer.firstChild);
    }
  }

  /** @param {Element} node @param {string} name @returns {NodeListOf<HTMLElement>} */
  function field(node, name) {
    return node.querySelectorAll('[data-kb-field="' + name + '"]');
  }

  /** @param {VersionUpdate} update */
  function apply(update) {
    var status = String(update.status || "");
    if (!LABELS[status]) return;
    var progress = Math.max(0, Math.min(100, Number(update.progress) || 0));
    var done = status in FINAL;
    var error = update.error_message ? String(update.error_message) : "";
    /** @type {string | null} */
    var changedLabel = null;

    containers(String(update.version_id)).forEach(function (node) {
      if (node.getAttribute("data-status") !== status) changedLabel = node.getAttribute("data-label") || "A version";
      node.setAttribute("data-status", status);
      field(node, "status").forEach(function (part) {
        part.textContent = LABELS[status];
        part.setAttribute("data-status", status);
      });
      field(node, "percent").forEach(function (part) {
        part.textContent = done ? "" : progress + "%";
      });
      field(node, "progress").forEach(function (part) {
        /** @type {HTMLProgressElement} */ (part).value = progress;
        part.textContent = progress + "%";
        part.hidden = done;
      });
      field(node, "error").forEach(function (part) {
        part.textContent = error;
        part.hidden = status !== "failed" || !error;
      });
      if (update.chunk_count !== undefined) {
        field(node, "chunks").forEach(function (part) {
          part.textContent = String(update.chunk_count);
        });
      }
      node.querySelectorAll("[data-kb-when]").forEach(function (part) {
        /** @type {HTMLElement} */ (part).hidden = part.getAttribute("data-kb-when") !== status;
      });
    });

    if (changedLabel) {
      var sentence = changedLabel + ": " + LABELS[status];
      if (status === "ready") {
        var count = Number(update.chunk_count) || 0;
        sentence += ", " + count + (count === 1 ? " passage." : " passages.");
      } else if (status === "failed") sentence += ". " + (error || "No reason was given.");
      else sentence += ".";
      announce(sentence);
    }
  }

  /** @param {string} id @returns {Promise<boolean>} whether it was read (or is known to be gone) */
  function fetchVersion(id) {
    var url = "/api/v1/tenants/" + encodeURIComponent(slug) + "/kb/versions/" + encodeURIComponent(id) + "/";
    return api("GET", url).then(
      function (v) {
        apply({
          version_id: v.id,
          status: v.status,
          progress: v.progress,
          error_message: v.error_message,
          chunk_count: v.chunk_count,
        });
        return true;
      },
      /** @param {import("./lib/api.js").ApiError} error */
      function (error) {
        if (error.status === 404) {
          containers(id).forEach(function (node) { node.setAttribute("data-kb-gone", ""); });
          announce("A version was deleted. Reload the page to see the current list.");
          return true;
        }
        if (error.status === 401 || error.status === 403) {
          stop("You were signed out or lost access. Reload the page to sign in again.");
          return true;
        }
        return false;
      }
    );
  }

  // Resolves true when every unfinished version was read, false when some read failed (and should be
  // tried again).
  function catchUp() {
    return Promise.all(unfinished().map(fetchVersion)).then(function (results) {
      return results.every(Boolean);
    });
  }

  // After the socket opens, the pushes cover what happens next; this covers what happened before. A
  // failed read is retried, since no push may ever come for a version that finished meanwhile.
  function catchUpUntilRead() {
    catchUp().then(function (complete) {
      if (!complete && socketOpen && !stopped) setTimeout(catchUpUntilRead, POLL_MS);
    });
  }

  function schedulePoll() {
    if (pollTimer || stopped || socketOpen) return;
    pollTimer = setTimeout(function () {
      pollTimer = null;
      if (socketOpen || stopped) return;
      catchUp().then(schedulePoll);
    }, POLL_MS);
  }

  /** @param {string} reason */
  function stop(reason) {
    if (stopped) return;
    stopped = true;
    if (pollTimer) clearTimeout(pollTimer);
    pollTimer = null;
    if (socket) socket.stop();
    announce(reason);
  }

  if (window.WebSocket) {
    var scheme = location.protocol === "https:" ? "wss://" : "ws://";
    socket = new ReconnectingSocket({
      url: function () {
        return scheme + location.host + "/ws/staff/" + encodeURIComponent(slug) + "/";
      },
      onFrame: function (data, ws) {
        if (data.type === "hello") {
          socketOpen = true;
          ws.healthy();
          if (pollTimer) clearTimeout(pollTimer);
          pollTimer = null;
          catchUpUntilRead();
        } else if (data.type === "kb.version") {
          apply(data);
        }
      },
      onClose: function () {
        socketOpen = false;
        schedulePoll();
      },
      fatal: [4401, 4403],
      onStop: function () {
        socketOpen = false;
        stop("Live updates stopped: you were signed out or lost access. Reload the page.");
      },
      baseMs: 1000,
      capMs: MAX_BACKOFF_MS,
      // A socket can die without a close event (a laptop asleep, a proxy dropping it): ping, and give up
      // on it when nothing has been heard for two intervals.
      pingMs: PING_MS,
      silenceMs: 2 * PING_MS + 5000,
      // A handshake that hangs (a busy server, a proxy holding the request) counts as a failed connection.
      connectTimeoutMs: CONNECT_TIMEOUT_MS,
    });
  }

  // Pushes are best effort (a channel-layer hiccup drops them silently), so while the socket is open the
  // unfinished versions are still read now and then; a lost push then costs seconds, not a stuck bar.
  setInterval(function () {
    if (socketOpen && !stopped && unfinished().length) catchUp();
  }, SWEEP_MS);

  // Until the socket says hello, progress comes from polling.
  schedulePoll();
  if (socket) socket.connect();
}

var kbRoot = document.querySelector("[data-kb-live]");
if (kbRoot instanceof HTMLElement && typeof window.fetch === "function") start(kbRoot);
