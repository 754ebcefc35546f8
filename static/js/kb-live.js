/*
 * Live ingestion status on the knowledge pages. Progressive enhancement: without it the pages still work,
 * the editor just reloads to see progress.
 *
 * Elements carrying data-version-id (with data-status and data-label) are kept in step with the server:
 * pushed `kb.version` events over the staff websocket while it is open, polling of the version API while
 * it is not (including while it is still connecting). The database is the truth and pushes are best
 * effort, so after every (re)connect the unfinished versions are read to catch up on anything missed while
 * no socket was listening, and read again now and then in case a push is lost.
 */
(function () {
  "use strict";

  var root = document.querySelector("[data-kb-live]");
  if (!root || !window.fetch) return;

  var slug = root.getAttribute("data-slug");
  var announcer = root.querySelector("[data-kb-announcer]");
  var FINAL = { ready: true, failed: true };
  var LABELS = { queued: "Queued", parsing: "Parsing", embedding: "Embedding", ready: "Ready", failed: "Failed" };
  var POLL_MS = 2000;
  var PING_MS = 25000;
  var CONNECT_TIMEOUT_MS = 10000;
  var SWEEP_MS = 15000;
  var MAX_BACKOFF_MS = 30000;
  var MAX_ANNOUNCEMENTS = 20; // older lines were read out already; the cap only bounds the DOM

  var socket = null;
  var socketOpen = false;
  var attempts = 0;
  var reconnectTimer = null;
  var connectTimer = null;
  var pollTimer = null;
  var pingTimer = null;
  var lastHeard = 0;
  var stopped = false; // signed out or no longer allowed: nothing more can be learnt

  function containers(id) {
    return root.querySelectorAll('[data-version-id="' + CSS.escape(id) + '"]');
  }

  function unfinished() {
    var ids = [];
    root.querySelectorAll("[data-version-id]").forEach(function (el) {
      var id = el.getAttribute("data-version-id");
      if (!FINAL[el.getAttribute("data-status")] && !el.hasAttribute("data-kb-gone") && ids.indexOf(id) < 0) {
        ids.push(id);
      }
    });
    return ids;
  }

  function announce(text) {
    if (!announcer) return;
    var line = document.createElement("p");
    line.textContent = text;
    announcer.appendChild(line);
    while (announcer.childNodes.length > MAX_ANNOUNCEMENTS) announcer.removeChild(announcer.firstChild);
  }

  function field(el, name) {
    return el.querySelectorAll('[data-kb-field="' + name + '"]');
  }

  function apply(update) {
    var status = String(update.status || "");
    if (!LABELS[status]) return;
    var progress = Math.max(0, Math.min(100, Number(update.progress) || 0));
    var done = !!FINAL[status];
    var error = update.error_message ? String(update.error_message) : "";
    var changedLabel = null;

    containers(String(update.version_id)).forEach(function (el) {
      if (el.getAttribute("data-status") !== status) changedLabel = el.getAttribute("data-label") || "A version";
      el.setAttribute("data-status", status);
      field(el, "status").forEach(function (node) {
        node.textContent = LABELS[status];
        node.setAttribute("data-status", status);
      });
      field(el, "percent").forEach(function (node) {
        node.textContent = done ? "" : progress + "%";
      });
      field(el, "progress").forEach(function (node) {
        node.value = progress;
        node.textContent = progress + "%";
        node.hidden = done;
      });
      field(el, "error").forEach(function (node) {
        node.textContent = error;
        node.hidden = status !== "failed" || !error;
      });
      if (update.chunk_count !== undefined) {
        field(el, "chunks").forEach(function (node) {
          node.textContent = String(update.chunk_count);
        });
      }
      el.querySelectorAll("[data-kb-when]").forEach(function (node) {
        node.hidden = node.getAttribute("data-kb-when") !== status;
      });
    });

    if (changedLabel) {
      var sentence = changedLabel + ": " + LABELS[status];
      if (status === "ready") {
        var count = Number(update.chunk_count) || 0;
        sentence += ", " + count + (count === 1 ? " passage." : " passages.");
      }
      else if (status === "failed") sentence += ". " + (error || "No reason was given.");
      else sentence += ".";
      announce(sentence);
    }
  }

  function fetchVersion(id) {
    var url = "/api/v1/tenants/" + encodeURIComponent(slug) + "/kb/versions/" + encodeURIComponent(id) + "/";
    return fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } }).then(function (r) {
      if (r.status === 404) {
        containers(id).forEach(function (el) { el.setAttribute("data-kb-gone", ""); });
        announce("A version was deleted. Reload the page to see the current list.");
        return true;
      }
      if (r.status === 401 || r.status === 403) {
        stop("You were signed out or lost access. Reload the page to sign in again.");
        return true;
      }
      if (!r.ok) return false;
      return r.json().then(function (v) {
        apply({
          version_id: v.id, status: v.status, progress: v.progress,
          error_message: v.error_message, chunk_count: v.chunk_count,
        });
        return true;
      });
    }).catch(function () { return false; });
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

  function stop(reason) {
    if (stopped) return;
    stopped = true;
    clearTimeout(pollTimer);
    clearTimeout(reconnectTimer);
    clearTimeout(connectTimer);
    clearInterval(pingTimer);
    if (socket) socket.close();
    announce(reason);
  }

  function scheduleReconnect() {
    if (reconnectTimer || stopped) return;
    // Exponential with jitter, so a server restart is not met by every open tab at the same instant.
    var delay = Math.min(MAX_BACKOFF_MS, 1000 * Math.pow(2, attempts));
    delay = delay / 2 + Math.random() * (delay / 2);
    attempts += 1;
    reconnectTimer = setTimeout(function () {
      reconnectTimer = null;
      connect();
    }, delay);
  }

  function connect() {
    if (stopped || !window.WebSocket) {
      schedulePoll();
      return;
    }
    var scheme = location.protocol === "https:" ? "wss://" : "ws://";
    try {
      socket = new WebSocket(scheme + location.host + "/ws/staff/" + encodeURIComponent(slug) + "/");
    } catch (e) {
      schedulePoll();
      scheduleReconnect();
      return;
    }
    socket.onmessage = function (event) {
      var data;
      try {
        data = JSON.parse(event.data);
      } catch (e) {
        return;
      }
      lastHeard = Date.now();
      if (data.type === "hello") {
        socketOpen = true;
        attempts = 0;
        clearTimeout(connectTimer);
        clearTimeout(pollTimer);
        pollTimer = null;
        catchUpUntilRead();
      } else if (data.type === "kb.version") {
        apply(data);
      }
    };
    // A handshake that hangs (a busy server, a proxy holding the request) counts as a failed connection.
    clearTimeout(connectTimer);
    connectTimer = setTimeout(function () {
      if (socket && !socketOpen) socket.close();
    }, CONNECT_TIMEOUT_MS);
    socket.onclose = function (event) {
      clearTimeout(connectTimer);
      socket = null;
      socketOpen = false;
      if (event.code === 4401 || event.code === 4403) {
        stop("Live updates stopped: you were signed out or lost access. Reload the page.");
        return;
      }
      schedulePoll();
      scheduleReconnect();
    };
  }

  // Pushes are best effort (a channel-layer hiccup drops them silently), so while the socket is open the
  // unfinished versions are still read now and then; a lost push then costs seconds, not a stuck bar.
  setInterval(function () {
    if (socketOpen && !stopped && unfinished().length) catchUp();
  }, SWEEP_MS);

  // A socket can die without a close event (a laptop asleep, a proxy dropping it): ping, and give up on
  // it when nothing has been heard for two intervals.
  pingTimer = setInterval(function () {
    if (!socket || !socketOpen) return;
    if (Date.now() - lastHeard > 2 * PING_MS + 5000) {
      socket.close();
      return;
    }
    try {
      socket.send(JSON.stringify({ type: "ping" }));
    } catch (e) { /* closing already; onclose handles it */ }
  }, PING_MS);

  window.addEventListener("online", function () {
    if (!socket && !stopped) {
      clearTimeout(reconnectTimer);
      reconnectTimer = null;
      attempts = 0;
      connect();
    }
  });

  // Until the socket says hello, progress comes from polling.
  schedulePoll();
  connect();
})();
