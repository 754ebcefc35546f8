/*
 * The customer chat widget. No dependencies; a company embeds the one built file with
 *
 *   <script src="https://desk.example/widget.js" data-widget-key="wk_..." async></script>
 *
 * The protocol is docs/architecture/realtime.md. The database is the truth: every event the widget must
 * not miss carries a per-conversation `seq`, and the widget applies each `seq` once. Streamed text is a
 * best-effort preview that the stored text replaces, so what the customer ends up seeing equals what the
 * desk stored, however often the connection drops.
 *
 * Everything is rendered inside a shadow root with its own styles (px units, because `rem` follows the
 * host page's root font size) and every piece of server or customer text goes in with textContent: the
 * host page's CSS cannot reach in, ours cannot leak out, and message text can never become markup.
 */
import { backoff as backoffDelay, Outbox, SeqTracker } from "../../js/lib/socket.js";
import { request as fetchAnswer } from "../../js/lib/api.js";
import { el } from "../../js/lib/el.js";
import { STYLES } from "./styles.js";
import { TEXT, sentence } from "./text.js";
import { charCount, readStore, uuid, writeStore } from "./util.js";
import { memoryWidget } from "./memory.js";

// Everything runs inside start(), once, as the script tag is executed (document.currentScript is only
// set then); an early return leaves the host page untouched.
function start() {
  var SCRIPT = document.currentScript || findScript();
  if (!SCRIPT || !window.fetch || !window.WebSocket || !document.documentElement.attachShadow) return;

  var KEY = SCRIPT.getAttribute("data-widget-key") || "";
  if (!KEY) {
    warn("the script tag has no data-widget-key attribute, so the chat widget will not load.");
    return;
  }
  var BASE = new URL("./", SCRIPT.src || window.location.href);
  var TOKEN_KEY = "helpdesk:" + KEY;
  var OUTBOX_KEY = TOKEN_KEY + ":outbox";
  var OPEN_KEY = TOKEN_KEY + ":open";
  var HOST_TAG = "helpdesk-widget";

  var RECONNECT_BASE_MS = 500;
  var RECONNECT_CAP_MS = 10000;
  var SESSION_ATTEMPTS = 4;
  var PING_MS = 20000;
  var SILENCE_MS = 50000; // no frame at all for this long: the socket is probably half-open
  var RESYNC_MIN_MS = 3000; // at most one reconnect-to-resync per this interval
  // A reply still streaming that has sent nothing for this long has probably lost its writer (the desk's
  // process restarted, or its final event was pushed while Redis was away): the widget reconnects, and the
  // hello replays what was stored and marks a reply whose writer stopped beating as interrupted
  // (ASSISTANT_STALE_SECONDS, 20 s by default, below this).
  var STALL_MS = 30000;
  var FETCH_TIMEOUT_MS = 15000;
  var OUTBOX_MAX = 20;
  var COUNTER_FROM = 0.8; // show the character counter from this share of the limit

  function warn(message) {
    if (window.console && console.warn) console.warn("Helpdesk widget: " + message);
  }

  function findScript() {
    var all = document.querySelectorAll("script[data-widget-key]");
    for (var i = 0; i < all.length; i++) {
      if (/\/widget\.js(\?|#|$)/.test(all[i].src || "")) return all[i];
    }
    return all[0] || null;
  }

  function api(path) {
    return new URL(path, BASE).toString();
  }

  function request(url, options) {
    var init = Object.assign({ credentials: "omit", mode: "cors", cache: "no-store" }, options || {});
    return fetchAnswer(url, init, { timeoutMs: FETCH_TIMEOUT_MS });
  }

  // ---------------------------------------------------------------- session

  var session = null; // the last answer of POST /session
  var loggedOut = false; // HelpdeskWidget.logout(): the page's identity attributes no longer count
  var pendingNotice = ""; // a notice for the customer, shown once the conversation is on screen
  var hadToken = false; // this browser chatted before: its conversation may be under way
  var sessionAttempts = 0;
  var lastResession = 0;

  function identityFromScript() {
    if (loggedOut) return null;
    var externalId = SCRIPT.getAttribute("data-external-id");
    var issuedAt = SCRIPT.getAttribute("data-issued-at");
    var signature = SCRIPT.getAttribute("data-signature");
    if (!externalId || !issuedAt || !signature) return null;
    var identity = { external_id: externalId, issued_at: parseInt(issuedAt, 10), signature: signature };
    var name = SCRIPT.getAttribute("data-name");
    var email = SCRIPT.getAttribute("data-email");
    if (name) identity.name = name;
    if (email) identity.email = email;
    return identity;
  }

  function startSession(token) {
    return request(api("api/widget/v1/session"), {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify({ widget_key: KEY, token: token || null, identity: identityFromScript() }),
    });
  }

  function boot() {
    sessionAttempts += 1;
    var previousToken = readStore("localStorage", TOKEN_KEY);
    hadToken = !!previousToken;
    startSession(previousToken).then(
      function (answer) {
        if (answer.ok && answer.body && answer.body.token) {
          adoptSession(answer.body);
          render();
          return;
        }
        if (answer.status === 403) {
          warn(
            "this page's origin (" + window.location.origin + ") is not an allowed origin for widget key " +
              KEY + ", so the chat widget will not load. Add the origin in the company's settings."
          );
          return;
        }
        if (answer.status === 404) {
          warn("the widget key " + KEY + " is unknown or inactive, so the chat widget will not load.");
          return;
        }
        if (answer.status === 400) {
          warn("the desk refused the session request (" + describe(answer.body) + "); the chat widget will not load.");
          return;
        }
        retryBoot(retryAfter(answer), "the desk answered " + answer.status);
      },
      function () {
        // A refused origin gets no CORS header, which the browser reports exactly like a network error.
        retryBoot(
          0,
          "could not reach the desk at " + BASE.origin + ", or this page's origin (" + window.location.origin +
            ") is not allowed for widget key " + KEY
        );
      }
    );
  }

  function retryBoot(afterMs, why) {
    if (sessionAttempts >= SESSION_ATTEMPTS) {
      warn(why + "; the chat widget will not load.");
      return;
    }
    var delay = afterMs || backoff(sessionAttempts);
    setTimeout(boot, delay);
  }

  function retryAfter(answer) {
    var header = answer.headers && answer.headers.get("Retry-After");
    var s = header ? parseInt(header, 10) : NaN;
    return s > 0 ? s * 1000 : 0;
  }

  function describe(body) {
    return body && body.code ? body.code + ": " + (body.message || "") : "no details";
  }

  function adoptSession(body) {
    var previous = session;
    session = body;
    writeStore("localStorage", TOKEN_KEY, body.token);
    if (body.identity && body.identity.status === "rejected") {
      warn("the customer identity was rejected (" + (body.identity.reason || "no reason") + "); chatting anonymously.");
    }
    if (body.identity && body.identity.profile === "ignored_unsigned") {
      warn("the customer's name and email were not signed, so the desk ignored them (sign them with the id).");
    }
    if (previous && previous.conversation_id !== body.conversation_id) resetConversation();
    if (memory && previous && previous.visitor_id !== body.visitor_id) memory.sessionChanged();
    if (body.notice && TEXT.notices[body.notice]) pendingNotice = TEXT.notices[body.notice];
    showPendingNotice();
    voiceShow(); // the company may have turned voice on or off
  }

  function showPendingNotice() {
    if (!pendingNotice || !ui) return;
    showSystem(pendingNotice);
    pendingNotice = "";
  }

  function logout() {
    // The company's page signed the customer out: end the session on the desk (on every device, for a
    // customer) and go on as a new guest. The page's identity attributes are ignored from now on.
    loggedOut = true;
    var ending = session
      ? request(api("api/widget/v1/session/end"), {
          method: "POST",
          headers: { Authorization: "Bearer " + session.token, Accept: "application/json" },
        }).catch(function () {})
      : Promise.resolve();
    return ending.then(function () {
      writeStore("localStorage", TOKEN_KEY, null);
      if (socket) {
        var ws = socket;
        socket = null;
        try { ws.close(); } catch (e) { /* already closing */ }
      }
      return startSession(null).then(function (answer) {
        if (answer.ok && answer.body && answer.body.token) {
          adoptSession(answer.body);
          if (ui) scheduleReconnect(0);
        }
      });
    });
  }

  function resession() {
    // The socket said the token is no longer good (4401): ask for a new session once in a while, never in
    // a loop.
    var now = Date.now();
    if (now - lastResession < 30000) {
      stop(TEXT.status.stopped);
      return;
    }
    lastResession = now;
    // A tab with the page's identity continues the customer's conversation the other tabs share; a tab
    // without one uses only its own token: a customer's token another tab stored is not its to present
    // (that would read as a sign-out, and end the customer's session).
    var token = identityFromScript() ? readStore("localStorage", TOKEN_KEY) : session && session.token;
    startSession(token).then(
      function (answer) {
        if (answer.ok && answer.body && answer.body.token) {
          var before = session && session.conversation_id;
          adoptSession(answer.body);
          if (before !== answer.body.conversation_id && ui) showSystem(TEXT.closes[4401]);
          scheduleReconnect(0);
        } else if (answer.status === 403 || answer.status === 404) {
          stop(TEXT.closes[4403]);
        } else {
          lastResession = 0;
          scheduleReconnect();
        }
      },
      function () {
        lastResession = 0;
        scheduleReconnect();
      }
    );
  }

  // ---------------------------------------------------------------- DOM

  var ui = null; // the rendered elements
  var memory = null; // consented memory: the question's card and the "What we remember" panel (memory.js)
  var SUB_DEFAULT = "Support chat";
  var uniq = 0; // ids of controls drawn more than once (labels point at them)

  function nextId(prefix) {
    uniq += 1;
    return prefix + "-" + uniq;
  }

  function render() {
    if (ui) return;
    var tenantName = (session.tenant && session.tenant.name) || "us";
    var host = document.createElement(HOST_TAG);
    host.setAttribute("data-widget-key", KEY);
    var root = host.attachShadow({ mode: "open" });
    root.appendChild(el("style", { text: STYLES }));

    var icon = document.createElementNS("http://www.w3.org/2000/svg", "svg");
    icon.setAttribute("viewBox", "0 0 24 24");
    icon.setAttribute("aria-hidden", "true");
    icon.setAttribute("focusable", "false");
    var path = document.createElementNS("http://www.w3.org/2000/svg", "path");
    path.setAttribute("d", "M4 4h16a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H9l-5 4v-4a2 2 0 0 1-2-2V6a2 2 0 0 1 2-2z");
    icon.appendChild(path);

    var unread = el("span", { className: "unread", hidden: true });
    var launcher = el("button", {
      type: "button",
      className: "launcher",
      "aria-expanded": "false",
      "aria-controls": "hd-panel",
      title: "Chat with " + tenantName,
    });
    launcher.appendChild(icon);
    launcher.appendChild(el("span", { text: "Chat with us" }));
    launcher.appendChild(unread);
    var unreadLabel = el("span", { className: "vh", text: "" });
    launcher.appendChild(unreadLabel);

    var closeButton = el("button", { type: "button", className: "close", "aria-label": "Close chat", text: "\u00d7" });
    var sub = el("span", { className: "sub", text: SUB_DEFAULT });
    var title = el("h2", { id: "hd-title" }, [document.createTextNode(tenantName), sub]);
    var status = el("p", { className: "status", role: "status", "aria-live": "polite" });
    var empty = el("p", { className: "empty", text: "Ask us anything about our services. We usually answer in seconds." });
    var log = el("div", {
      className: "log",
      role: "log",
      "aria-live": "polite",
      "aria-label": "Conversation",
      tabindex: "0",
    }, [empty]);

    var textarea = el("textarea", {
      id: "hd-input",
      rows: "2",
      "aria-describedby": "hd-hint hd-counter hd-error",
      autocomplete: "off",
    });
    var counter = el("span", { id: "hd-counter", className: "counter" });
    var composerError = el("p", { id: "hd-error", className: "composer-error", role: "alert" });
    var send = el("button", { type: "submit", className: "send", text: "Send" });
    var form = el("form", { className: "composer", novalidate: true }, [
      el("label", { for: "hd-input", text: "Your message" }),
      textarea,
      el("div", { className: "row" }, [
        el("span", { id: "hd-hint", className: "hint", text: "Enter sends, Shift+Enter adds a line" }),
        counter,
        send,
      ]),
      composerError,
    ]);
    var voiceUi = voiceControls();
    send.parentNode.insertBefore(voiceUi.mic, send);
    form.insertBefore(voiceUi.bar, composerError);
    form.appendChild(voiceUi.live);

    var passageTitle = el("h3", { id: "hd-passage-title" });
    var passageMeta = el("p", { id: "hd-passage-meta", className: "passage-meta" });
    var passageClose = el("button", { type: "button", className: "secondary", text: "Close" });
    var passageText = el("div", { className: "passage-text", tabindex: "0", role: "document" });
    memory = memoryWidget({
      request: request,
      url: api,
      token: function () { return session ? session.token : null; },
      onUnauthorized: resession,
      focusReturn: function () { return memory ? memory.button : null; },
    });
    var passage = el("div", { className: "passage", hidden: true }, [
      el("div", {
        className: "passage-box",
        role: "dialog",
        "aria-modal": "true",
        "aria-labelledby": "hd-passage-title",
        "aria-describedby": "hd-passage-meta",
      }, [
        el("div", { className: "passage-head" }, [el("div", { className: "passage-titles" }, [passageTitle, passageMeta]), passageClose]),
        passageText,
      ]),
    ]);

    var panel = el("div", {
      id: "hd-panel",
      className: "panel",
      role: "dialog",
      "aria-label": "Chat with " + tenantName,
      hidden: true,
    }, [
      el("div", { className: "head" }, [title, voiceUi.speaker, memory.button, closeButton]),
      status, log, memory.card, form, passage, memory.dialog,
    ]);

    var wrapper = el("div", { className: "root" }, [panel, launcher]);
    root.appendChild(wrapper);
    document.body.appendChild(host);

    ui = {
      host: host,
      root: root,
      launcher: launcher,
      unread: unread,
      unreadLabel: unreadLabel,
      panel: panel,
      closeButton: closeButton,
      sub: sub,
      status: status,
      log: log,
      empty: empty,
      textarea: textarea,
      counter: counter,
      composerError: composerError,
      form: form,
      passage: passage,
      passageTitle: passageTitle,
      passageMeta: passageMeta,
      passageText: passageText,
      passageClose: passageClose,
      passageReturn: null,
    };
    voiceWire(voiceUi);

    launcher.addEventListener("click", function () {
      if (panel.hidden) openPanel();
      else closePanel();
    });
    closeButton.addEventListener("click", closePanel);
    log.addEventListener("scroll", function () {
      following = log.scrollHeight - log.scrollTop - log.clientHeight < 24;
    });
    wrapper.addEventListener("keydown", onKeydown);
    textarea.addEventListener("keydown", function (event) {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing && event.keyCode !== 229) {
        event.preventDefault();
        submit();
      }
    });
    textarea.addEventListener("input", updateCounter);
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      submit();
    });
    passageClose.addEventListener("click", closePassage);
    passage.addEventListener("click", function (event) {
      if (event.target === passage) closePassage();
    });

    window.HelpdeskWidget = Object.freeze({ open: openPanel, close: closePanel, logout: logout });
    showPendingNotice();

    restoreOutbox();
    if (readStore("sessionStorage", OPEN_KEY) === "1") openPanel({ focus: false });
    // A returning visitor may have a conversation under way: pick it up now rather than on first open.
    if (hadToken) connect();
  }

  function openPanel(options) {
    if (!ui) return;
    ui.panel.hidden = false;
    ui.launcher.setAttribute("aria-expanded", "true");
    ui.unread.hidden = true;
    ui.unreadLabel.textContent = "";
    writeStore("sessionStorage", OPEN_KEY, "1");
    connect();
    memory.panelOpened();
    scrollToEnd(true);
    if (!options || options.focus !== false) ui.textarea.focus();
  }

  function closePanel() {
    if (!ui || ui.panel.hidden) return;
    closePassage({ restoreFocus: false });
    voiceCancel({ quiet: true }); // nothing records while the chat is out of sight
    ui.panel.hidden = true;
    ui.launcher.setAttribute("aria-expanded", "false");
    writeStore("sessionStorage", OPEN_KEY, null);
    ui.launcher.focus();
  }

  function onKeydown(event) {
    if (event.key === "Escape" && recording) {
      event.stopPropagation();
      voiceCancel();
      return;
    }
    if (event.key === "Escape") {
      if (!ui.passage.hidden) {
        event.stopPropagation();
        closePassage();
      } else if (!ui.panel.hidden) {
        event.stopPropagation();
        closePanel();
      }
      return;
    }
    if (event.key === "Tab" && !ui.passage.hidden) trapFocus(event, ui.passage);
  }

  function trapFocus(event, container) {
    var focusable = Array.prototype.filter.call(
      container.querySelectorAll("button, [tabindex='0']"),
      function (node) { return !node.disabled; }
    );
    if (!focusable.length) return;
    var first = focusable[0];
    var last = focusable[focusable.length - 1];
    var active = ui.root.activeElement;
    if (event.shiftKey && (active === first || focusable.indexOf(active) < 0)) {
      event.preventDefault();
      last.focus();
    } else if (!event.shiftKey && (active === last || focusable.indexOf(active) < 0)) {
      event.preventDefault();
      first.focus();
    }
  }

  function setStatus(text) {
    if (ui && ui.status.textContent !== text) ui.status.textContent = text || "";
  }

  // Follows new text while the customer is at the end of the conversation; leaves them alone when they
  // have scrolled up to read something.
  var following = true;

  function scrollToEnd(force) {
    if (!ui) return;
    if (force || following) ui.log.scrollTop = ui.log.scrollHeight;
  }

  function markUnread() {
    if (ui && ui.panel.hidden) {
      ui.unread.hidden = false;
      ui.unreadLabel.textContent = " (new reply)";
    }
  }

  // ---------------------------------------------------------------- transcript state

  var seqs = new SeqTracker(); // the stored events applied (seqs.last); a new page load replays from 0
  var replayedUntil = 0; // events up to here were already there when the socket (re)connected
  var customers = {}; // client_msg_id -> customer message view
  var replies = {}; // message_id -> assistant reply view
  var superseded = {}; // message_id -> true
  var runs = {}; // run_id -> card of a proposed change
  // Who has the conversation (assistant | waiting | human | resolved), as the stored events say.
  var owner = "assistant";
  var agentName = ""; // the first name of the person who has it
  var waiting = null; // the latest handoff.status card while its controls are live
  var rating = null; // the open rating prompt of a resolved conversation

  function resetConversation() {
    seqs.reset();
    replayedUntil = 0;
    customers = {};
    replies = {};
    superseded = {};
    runs = {};
    pendingDecisions = {};
    requests = {};
    owner = "assistant";
    agentName = "";
    waiting = null;
    rating = null;
    outbox.clear();
    saveOutbox();
    if (ui) {
      ui.log.textContent = "";
      ui.log.appendChild(ui.empty);
      updateHead();
    }
  }

  // Stored items keep their seq order; customer messages stay after them until their own event is applied
  // (acknowledged is not enough: events stored before the message, such as a reopening, may still be on
  // their way). Failed ones were never stored and keep their place.
  function placeStored(node) {
    ui.empty.remove();
    var pending = ui.log.querySelector(".msg.customer:not([data-stored]):not([data-state=failed])");
    if (pending && pending !== node) ui.log.insertBefore(node, pending);
    else if (node.parentNode !== ui.log || pending === node) ui.log.appendChild(node);
    scrollToEnd(false);
  }

  function appendLocal(node) {
    ui.empty.remove();
    ui.log.appendChild(node);
    scrollToEnd(true);
  }

  function customerView(clientMsgId, text) {
    var view = customers[clientMsgId];
    if (view) return view;
    var textNode = el("p", { className: "text", text: text });
    var meta = el("span", { className: "meta" });
    var node = el("div", { className: "msg customer", "data-client-msg-id": clientMsgId }, [
      el("span", { className: "vh", text: "You: " }),
      textNode,
      meta,
    ]);
    view = { node: node, text: textNode, meta: meta, id: null };
    customers[clientMsgId] = view;
    return view;
  }

  function setCustomerState(view, state, note) {
    view.node.setAttribute("data-state", state);
    view.meta.textContent = note || "";
  }

  function replyView(messageId) {
    var view = replies[messageId];
    if (view) return view;
    var who = el("span", { className: "who", text: "Assistant" });
    var progress = el("div", { className: "progress" });
    var text = el("p", { className: "text" });
    var notice = el("p", { className: "notice" });
    var citations = el("ol", { className: "citations", "aria-label": "Sources", hidden: true });
    var actions = el("div", { className: "actions" });
    var node = el("div", {
      className: "msg assistant",
      "data-message-id": messageId,
      "data-status": "streaming",
    }, [who, text, progress, citations, notice, actions]);
    view = {
      id: messageId,
      node: node,
      progress: progress,
      text: text,
      notice: notice,
      citations: citations,
      actions: actions,
      shown: "",
      final: false,
      resyncing: false,
      heard: Date.now(), // the last frame about this reply (STALL_MS)
    };
    replies[messageId] = view;
    placeStored(node);
    return view;
  }

  // `text` is the desk's own line for the stage (a running tool's "Checking your order…"); shown as text.
  function setProgress(view, stage, text) {
    view.progress.textContent = "";
    if (!stage) return;
    var line = typeof text === "string" && text.trim() ? text.trim().slice(0, 200) : TEXT.stage[stage];
    if (stage === "thinking" || !line) {
      view.progress.appendChild(el("span", { className: "dots", "aria-hidden": "true" }, [
        el("span"), el("span"), el("span"),
      ]));
      view.progress.appendChild(el("span", { className: "vh", text: TEXT.stage.thinking }));
    } else {
      view.progress.appendChild(el("span", { text: line }));
    }
  }

  function showText(view, text) {
    view.shown = text;
    view.text.textContent = text;
    if (text) setProgress(view, null);
    scrollToEnd(false);
  }

  // ---------------------------------------------------------------- events

  var STORED = {
    "message.created": onMessageCreated,
    "assistant.started": onStarted,
    "assistant.completed": onFinished,
    "assistant.interrupted": onFinished,
    "assistant.failed": onFinished,
    "assistant.superseded": onSuperseded,
    "handoff.requested": onHandoffRequested,
    "handoff.status": onHandoffStatus,
    "handoff.email_saved": onEmailSaved,
    "handoff.ticket": onTicket,
    "handoff.claimed": onClaimed,
    "handoff.transferred": onTransferred,
    "handoff.returned": function () { systemLine(TEXT.handoff.returned); },
    "handoff.cancelled": function () { systemLine(TEXT.handoff.cancelled); },
    "agent.message": onAgentMessage,
    "conversation.resolved": onResolved,
    "conversation.reopened": onReopened,
    "conversation.notice": onNotice,
    "csat.recorded": onRated,
    "tool.run": onToolRun,
    // The result comes again as the `assistant.completed` that follows it, which renders the message.
    "tool.result": function () {},
  };
  var PUSHED = {
    welcome: onWelcome,
    ack: onAck,
    "assistant.progress": onProgress,
    "assistant.delta": onDelta,
    "assistant.snapshot": onSnapshot,
    "assistant.citations": onCitations,
    error: onError,
    pong: function () {},
  };

  function dispatch(frame) {
    if (!frame || typeof frame.type !== "string") return;
    var about = typeof frame.message_id === "string" && replies[frame.message_id];
    if (about) about.heard = Date.now();
    if (PUSHED[frame.type]) {
      PUSHED[frame.type](frame);
      return;
    }
    if (typeof frame.seq !== "number") return; // an unknown pushed type: nothing to keep
    applyStored(frame, false);
  }

  // Applies one stored event exactly once. A live event past a gap is dropped and the gap fetched from
  // GET /events (which returns it too): the database is the truth, pushes are best effort.
  function applyStored(event, fromCatchUp) {
    var verdict = seqs.accept(event.seq, fromCatchUp);
    if (verdict === "duplicate") return;
    if (verdict === "gap") {
      catchUp();
      return;
    }
    if (typeof event.owner === "string") ownerChanged(event);
    var handler = STORED[event.type];
    if (handler) handler(event);
  }

  var catchingUp = false;

  function catchUp() {
    if (catchingUp || !session) return;
    catchingUp = true;
    var after = seqs.last;
    request(api("api/widget/v1/events?after=" + after), {
      headers: { Authorization: "Bearer " + session.token, Accept: "application/json" },
    }).then(
      function (answer) {
        catchingUp = false;
        if (answer.status === 401) {
          resession();
          return;
        }
        var events = answer.ok ? eventsOf(answer.body) : null;
        if (!events) {
          reconnectSoon(); // a reconnect replays from seqs.last as well
          return;
        }
        events
          .slice()
          .sort(function (a, b) { return a.seq - b.seq; })
          .forEach(function (event) { applyStored(event, true); });
        // The socket may have moved on while this was read: never shorten the text it already showed.
        var snapshot = answer.body && answer.body.snapshot;
        if (snapshot && typeof snapshot.text === "string") {
          var view = replies[snapshot.message_id];
          if (!view || snapshot.text.length > view.shown.length) onSnapshot(snapshot);
        }
        if ((answer.body && answer.body.more) || seqs.behind()) catchUp();
      },
      function () {
        catchingUp = false;
        reconnectSoon();
      }
    );
  }

  function eventsOf(body) {
    if (Array.isArray(body)) return body;
    if (body && Array.isArray(body.events)) return body.events;
    if (body && Array.isArray(body.results)) return body.results;
    return null;
  }

  function onMessageCreated(event) {
    var message = event.message || {};
    var clientMsgId = message.client_msg_id || "srv:" + message.id;
    var view = customerView(clientMsgId, message.text || "");
    view.id = message.id;
    view.text.textContent = message.text || "";
    view.node.setAttribute("data-stored", "");
    view.node.setAttribute("data-message-id", message.id);
    setCustomerState(view, "sent", message.via === "email" ? TEXT.handoff.byEmail : "");
    dropFromOutbox(clientMsgId);
    placeStored(view.node);
    retireActions();
  }

  function onStarted(event) {
    if (superseded[event.message_id]) return;
    var view = replyView(event.message_id);
    if (!view.final && !view.shown) setProgress(view, "thinking");
    retireActions();
    if (welcomed && event.seq > replayedUntil) speechStop(); // a new answer: the last one is old news
  }

  function onFinished(event) {
    var message = event.message || {};
    if (!message.id || superseded[message.id]) return;
    var view = replyView(message.id);
    view.final = true;
    view.resyncing = false;
    var status = message.status || event.type.split(".")[1];
    if (status === "completed") status = "complete";
    view.node.setAttribute("data-status", status);
    setProgress(view, null);
    showText(view, message.text || "");
    renderCitations(view, message.citations || []);
    view.notice.textContent = "";
    view.actions.textContent = "";
    var code = event.code || message.code;
    var byHandoff = status === "interrupted" && event.by === "handoff";
    view.notice.className = byHandoff ? "notice handoff-stop" : "notice";
    if (byHandoff) view.node.setAttribute("data-stopped-by", "handoff");
    if (status === "interrupted" || status === "failed") {
      // Cut because a person took the conversation: what was written stays, nothing to try again.
      view.notice.textContent = byHandoff
        ? TEXT.handoff.stopped
        : sentence(code || (status === "interrupted" ? "interrupted" : "llm_unavailable"), event);
      if (event.retryable !== false && owner === "assistant") {
        view.actions.appendChild(actionButton("Try again", "retry", "Trying again…", function (id) {
          return { type: "retry", message_id: message.id, client_msg_id: id };
        }));
      }
    }
    var offer = event.offer_handoff === true || message.offer_handoff === true;
    if (offer && owner === "assistant") {
      view.actions.appendChild(actionButton(TEXT.handoff.offer, "handoff", TEXT.handoff.asking, function (id) {
        return { type: "handoff.request", client_msg_id: id };
      }));
    }
    if (welcomed && event.seq > replayedUntil) {
      markUnread();
      if (status === "complete") readAloud(view.shown);
    }
    scrollToEnd(false);
  }

  // A button that sends one frame; it stays busy unless the desk refuses the frame (busy, not disabled, so
  // the keyboard focus stays on it until what it asked for has happened).
  function actionButton(label, kind, busyLabel, frameFor) {
    var button = el("button", { type: "button", className: "secondary " + kind, text: label });
    button.addEventListener("click", function () {
      if (button.getAttribute("aria-disabled") === "true") return;
      var id = uuid();
      setBusy(button, true, busyLabel);
      pendingActions[id] = { button: button, label: label, kind: kind, socket: isOpen() ? socket : null };
      sendFrame(frameFor(id), true);
    });
    return button;
  }

  // A newer turn started: "Try again" on an older reply would answer a stale question.
  function retireActions() {
    if (!ui) return;
    ui.log.querySelectorAll("button.retry").forEach(function (button) {
      var actions = button.parentNode;
      button.remove();
      if (actions && !actions.children.length) actions.textContent = "";
    });
  }

  function renderCitations(view, citations) {
    view.citations.textContent = "";
    view.citations.hidden = !citations.length;
    citations.forEach(function (citation, index) {
      var parts = ["[" + (citation.n || index + 1) + "] " + (citation.title || "Source")];
      if (citation.version !== undefined && citation.version !== null) parts.push("v" + citation.version);
      var section = Array.isArray(citation.section) ? citation.section.join(" \u203a ") : citation.section;
      if (section) parts.push(section);
      if (citation.page) parts.push("p. " + citation.page);
      var button = el("button", {
        type: "button",
        className: "cite",
        "data-chunk-id": citation.chunk_id,
        "aria-haspopup": "dialog",
        text: parts.join(" \u00b7 "),
      });
      button.addEventListener("click", function () { openPassage(citation, button); });
      view.citations.appendChild(el("li", null, [button]));
    });
  }

  function onSuperseded(event) {
    superseded[event.message_id] = true;
    var view = replies[event.message_id];
    if (view) {
      view.node.remove();
      delete replies[event.message_id];
    }
  }

  // ---------------------------------------------------------------- people (handoff, agents, ratings)

  // Every ownership change is one stored event with `owner`; what the widget offers follows from it, so
  // replaying the stored events (a reload, a reconnect) offers exactly the same things again.
  function ownerChanged(event) {
    owner = event.owner;
    if (owner === "human" && typeof event.agent === "string" && event.agent) agentName = event.agent;
    if (owner !== "human") agentName = "";
    if (owner !== "assistant") {
      // The assistant is silent now: asking it again, or asking again for a person, means nothing.
      retireActions();
      removeButtons("button.handoff");
    }
    if (owner !== "waiting") retireWaiting();
    if (owner !== "resolved") retireRating();
    updateHead();
  }

  function updateHead() {
    if (!ui) return;
    var text = SUB_DEFAULT;
    if (owner === "waiting") text = TEXT.handoff.waitingHead;
    else if (owner === "human") text = TEXT.handoff.humanHead(agentName || TEXT.handoff.someone);
    if (ui.sub.textContent !== text) ui.sub.textContent = text;
  }

  function companyName() {
    return (session && session.tenant && session.tenant.name) || "our team";
  }

  function systemLine(text, extra) {
    var line = el("p", { className: "system handoff-line" + (extra ? " " + extra : ""), text: text });
    placeStored(line);
    return line;
  }

  // A live (not replayed) event the customer should notice while the panel is closed.
  function noticeLive(event) {
    if (welcomed && event.seq > replayedUntil) markUnread();
  }

  function focusWithin(node) {
    var active = ui && ui.root.activeElement;
    return !!active && node.contains(active);
  }

  // Removes controls; focus that was on them goes to the message box rather than off the page.
  function removeKeepingFocus(node) {
    if (!node || !node.parentNode) return;
    var hadFocus = focusWithin(node);
    node.remove();
    if (hadFocus && !ui.panel.hidden) ui.textarea.focus();
  }

  function removeButtons(selector) {
    ui.log.querySelectorAll(selector).forEach(function (button) {
      var actions = button.parentNode;
      removeKeepingFocus(button);
      if (actions && actions.classList.contains("actions") && !actions.children.length) actions.textContent = "";
    });
  }

  function onHandoffRequested() {
    placeStored(el("p", { className: "system handoff-note", text: TEXT.handoff.requested }));
  }

  // What happens next, as the desk honestly knows it: a place in line, or nobody live and an email.
  function onHandoffStatus(event) {
    retireWaiting();
    var lines = [];
    if (event.state === "queued") lines.push(TEXT.handoff.queued(event));
    else if (event.state === "offline") {
      lines.push(event.why === "closed" ? TEXT.handoff.closed(event) : TEXT.handoff.noAgents);
      if (event.ticket) lines.push(TEXT.handoff.ticketOpened(event));
    } else return;
    var actions = el("div", { className: "actions" });
    var node = el("div", { className: "handoff-status", "data-state": event.state }, lines.map(function (text) {
      return el("p", { className: "handoff-text", text: text });
    }));
    var card = { node: node, actions: actions, form: null, input: null, send: null, error: null, sending: null };
    if (owner === "waiting") {
      if (event.state === "offline" && !event.ticket && event.ask_email) node.appendChild(emailForm(card));
      actions.appendChild(actionButton(TEXT.handoff.keepWaiting, "keep-assistant", TEXT.handoff.leaving, function (id) {
        return { type: "handoff.cancel", client_msg_id: id };
      }));
      node.appendChild(actions);
      waiting = card;
    }
    placeStored(node);
    noticeLive(event);
  }

  function retireWaiting() {
    if (!waiting) return;
    var card = waiting;
    waiting = null;
    removeKeepingFocus(card.form);
    removeKeepingFocus(card.actions);
  }

  function emailForm(card) {
    var inputId = nextId("hd-email");
    var hintId = nextId("hd-email-hint");
    var errorId = nextId("hd-email-error");
    var input = el("input", {
      id: inputId,
      type: "email",
      name: "email",
      autocomplete: "email",
      inputmode: "email",
      spellcheck: "false",
      maxlength: "254",
      "aria-describedby": hintId + " " + errorId,
    });
    var send = el("button", {
      type: "submit",
      className: "email-send",
      "aria-label": TEXT.handoff.emailSendName,
      text: TEXT.handoff.emailSend,
    });
    var error = el("p", { id: errorId, className: "field-error", role: "alert" });
    var form = el("form", { className: "email-form", novalidate: true }, [
      el("p", { id: hintId, className: "email-hint", text: TEXT.handoff.emailAsk }),
      el("label", { for: inputId, text: TEXT.handoff.emailLabel }),
      el("div", { className: "row" }, [input, send]),
      error,
    ]);
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      emailSubmit(card);
    });
    card.form = form;
    card.input = input;
    card.send = send;
    card.error = error;
    return form;
  }

  function fieldError(control, error, text) {
    error.textContent = text || "";
    if (text) control.setAttribute("aria-invalid", "true");
    else control.removeAttribute("aria-invalid");
  }

  // Busy, not disabled: a disabled button would drop the keyboard focus on the floor.
  function setBusy(button, busy, label) {
    if (busy) button.setAttribute("aria-disabled", "true");
    else button.removeAttribute("aria-disabled");
    button.textContent = label;
  }

  function emailSubmit(card) {
    if (card.sending || waiting !== card) return;
    var address = card.input.value.trim();
    if (!address) {
      fieldError(card.input, card.error, TEXT.handoff.emailEmpty);
      card.input.focus();
      return;
    }
    fieldError(card.input, card.error, "");
    var id = uuid();
    card.sending = id;
    card.input.readOnly = true;
    setBusy(card.send, true, TEXT.handoff.sending);
    var settle = function () {
      if (card.sending !== id) return;
      card.sending = null;
      card.input.readOnly = false;
      setBusy(card.send, false, TEXT.handoff.emailSend);
    };
    track(id, {
      ack: function () {
        // Saved: its `handoff.email_saved` event follows and removes the form. Should that push go
        // missing, fetch it.
        setTimeout(function () {
          if (waiting === card && card.sending === id) catchUp();
        }, DECIDE_CHECK_MS);
      },
      error: function (frame, text) {
        settle();
        // The desk's own sentence says what is wrong with the address; the field keeps what was typed.
        var said = typeof frame.message === "string" && frame.message && !/^Invalid frame/.test(frame.message);
        fieldError(card.input, card.error, frame.code === "bad_request" ? (said ? frame.message : TEXT.handoff.emailInvalid) : text);
        if (waiting === card) card.input.focus();
      },
      lost: settle,
    });
    sendFrame({ type: "handoff.email", email: address, client_msg_id: id }, true);
  }

  function onEmailSaved() {
    if (!waiting || !waiting.form) return;
    removeKeepingFocus(waiting.form);
    waiting.form = null;
  }

  function onTicket(event) {
    systemLine(TEXT.handoff.ticket(event), "ticket-note");
    noticeLive(event);
  }

  function onClaimed(event) {
    systemLine(TEXT.handoff.claimed(event.agent || TEXT.handoff.someone, companyName()));
    noticeLive(event);
  }

  function onTransferred(event) {
    var text = event.to === "team"
      ? TEXT.handoff.toTeam(event.team || "support")
      : TEXT.handoff.toAgent(event.agent || TEXT.handoff.someone);
    systemLine(text);
    noticeLive(event);
  }

  // A person's message: their own bubble and name, never dressed as the assistant's answer.
  function onAgentMessage(event) {
    var message = event.message || {};
    if (!message.id) return;
    var who = (message.author || TEXT.handoff.someone) + " \u00b7 " + companyName();
    placeStored(el("div", { className: "msg agent", "data-message-id": message.id }, [
      el("span", { className: "who", text: who }),
      el("p", { className: "text", text: message.text || "" }),
    ]));
    noticeLive(event);
  }

  function onResolved(event) {
    systemLine(TEXT.resolved.line, "resolved-note");
    if (event.csat === true) ratingPrompt();
    noticeLive(event);
  }

  function onNotice(event) {
    systemLine(TEXT.notices[event.code] || event.text, "notice-line");
    noticeLive(event);
  }

  function onReopened() {
    placeStored(el("p", { className: "divider", text: TEXT.resolved.reopened }));
  }

  function onRated(event) {
    var hadFocus = !!rating && focusWithin(rating.node);
    retireRating();
    systemLine(TEXT.resolved.thanks, "rated-note");
    if (hadFocus && !ui.panel.hidden) ui.textarea.focus();
    noticeLive(event);
  }

  function retireRating() {
    if (!rating) return;
    var prompt = rating;
    rating = null;
    removeKeepingFocus(prompt.node);
  }

  // "How did we do?": five buttons (Tab or the arrow keys move between them), a comment, Send.
  function ratingPrompt() {
    retireRating();
    var titleId = nextId("hd-rate-title");
    var commentId = nextId("hd-rate-comment");
    var errorId = nextId("hd-rate-error");
    var stars = el("div", { className: "stars", role: "group", "aria-labelledby": titleId });
    var comment = el("textarea", { id: commentId, rows: "2", maxlength: "2000", "aria-describedby": errorId });
    var send = el("button", {
      type: "submit",
      className: "rate-send",
      "aria-label": TEXT.resolved.sendName,
      text: TEXT.resolved.send,
    });
    var error = el("p", { id: errorId, className: "field-error", role: "alert" });
    var node = el("form", { className: "csat", novalidate: true, "aria-labelledby": titleId }, [
      el("p", { id: titleId, className: "csat-title", text: TEXT.resolved.ask }),
      stars,
      el("label", { for: commentId, text: TEXT.resolved.comment }),
      comment,
      el("div", { className: "row" }, [send]),
      error,
    ]);
    var prompt = { node: node, buttons: [], comment: comment, send: send, error: error, score: 0, sending: null, locked: false };
    for (var n = 1; n <= 5; n++) {
      var button = el("button", {
        type: "button",
        className: "star",
        "aria-label": TEXT.resolved.rate(n),
        "aria-pressed": "false",
        "data-score": String(n),
        text: "\u2605",
      });
      button.addEventListener("click", rateChoose.bind(null, prompt, n));
      prompt.buttons.push(button);
      stars.appendChild(button);
    }
    stars.addEventListener("keydown", function (event) {
      var index = prompt.buttons.indexOf(ui.root.activeElement);
      if (index < 0) return;
      var moves = { ArrowRight: index + 1, ArrowUp: index + 1, ArrowLeft: index - 1, ArrowDown: index - 1, Home: 0, End: 4 };
      if (!(event.key in moves)) return;
      event.preventDefault();
      prompt.buttons[Math.max(0, Math.min(4, moves[event.key]))].focus();
    });
    node.addEventListener("submit", function (event) {
      event.preventDefault();
      rateSubmit(prompt);
    });
    rating = prompt;
    placeStored(node);
  }

  function rateChoose(prompt, score) {
    if (prompt.sending || prompt.locked) return;
    prompt.score = score;
    prompt.buttons.forEach(function (button, index) {
      button.setAttribute("aria-pressed", index + 1 === score ? "true" : "false");
      button.classList.toggle("lit", index < score);
    });
    prompt.error.textContent = "";
  }

  function rateSubmit(prompt) {
    if (prompt.sending || prompt.locked || rating !== prompt) return;
    if (!prompt.score) {
      prompt.error.textContent = TEXT.resolved.choose;
      prompt.buttons[0].focus();
      return;
    }
    prompt.error.textContent = "";
    var id = uuid();
    prompt.sending = id;
    prompt.comment.readOnly = true;
    setBusy(prompt.send, true, TEXT.handoff.sending);
    var settle = function (locked) {
      if (prompt.sending !== id) return;
      prompt.sending = null;
      prompt.locked = locked;
      prompt.comment.readOnly = locked;
      setBusy(prompt.send, locked, TEXT.resolved.send);
    };
    track(id, {
      ack: function () {
        setTimeout(function () {
          if (rating === prompt && prompt.sending === id) catchUp();
        }, DECIDE_CHECK_MS);
      },
      error: function (frame, text) {
        // Rated already (another tab), or no longer resolved: the desk's sentence says which.
        var final = frame.code === "conflict";
        settle(final);
        prompt.error.textContent = final && typeof frame.message === "string" && frame.message ? frame.message : text;
      },
      lost: function () { settle(false); },
    });
    sendFrame({ type: "csat", score: prompt.score, comment: prompt.comment.value.trim(), client_msg_id: id }, true);
  }

  // ---------------------------------------------------------------- frames that wait for an answer

  // Forms (an email, a rating) whose frame is on its way: the answer or the error goes back to them.
  var requests = {}; // client_msg_id -> {socket, ack(frame), error(frame, text), lost()}

  function track(id, handlers) {
    handlers.socket = isOpen() ? socket : null;
    requests[id] = handlers;
  }

  // A frame sent on a socket that closed before its answer: the replay after the welcome shows whether
  // it counted; until then the controls work again (never a spinner for ever).
  function requestsReconnected() {
    Object.keys(requests).forEach(function (id) {
      var pending = requests[id];
      if (!pending.socket) {
        pending.socket = socket;
        return;
      }
      if (pending.socket === socket) return;
      delete requests[id];
      pending.lost();
    });
    Object.keys(pendingActions).forEach(function (id) {
      var action = pendingActions[id];
      if (!action.socket) {
        action.socket = socket;
        return;
      }
      if (action.socket === socket) return;
      delete pendingActions[id];
      setBusy(action.button, false, action.label);
    });
  }

  // ---------------------------------------------------------------- proposed changes (tool runs)

  // A run's state arrives as several stored `tool.run` events with the same run_id and the latest wins,
  // so replaying the stored events (a reload, a reconnect, a catch-up) draws the same card again.
  var DECIDE_CHECK_MS = 2000;
  var DECIDE_FINAL = { conflict: true, not_found: true, forbidden: true }; // asking again cannot help
  var pendingDecisions = {}; // client_msg_id -> {card, socket}: a Confirm or Cancel not answered yet

  function onToolRun(event) {
    var runId = typeof event.run_id === "string" ? event.run_id : "";
    if (!runId) return;
    var card = runs[runId];
    if (!card) {
      // A read's result is already in the answer's text, and a refused call never proposed anything.
      if (event.approval !== "customer" && event.approval !== "agent") return;
      if (event.status === "refused") return;
      card = toolCard(runId);
      runs[runId] = card;
      placeStored(card.node);
    }
    var changed = !card.run || card.run.status !== event.status;
    card.run = event;
    if (changed && event.status !== "awaiting_approval") {
      card.sending = null; // decided (here, in another tab, or by an agent): nothing left to send
      card.error.textContent = "";
    }
    renderToolCard(card);
    if (changed && welcomed && event.seq > replayedUntil) markUnread();
  }

  function toolCard(runId) {
    var label = el("span", { className: "tool-label", "aria-hidden": "true" }); // the group's name already
    var proposal = el("p", { className: "tool-proposal" });
    var state = el("p", { className: "tool-state" });
    var summary = el("p", { className: "tool-summary" });
    var actions = el("div", { className: "actions" });
    var error = el("p", { className: "tool-error" });
    // Focusable from script only: where focus goes when the buttons it was on go away.
    var node = el("div", { className: "tool", role: "group", tabindex: "-1", "data-run-id": runId }, [
      label, proposal, state, summary, actions, error,
    ]);
    return {
      id: runId,
      node: node,
      label: label,
      proposal: proposal,
      state: state,
      summary: summary,
      actions: actions,
      error: error,
      buttons: null,
      run: null,
      sending: null, // the client_msg_id of the decision on its way
      locked: false, // the desk refused the decision for good
    };
  }

  function renderToolCard(card) {
    var run = card.run;
    var label = textOf(run.label) || TEXT.tool.untitled;
    var proposal = textOf(run.proposal);
    var asking = run.status === "awaiting_approval" && run.approval === "customer";
    var state = "";
    var summary = "";
    if (run.status === "awaiting_approval") state = asking ? TEXT.tool.ask : TEXT.tool.agent;
    else if (run.status === "queued" || run.status === "running") state = TEXT.tool.working;
    else if (run.status === "done") {
      state = TEXT.tool.done;
      summary = textOf(run.summary);
    } else if (run.status === "failed") summary = textOf(run.summary) || TEXT.tool.failed;
    else if (run.status === "rejected") state = run.approval === "customer" ? TEXT.tool.cancelled : TEXT.tool.declined;
    if (asking && card.sending) state = TEXT.tool.sending;

    card.node.setAttribute("aria-label", label);
    card.node.setAttribute("data-status", run.status || "");
    card.node.setAttribute("data-approval", run.approval || "");
    card.label.textContent = label;
    card.proposal.textContent = proposal ? proposal.charAt(0).toUpperCase() + proposal.slice(1) : "";
    if (card.state.textContent !== state) card.state.textContent = state;
    if (card.summary.textContent !== summary) card.summary.textContent = summary;

    var active = ui.root.activeElement;
    var focusInside = !!active && active !== card.node && card.node.contains(active);
    if (asking) {
      if (!card.buttons) {
        card.buttons = [decisionButton(card, true), decisionButton(card, false)];
        card.buttons.forEach(function (button) { card.actions.appendChild(button); });
      }
      card.buttons.forEach(function (button) {
        var word = button.getAttribute("data-approve") === "true" ? TEXT.tool.confirm : TEXT.tool.cancel;
        button.setAttribute("aria-label", word + ": " + (proposal || label));
        button.disabled = !!card.sending || card.locked;
      });
      if (focusInside && active.disabled) card.node.focus();
    } else if (card.buttons) {
      card.actions.textContent = "";
      card.buttons = null;
      if (focusInside) card.node.focus();
    }
    scrollToEnd(false);
  }

  function decisionButton(card, approve) {
    var button = el("button", {
      type: "button",
      className: approve ? "confirm" : "secondary cancel",
      "data-approve": approve ? "true" : "false",
      text: approve ? TEXT.tool.confirm : TEXT.tool.cancel,
    });
    button.addEventListener("click", function () { decide(card, approve); });
    return button;
  }

  function decide(card, approve) {
    if (card.sending || card.locked || !card.run || card.run.status !== "awaiting_approval") return;
    var id = uuid();
    card.sending = id;
    card.error.textContent = "";
    pendingDecisions[id] = { card: card, socket: isOpen() ? socket : null };
    renderToolCard(card);
    sendFrame({ type: "tool.decide", client_msg_id: id, run_id: card.id, approve: approve }, true);
  }

  function decisionAcked(clientMsgId) {
    var pending = pendingDecisions[clientMsgId];
    if (!pending) return;
    delete pendingDecisions[clientMsgId];
    var card = pending.card;
    // The decision is stored; its `tool.run` event follows. Should that push go missing, fetch it.
    setTimeout(function () {
      if (runs[card.id] === card && card.sending === clientMsgId) catchUp();
    }, DECIDE_CHECK_MS);
  }

  // True if the error answered a decision: the card shows it, not the conversation.
  function decisionRefused(clientMsgId, code, text) {
    var pending = pendingDecisions[clientMsgId];
    if (!pending) return false;
    delete pendingDecisions[clientMsgId];
    var card = pending.card;
    if (card.sending === clientMsgId) card.sending = null;
    if (DECIDE_FINAL[code]) card.locked = true;
    card.error.textContent = text;
    if (runs[card.id] === card) renderToolCard(card);
    if (code === "conflict") catchUp(); // decided elsewhere: show what happened
    return true;
  }

  // A decision sent on a socket that closed before its answer: the replay that follows the welcome
  // shows whether it counted; until then the buttons work again. Queued ones go out on this socket now.
  function decisionsReconnected() {
    Object.keys(pendingDecisions).forEach(function (id) {
      var pending = pendingDecisions[id];
      if (!pending.socket) {
        pending.socket = socket;
        return;
      }
      if (pending.socket === socket) return;
      delete pendingDecisions[id];
      if (pending.card.sending === id) pending.card.sending = null;
      if (runs[pending.card.id] === pending.card) renderToolCard(pending.card);
    });
  }

  function textOf(value) {
    return typeof value === "string" ? value.trim() : "";
  }

  function onWelcome(frame) {
    welcomed = true;
    attempts = 0;
    // Replies still streaming get STALL_MS on the new socket to show they are alive.
    Object.keys(replies).forEach(function (id) { replies[id].heard = Date.now(); });
    replayedUntil = Math.max(replayedUntil, Number(frame.last_seq) || 0);
    setStatus("");
    if (frame.conversation_id && session && frame.conversation_id !== session.conversation_id) {
      session.conversation_id = frame.conversation_id;
      resetConversation();
    }
    decisionsReconnected();
    requestsReconnected();
    flushOutbox();
  }

  function onAck(frame) {
    var view = customers[frame.client_msg_id];
    if (view) {
      view.id = frame.message_id;
      view.node.setAttribute("data-message-id", frame.message_id);
      setCustomerState(view, "sent", "");
    }
    dropFromOutbox(frame.client_msg_id); // settled: never sent again
    var action = pendingActions[frame.client_msg_id];
    delete pendingActions[frame.client_msg_id];
    // Asked for a person (or back to the assistant) when that had happened already: nothing left to do.
    if (action && SETTLES[action.kind] && typeof frame.seq !== "number") removeKeepingFocus(action.button);
    var request = requests[frame.client_msg_id];
    if (request) {
      delete requests[frame.client_msg_id];
      request.ack(frame);
    }
    decisionAcked(frame.client_msg_id);
  }

  // Under text already shown (the quoted policy) only a line about what comes next makes sense.
  var AFTER_TEXT = { composing: true, queued: true };

  function onProgress(frame) {
    if (superseded[frame.message_id]) return;
    var view = replyView(frame.message_id);
    if (view.final || (view.shown && !AFTER_TEXT[frame.stage])) return;
    setProgress(view, frame.stage, frame.text);
  }

  // The sources of the quoted policy, shown with it before the answer is complete; the stored final
  // message renders them again.
  function onCitations(frame) {
    if (superseded[frame.message_id] || !Array.isArray(frame.citations)) return;
    var view = replyView(frame.message_id);
    if (view.final) return;
    renderCitations(view, frame.citations);
  }

  // The offset rule: a piece that starts inside the shown text is trimmed to its new part, one that
  // starts past the end would leave a gap and is not shown; a snapshot (after a reconnect) or the stored
  // text fills it.
  function onDelta(frame) {
    if (superseded[frame.message_id]) return;
    var view = replyView(frame.message_id);
    if (view.final || typeof frame.text !== "string") return;
    var offset = Number(frame.offset) || 0;
    var shownLength = view.shown.length;
    if (offset > shownLength) {
      if (!view.resyncing) {
        view.resyncing = true;
        resync();
      }
      return;
    }
    var fresh = frame.text.slice(shownLength - offset);
    if (!fresh) return;
    showText(view, view.shown + fresh);
  }

  function onSnapshot(frame) {
    if (superseded[frame.message_id]) return;
    var view = replyView(frame.message_id);
    if (view.final || typeof frame.text !== "string") return;
    view.resyncing = false;
    showText(view, frame.text);
  }

  var SETTLES = { handoff: true, "keep-assistant": true }; // actions whose ack without a seq changed nothing

  function onError(frame) {
    var text = sentence(frame.code, frame);
    if (frame.client_msg_id && decisionRefused(frame.client_msg_id, frame.code, text)) return;
    var request = frame.client_msg_id && requests[frame.client_msg_id];
    if (request) {
      delete requests[frame.client_msg_id];
      request.error(frame, text);
      return;
    }
    var action = frame.client_msg_id && pendingActions[frame.client_msg_id];
    if (action) {
      delete pendingActions[frame.client_msg_id];
      setBusy(action.button, false, action.label);
    }
    var view = frame.client_msg_id && customers[frame.client_msg_id];
    if (view) {
      outbox.release(frame.client_msg_id); // answered: the next flush may send it again
      if (frame.code === "rate_limited" && frame.retryable !== false) {
        // Kept in the outbox and sent again once the wait is over.
        setCustomerState(view, "pending", text);
        var wait = Math.max(1, Number(frame.retry_after) || 5) * 1000;
        setTimeout(flushOutbox, wait);
        showSystem(text, "error");
        return;
      }
      if (frame.code === "temporarily_unavailable" && frame.retryable !== false) {
        // The desk could not store it just now (restarting): kept in the outbox, sent again shortly.
        setCustomerState(view, "pending", text);
        setTimeout(flushOutbox, Math.max(1, Number(frame.retry_after) || 3) * 1000);
        setStatus(TEXT.status.reconnecting);
        return;
      }
      setCustomerState(view, "failed", "Not sent. " + text);
      dropFromOutbox(frame.client_msg_id);
      if (frame.code === "message_too_long" && !ui.textarea.value) {
        ui.textarea.value = view.text.textContent;
        updateCounter();
      }
      return;
    }
    if (frame.code === "unauthorized" && !welcomed) {
      reconnectSoon();
      return;
    }
    if (frame.code === "temporarily_unavailable" && !frame.client_msg_id) {
      // The socket's own answer while the desk restarts: close 1013 follows and the widget reconnects.
      setStatus(TEXT.status.reconnecting);
      return;
    }
    showSystem(text, "error");
  }

  function showSystem(text, kind) {
    var line = el("p", { className: "system" + (kind ? " " + kind : ""), "data-kind": "notice", text: text });
    appendLocal(line);
  }

  // ---------------------------------------------------------------- outbox

  // {client_msg_id, text, conversation_id}: sent again after every (re)connect until acked, once per socket
  var outbox = new Outbox({ max: OUTBOX_MAX });
  var actions = []; // retry / handoff frames waiting for a connection (not kept across page loads)
  var pendingActions = {}; // client_msg_id -> the button that sent it, until acknowledged

  function saveOutbox() {
    writeStore("localStorage", OUTBOX_KEY, outbox.size() ? JSON.stringify(outbox.items()) : null);
  }

  function restoreOutbox() {
    var saved;
    try {
      saved = JSON.parse(readStore("localStorage", OUTBOX_KEY) || "[]");
    } catch (e) {
      saved = [];
    }
    outbox.restore(saved, session.conversation_id).forEach(function (item) {
      var view = customerView(item.client_msg_id, item.text);
      setCustomerState(view, "pending", "Sending…");
      appendLocal(view.node);
    });
    saveOutbox();
  }

  function dropFromOutbox(clientMsgId) {
    if (outbox.remove(clientMsgId)) saveOutbox();
  }

  function flushOutbox() {
    if (!isOpen()) return;
    outbox.takeUnsent().forEach(function (item) {
      rawSend({ type: "message", text: item.text, client_msg_id: item.client_msg_id });
    });
    while (actions.length && isOpen()) rawSend(actions.shift());
  }

  function sendFrame(frame, queue) {
    if (isOpen()) rawSend(frame);
    else if (queue) {
      actions.push(frame);
      connect();
    }
  }

  function submit() {
    var raw = ui.textarea.value;
    var text = raw.trim();
    var limit = maxChars();
    ui.composerError.textContent = "";
    ui.textarea.removeAttribute("aria-invalid");
    if (!text) return;
    if (charCount(text) > limit) {
      ui.composerError.textContent = sentence("message_too_long", { limit: limit });
      ui.textarea.setAttribute("aria-invalid", "true");
      return;
    }
    if (outbox.full()) {
      ui.composerError.textContent = sentence("rate_limited");
      return;
    }
    var clientMsgId = uuid();
    var view = customerView(clientMsgId, text);
    setCustomerState(view, "pending", "Sending…");
    appendLocal(view.node);
    outbox.add({ client_msg_id: clientMsgId, text: text, conversation_id: session.conversation_id });
    saveOutbox();
    ui.textarea.value = "";
    updateCounter();
    connect();
    flushOutbox();
  }

  function maxChars() {
    var limit = session && session.limits && Number(session.limits.max_message_chars);
    return limit > 0 ? limit : 2000;
  }

  function updateCounter() {
    var limit = maxChars();
    var used = charCount(ui.textarea.value.trim());
    if (used < limit * COUNTER_FROM) {
      ui.counter.textContent = "";
      ui.counter.classList.remove("over");
      if (ui.textarea.getAttribute("aria-invalid")) {
        ui.textarea.removeAttribute("aria-invalid");
        ui.composerError.textContent = "";
      }
      return;
    }
    var left = limit - used;
    ui.counter.classList.toggle("over", left < 0);
    ui.counter.textContent = left >= 0
      ? left + (left === 1 ? " character left" : " characters left")
      : -left + (left === -1 ? " character too many" : " characters too many");
    if (left >= 0 && ui.textarea.getAttribute("aria-invalid")) {
      ui.textarea.removeAttribute("aria-invalid");
      ui.composerError.textContent = "";
    }
  }

  // ---------------------------------------------------------------- passages

  function openPassage(citation, button) {
    ui.passageReturn = button;
    ui.passage.hidden = false;
    ui.passageTitle.textContent = citation.title || "Source";
    var meta = [];
    if (citation.version !== undefined && citation.version !== null) meta.push("Version " + citation.version);
    var section = Array.isArray(citation.section) ? citation.section.join(" \u203a ") : citation.section;
    if (section) meta.push(section);
    if (citation.page) meta.push("Page " + citation.page);
    ui.passageMeta.textContent = meta.join(" \u00b7 ");
    ui.passageText.textContent = "Loading the passage…";
    ui.passageText.setAttribute("aria-busy", "true");
    ui.passageClose.focus();
    var chunk = citation.chunk_id;
    request(api("api/widget/v1/passages/" + encodeURIComponent(chunk)), {
      headers: { Authorization: "Bearer " + session.token, Accept: "application/json" },
    }).then(
      function (answer) {
        if (ui.passage.hidden || ui.passageReturn !== button) return;
        ui.passageText.removeAttribute("aria-busy");
        if (answer.ok && answer.body && typeof answer.body.text === "string") {
          ui.passageText.textContent = answer.body.text;
        } else {
          var code = (answer.body && answer.body.code) || (answer.status === 404 ? "not_found" : "unknown");
          ui.passageText.textContent = sentence(code, { retry_after: retryAfter(answer) / 1000 });
        }
      },
      function () {
        if (ui.passage.hidden) return;
        ui.passageText.removeAttribute("aria-busy");
        ui.passageText.textContent = sentence("temporarily_unavailable");
      }
    );
  }

  function closePassage(options) {
    if (!ui || ui.passage.hidden) return;
    ui.passage.hidden = true;
    var back = ui.passageReturn;
    ui.passageReturn = null;
    if (back && (!options || options.restoreFocus !== false) && back.isConnected) back.focus();
  }

  // ---------------------------------------------------------------- voice

  // Talking instead of typing. The microphone button records: hold it to talk and let go to stop, or press
  // it once (a click, Space or Enter) to start and again to stop; Cancel or Escape throws the recording
  // away unsent. The desk transcribes the recording (POST voice, then GET voice/<id> until it is done) and
  // the transcript lands in the message box, where the customer checks it and sends it like anything typed:
  // nothing is sent by itself. Answers can be read aloud by the browser's own speech synthesis.
  var VOICE_PATH = "api/widget/v1/voice";
  var VOICE_POLL_MS = 500;
  var VOICE_WAIT_MS = 120000; // waiting for a transcript longer than this is giving up
  var VOICE_MIN_MS = 600; // a shorter recording is a slip of the finger, not a message
  var VOICE_HOLD_MS = 400; // a press longer than this is push-to-talk: letting go stops
  var VOICE_MAX_SECONDS = 60; // unless the session says otherwise; the desk refuses longer recordings
  var VOICE_BITS = 32000; // speech needs little: a minute is about 240 KB
  var SPEAK_KEY = TOKEN_KEY + ":speak";

  var voice = null; // the voice controls of the rendered widget
  var recording = null; // the recording under way: {state: starting|recording|stopping, ...}
  var transcribing = null; // the upload or transcript being waited for
  var press = null; // the pointer press on the microphone button
  var speaking = false; // an answer of ours is being read aloud

  function voiceCapable() {
    return !!(window.MediaRecorder && window.Blob && window.FormData && navigator.mediaDevices &&
      typeof navigator.mediaDevices.getUserMedia === "function");
  }

  // The session's `limits.voice` says whether the company offers voice and how long a recording may be.
  function voiceLimits() {
    var limits = session && session.limits && session.limits.voice;
    return limits && typeof limits === "object" ? limits : {};
  }

  function voiceAllowed() {
    return voiceLimits().enabled !== false;
  }

  function voiceMaxSeconds() {
    var s = Number(voiceLimits().max_seconds);
    return s > 0 ? s : VOICE_MAX_SECONDS;
  }

  function canSpeak() {
    return !!(window.speechSynthesis && window.SpeechSynthesisUtterance);
  }

  function icon(paths) {
    var svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
    svg.setAttribute("viewBox", "0 0 24 24");
    svg.setAttribute("class", "icon");
    svg.setAttribute("aria-hidden", "true");
    svg.setAttribute("focusable", "false");
    paths.forEach(function (d) {
      var path = document.createElementNS("http://www.w3.org/2000/svg", "path");
      path.setAttribute("d", d);
      svg.appendChild(path);
    });
    return svg;
  }

  function voiceControls() {
    var mic = el("button", {
      type: "button",
      className: "secondary mic",
      "aria-label": TEXT.voice.record,
      "aria-pressed": "false",
      title: TEXT.voice.record,
      hidden: !voiceCapable() || !voiceAllowed(),
    }, [icon(["M9 5a3 3 0 0 1 6 0v6a3 3 0 0 1-6 0z", "M6 11a6 6 0 0 0 12 0", "M12 17v4", "M8.5 21h7"])]);
    var dot = el("span", { className: "rec-dot", "aria-hidden": "true" });
    var dots = el("span", { className: "dots", "aria-hidden": "true" }, [el("span"), el("span"), el("span")]);
    var line = el("span", { className: "rec-text" });
    var cancel = el("button", {
      type: "button",
      className: "secondary rec-cancel",
      "aria-label": TEXT.voice.cancelName,
      text: TEXT.voice.cancel,
    });
    var bar = el("div", { className: "voice-bar", hidden: true }, [dot, dots, line, cancel]);
    // Said once per change of state; the seconds ticking by are only shown.
    var live = el("p", { className: "vh voice-live", role: "status", "aria-live": "polite" });
    var speaker = el("button", {
      type: "button",
      className: "speak",
      "aria-label": TEXT.voice.speak,
      "aria-pressed": readAloudOn() ? "true" : "false",
      title: TEXT.voice.speak,
      hidden: !canSpeak(),
    }, [icon(["M4 9.5h3.5L12 6v12l-4.5-3.5H4z", "M15.5 9.5a3.5 3.5 0 0 1 0 5", "M18 7a7 7 0 0 1 0 10"])]);
    return { mic: mic, bar: bar, dot: dot, dots: dots, line: line, cancel: cancel, live: live, speaker: speaker };
  }

  function voiceWire(controls) {
    voice = controls;
    var mic = controls.mic;
    mic.addEventListener("pointerdown", micDown);
    mic.addEventListener("pointerup", micUp);
    mic.addEventListener("pointercancel", micUp);
    mic.addEventListener("contextmenu", function (event) { event.preventDefault(); }); // a long touch
    // Space and Enter (and assistive technology) click without a pointer: each click starts or stops.
    mic.addEventListener("click", function (event) {
      if (event.detail === 0) voiceToggle();
    });
    // A key held down repeats: that must not start and stop over and over.
    mic.addEventListener("keydown", function (event) {
      if (event.repeat && (event.key === "Enter" || event.key === " ")) event.preventDefault();
    });
    controls.cancel.addEventListener("click", function () { voiceCancel(); });
    controls.speaker.addEventListener("click", function () { readAloudSet(!readAloudOn()); });
    // Another tab of the same visitor changed the choice.
    window.addEventListener("storage", function (event) {
      if (event.key === SPEAK_KEY) readAloudSet(event.newValue === "1", { stored: true });
    });
  }

  function micDown(event) {
    if (event.button !== 0 || !event.isPrimary || micBusy()) return;
    event.preventDefault(); // no text selection, no dragging; the focus is set here instead
    voice.mic.focus();
    try {
      voice.mic.setPointerCapture(event.pointerId); // letting go anywhere is letting go of the button
    } catch (e) {
      /* not capturable: pointerup on the button still arrives */
    }
    if (recording) {
      press = { id: event.pointerId, at: Date.now(), stopping: true };
      voiceStop(); // recording after a short press: this press stops it
      return;
    }
    press = { id: event.pointerId, at: Date.now(), stopping: false };
    voiceStart(true);
  }

  function micUp(event) {
    if (!press || event.pointerId !== press.id) return;
    var ended = press;
    press = null;
    if (ended.stopping || !recording) return;
    var held = Date.now() - ended.at >= VOICE_HOLD_MS;
    // A short press (a tap, a click) leaves it recording until the next press. Let go while the browser
    // still asks for the microphone, the recording starts once allowed and waits for a press too.
    if (held && recording.state === "recording") voiceStop();
    else recording.hold = false;
  }

  function micBusy() {
    return !!transcribing || voice.mic.hidden;
  }

  function voiceToggle() {
    if (recording) voiceStop();
    else if (!micBusy()) voiceStart(false);
  }

  function voiceStart(hold) {
    if (recording || transcribing || !session) return;
    voiceError("");
    var take = { state: "starting", hold: hold, chunks: [], cancelled: false, stream: null, recorder: null, started: 0, timer: null };
    recording = take;
    voiceShow();
    var asking;
    try {
      asking = navigator.mediaDevices.getUserMedia({ audio: true });
    } catch (e) {
      asking = Promise.reject(e);
    }
    asking.then(
      function (stream) {
        if (recording !== take) {
          stopTracks(stream); // cancelled while the browser asked
          return;
        }
        take.stream = stream;
        var type = recorderType();
        var options = { audioBitsPerSecond: VOICE_BITS };
        if (type) options.mimeType = type;
        try {
          take.recorder = new MediaRecorder(stream, options);
        } catch (e) {
          voiceAbandon(take, TEXT.voice.busyMic);
          return;
        }
        take.recorder.ondataavailable = function (event) {
          if (event.data && event.data.size) take.chunks.push(event.data);
        };
        take.recorder.onstop = function () { voiceRecorded(take); };
        take.recorder.onerror = function () { voiceAbandon(take, TEXT.voice.busyMic); };
        try {
          take.recorder.start(1000);
        } catch (e) {
          voiceAbandon(take, TEXT.voice.busyMic);
          return;
        }
        take.state = "recording";
        take.started = Date.now();
        take.timer = setInterval(function () { voiceTick(take); }, 250);
        voiceShow();
        announce(take.hold ? TEXT.voice.startedHold : TEXT.voice.started);
      },
      function (error) {
        if (recording !== take) return;
        recording = null;
        voiceShow();
        voiceError(micSentence(error));
      }
    );
  }

  function recorderType() {
    var types = ["audio/webm;codecs=opus", "audio/ogg;codecs=opus", "audio/webm", "audio/mp4"];
    if (typeof MediaRecorder.isTypeSupported !== "function") return "";
    for (var i = 0; i < types.length; i++) {
      if (MediaRecorder.isTypeSupported(types[i])) return types[i];
    }
    return "";
  }

  function micSentence(error) {
    var name = error && error.name;
    if (name === "NotAllowedError" || name === "SecurityError" || name === "PermissionDeniedError") return TEXT.voice.denied;
    if (name === "NotFoundError" || name === "OverconstrainedError" || name === "DevicesNotFoundError") return TEXT.voice.noMic;
    return TEXT.voice.busyMic;
  }

  function voiceTick(take) {
    if (recording !== take || take.state !== "recording") return;
    var elapsed = Math.floor((Date.now() - take.started) / 1000);
    var text = TEXT.voice.recording(elapsed);
    if (voice.line.textContent !== text) voice.line.textContent = text;
    var limit = voiceMaxSeconds();
    if (Date.now() - take.started >= limit * 1000) {
      voiceStop();
      announce(TEXT.voice.limit(limit));
    }
  }

  function voiceStop() {
    var take = recording;
    if (!take) return;
    if (take.state === "starting") {
      voiceCancel({ quiet: true }); // stopped before the microphone was on: there is nothing to send
      return;
    }
    if (take.state !== "recording") return;
    take.state = "stopping";
    clearInterval(take.timer);
    try {
      take.recorder.stop(); // the last data and then `stop` follow: voiceRecorded
    } catch (e) {
      voiceAbandon(take, TEXT.voice.busyMic);
    }
  }

  // Throws the recording away; nothing of it leaves the browser.
  function voiceCancel(options) {
    var take = recording;
    if (!take) return;
    var hadFocus = !!voice && focusWithin(voice.bar);
    take.cancelled = true;
    recording = null;
    press = null;
    clearInterval(take.timer);
    if (take.recorder && take.recorder.state !== "inactive") {
      try { take.recorder.stop(); } catch (e) { /* stopped already */ }
    }
    stopTracks(take.stream);
    take.chunks = [];
    voiceShow();
    if (!options || !options.quiet) announce(TEXT.voice.cancelled);
    if (hadFocus && !voice.mic.hidden) voice.mic.focus();
  }

  function voiceAbandon(take, text) {
    if (recording === take) recording = null;
    take.cancelled = true;
    clearInterval(take.timer);
    stopTracks(take.stream);
    voiceShow();
    voiceError(text);
  }

  function stopTracks(stream) {
    if (!stream) return;
    stream.getTracks().forEach(function (track) {
      try { track.stop(); } catch (e) { /* ended */ }
    });
  }

  function voiceRecorded(take) {
    stopTracks(take.stream);
    clearInterval(take.timer);
    if (recording === take) recording = null;
    if (take.cancelled) {
      voiceShow();
      return;
    }
    var length = Date.now() - take.started;
    if (length < VOICE_MIN_MS || !take.chunks.length) {
      voiceShow();
      voiceError(TEXT.voice.tooShort);
      return;
    }
    var type = (take.recorder && take.recorder.mimeType) || (take.chunks[0] && take.chunks[0].type) || "audio/webm";
    voiceUpload(new Blob(take.chunks, { type: type }));
  }

  function voiceUpload(blob) {
    var job = { id: null, since: Date.now() };
    transcribing = job;
    voiceShow();
    announce(TEXT.voice.transcribing);
    var form = new FormData();
    var extension = /ogg/.test(blob.type) ? "ogg" : /mp4/.test(blob.type) ? "m4a" : "webm";
    form.append("audio", blob, "voice." + extension);
    request(api(VOICE_PATH), {
      method: "POST",
      headers: { Authorization: "Bearer " + session.token, Accept: "application/json" },
      body: form,
    }).then(
      function (answer) {
        if (transcribing !== job) return;
        if (answer.ok && answer.body && answer.body.id) {
          job.id = String(answer.body.id);
          voiceSettle(job, answer.body);
        } else {
          voiceDone(job, null, voiceRefusal(answer));
        }
      },
      function () {
        if (transcribing === job) voiceDone(job, null, TEXT.voice.unreachable);
      }
    );
  }

  function voiceSettle(job, body) {
    if (transcribing !== job) return;
    if (body.status === "done") {
      voiceDone(job, typeof body.transcript === "string" ? body.transcript : "", null);
      return;
    }
    if (body.status === "failed") {
      voiceDone(job, null, voiceFailure(body.error));
      return;
    }
    if (Date.now() - job.since > VOICE_WAIT_MS) {
      voiceDone(job, null, TEXT.voice.slow);
      return;
    }
    setTimeout(function () { voicePoll(job); }, VOICE_POLL_MS);
  }

  function voicePoll(job) {
    if (transcribing !== job || !session) return;
    request(api(VOICE_PATH + "/" + encodeURIComponent(job.id)), {
      headers: { Authorization: "Bearer " + session.token, Accept: "application/json" },
    }).then(
      function (answer) {
        if (transcribing !== job) return;
        if (answer.ok && answer.body) voiceSettle(job, answer.body);
        else if (answer.status >= 500 || answer.status === 429) voiceSettle(job, {}); // asks again, bounded
        else voiceDone(job, null, voiceRefusal(answer));
      },
      function () {
        voiceSettle(job, {}); // a blip of the network: ask again until the bound
      }
    );
  }

  // The desk's own sentence says what was wrong with the recording (too long, not audio, ...).
  function voiceRefusal(answer) {
    var body = answer.body || {};
    if (answer.status === 401) {
      resession();
      return sentence("unauthorized");
    }
    if (body.code === "rate_limited" || answer.status === 429) {
      return sentence("rate_limited", { retry_after: Number(body.retry_after) || retryAfter(answer) / 1000 });
    }
    if (typeof body.message === "string" && body.message.trim()) return body.message.trim();
    return body.code ? sentence(body.code, body) : TEXT.voice.failed;
  }

  function voiceFailure(error) {
    if (typeof error === "string" && error.trim()) return error.trim();
    if (error && typeof error.message === "string" && error.message.trim()) return error.message.trim();
    return TEXT.voice.failed;
  }

  function voiceDone(job, transcript, error) {
    if (transcribing !== job) return;
    transcribing = null;
    voiceShow();
    if (error) {
      voiceError(error);
      return;
    }
    var words = (transcript || "").trim();
    if (!words) {
      voiceError(TEXT.voice.empty);
      return;
    }
    // Added to what is already typed, never in place of it.
    var typed = ui.textarea.value.replace(/\s+$/, "");
    ui.textarea.value = typed ? typed + " " + words : words;
    updateCounter();
    if (!ui.panel.hidden) {
      ui.textarea.focus();
      var end = ui.textarea.value.length;
      try { ui.textarea.setSelectionRange(end, end); } catch (e) { /* not a text control */ }
    }
    announce(TEXT.voice.ready);
  }

  function voiceError(text) {
    if (!ui) return;
    ui.composerError.textContent = text || "";
  }

  function announce(text) {
    if (!voice) return;
    // Emptied first, so the same sentence twice is said twice.
    voice.live.textContent = "";
    setTimeout(function () { voice.live.textContent = text; }, 50);
  }

  // Draws the microphone and the recording line from the state.
  function voiceShow() {
    if (!voice) return;
    var on = !!recording;
    var label = on ? TEXT.voice.stop : TEXT.voice.record;
    voice.mic.hidden = !voiceCapable() || !voiceAllowed();
    voice.mic.setAttribute("aria-pressed", on ? "true" : "false");
    voice.mic.setAttribute("aria-label", label);
    voice.mic.title = label;
    if (transcribing) voice.mic.setAttribute("aria-disabled", "true");
    else voice.mic.removeAttribute("aria-disabled");
    voice.bar.hidden = !on && !transcribing;
    voice.bar.setAttribute("data-state", on ? "recording" : transcribing ? "transcribing" : "");
    voice.dot.hidden = !on;
    voice.dots.hidden = !transcribing;
    voice.cancel.hidden = !on;
    var text = on ? TEXT.voice.recording(recording.started ? Math.floor((Date.now() - recording.started) / 1000) : 0)
      : transcribing ? TEXT.voice.transcribing : "";
    if (voice.line.textContent !== text) voice.line.textContent = text;
  }

  // ---------------------------------------------------------------- answers read aloud

  function readAloudOn() {
    return readStore("localStorage", SPEAK_KEY) === "1";
  }

  function readAloudSet(on, options) {
    if (!options || !options.stored) writeStore("localStorage", SPEAK_KEY, on ? "1" : null);
    if (voice) voice.speaker.setAttribute("aria-pressed", on ? "true" : "false");
    if (!on) speechStop();
  }

  // The final text of a completed answer (never the streamed pieces), without the source markers.
  function readAloud(text) {
    if (!voice || !canSpeak() || !readAloudOn()) return;
    var words = String(text || "").replace(/\s*\[\d+\]/g, "").replace(/[\u201c\u201d]/g, "").trim();
    if (!words) return;
    speechStop();
    var utterance = new SpeechSynthesisUtterance(words);
    utterance.lang = document.documentElement.lang || navigator.language || "en";
    utterance.onend = utterance.onerror = function () { speaking = false; };
    speaking = true;
    try {
      window.speechSynthesis.speak(utterance);
    } catch (e) {
      speaking = false;
    }
  }

  // Only our own speech is cancelled: the host page may be speaking too.
  function speechStop() {
    if (!speaking || !canSpeak()) return;
    speaking = false;
    try {
      window.speechSynthesis.cancel();
    } catch (e) {
      /* nothing to cancel */
    }
  }

  // ---------------------------------------------------------------- websocket

  var socket = null;
  var welcomed = false;
  var attempts = 0;
  var reconnectTimer = null;
  var pingTimer = null;
  var lastHeard = 0;
  var lastResync = 0;
  var resyncTimer = null;
  var stopped = false;

  function isOpen() {
    return socket && socket.readyState === WebSocket.OPEN && welcomed;
  }

  function backoff(n) {
    return backoffDelay(n, { baseMs: RECONNECT_BASE_MS, capMs: RECONNECT_CAP_MS }); // jittered: spreads reconnect storms
  }

  function socketUrl() {
    var url = new URL(session.websocket_path || "ws/widget/?key=" + encodeURIComponent(KEY), BASE);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    return url.toString();
  }

  function connect() {
    if (stopped || !session || socket || reconnectTimer) return;
    setStatus(attempts ? TEXT.status.reconnecting : seqs.last ? "" : TEXT.status.connecting);
    welcomed = false;
    outbox.reconnected();
    var ws;
    try {
      ws = new WebSocket(socketUrl());
    } catch (e) {
      scheduleReconnect();
      return;
    }
    socket = ws;
    ws.onopen = function () {
      if (socket !== ws) return;
      lastHeard = Date.now();
      rawSend({ type: "hello", token: session.token, last_seq: seqs.last, client_msg_id: uuid() });
      startPing();
    };
    ws.onmessage = function (event) {
      if (socket !== ws) return;
      lastHeard = Date.now();
      if (typeof event.data !== "string") return;
      var frame;
      try {
        frame = JSON.parse(event.data);
      } catch (e) {
        return;
      }
      dispatch(frame);
    };
    ws.onclose = function (event) {
      if (socket !== ws) return;
      socket = null;
      welcomed = false;
      stopPing();
      onClosed(event.code);
    };
    ws.onerror = function () {
      /* onclose follows */
    };
  }

  function onClosed(code) {
    if (code === 4403) {
      stop(TEXT.closes[4403]);
      return;
    }
    if (code === 4401) {
      setStatus(TEXT.closes[4401]);
      resession();
      return;
    }
    if (code === 1009) {
      // The frame was too big for the desk: sending it again would only close the socket again.
      var last = outbox.newest();
      if (last) {
        var view = customers[last.client_msg_id];
        if (view) setCustomerState(view, "failed", "Not sent. " + TEXT.closes[1009]);
        dropFromOutbox(last.client_msg_id);
      }
      showSystem(TEXT.closes[1009], "error");
    }
    if (code === 4000) {
      scheduleReconnect(0); // our own resync
      return;
    }
    if (code === 4429) {
      // Too many sockets from this network, or frames past the budget: wait well past the window.
      setStatus(TEXT.closes[4429]);
      scheduleReconnect(Math.max(30000, backoff(attempts + 1)));
      return;
    }
    scheduleReconnect();
    if (TEXT.closes[code] && code !== 1009) setStatus(TEXT.closes[code]);
  }

  function scheduleReconnect(delay) {
    if (stopped || reconnectTimer) return;
    attempts += 1;
    if (navigator.onLine === false) {
      setStatus(TEXT.status.offline);
      return; // the `online` event reconnects
    }
    if (!ui || !ui.status.textContent || ui.status.textContent === TEXT.status.connecting) {
      setStatus(TEXT.status.reconnecting);
    }
    reconnectTimer = setTimeout(function () {
      reconnectTimer = null;
      connect();
    }, delay === undefined ? backoff(attempts) : delay);
  }

  function reconnectSoon() {
    if (socket) {
      try {
        socket.close(4000, "resync");
      } catch (e) {
        socket = null;
        scheduleReconnect(0);
      }
    } else {
      scheduleReconnect();
    }
  }

  // A gap in the streamed text: a reconnect brings a snapshot. Bounded so a confused stream cannot
  // turn into a reconnect loop; the stored text replaces everything at the end anyway.
  function resync() {
    if (resyncTimer) return;
    var wait = lastResync + RESYNC_MIN_MS - Date.now();
    resyncTimer = setTimeout(function () {
      resyncTimer = null;
      if (!needsResync()) return; // a snapshot or the stored text arrived meanwhile
      lastResync = Date.now();
      reconnectSoon();
    }, Math.max(0, wait));
  }

  // A streaming reply gone silent: reconnect (at most once per STALL_MS), so the stored state comes back.
  function watchStalls() {
    if (!isOpen()) return;
    var now = Date.now();
    var stalled = Object.keys(replies).filter(function (id) {
      var view = replies[id];
      return !view.final && !superseded[id] && now - view.heard > STALL_MS;
    });
    if (!stalled.length) return;
    stalled.forEach(function (id) { replies[id].heard = now; });
    reconnectSoon();
  }
  setInterval(watchStalls, 2000);

  function needsResync() {
    return Object.keys(replies).some(function (id) {
      return replies[id].resyncing && !replies[id].final;
    });
  }

  function stop(text) {
    stopped = true;
    if (reconnectTimer) clearTimeout(reconnectTimer);
    reconnectTimer = null;
    stopPing();
    if (socket) {
      var ws = socket;
      socket = null;
      try { ws.close(); } catch (e) { /* already closing */ }
    }
    setStatus(text);
  }

  function rawSend(frame) {
    try {
      socket.send(JSON.stringify(frame));
    } catch (e) {
      /* the close handler reconnects and the outbox sends it again */
    }
  }

  function startPing() {
    stopPing();
    pingTimer = setInterval(function () {
      if (!socket || socket.readyState !== WebSocket.OPEN) return;
      if (Date.now() - lastHeard > SILENCE_MS) {
        reconnectSoon();
        return;
      }
      rawSend({ type: "ping", client_msg_id: uuid() });
    }, PING_MS);
  }

  function stopPing() {
    if (pingTimer) clearInterval(pingTimer);
    pingTimer = null;
  }

  window.addEventListener("online", function () {
    if (stopped || socket || !session) return;
    if (reconnectTimer) clearTimeout(reconnectTimer);
    reconnectTimer = null;
    if (ui && (ui.status.textContent === TEXT.status.offline)) setStatus(TEXT.status.reconnecting);
    connect();
  });
  window.addEventListener("offline", function () {
    setStatus(TEXT.status.offline);
  });

  // ---------------------------------------------------------------- start

  if (document.querySelector(HOST_TAG + "[data-widget-key='" + KEY.replace(/[\x27\\]/g, "") + "']")) return;
  if (document.body) boot();
  else document.addEventListener("DOMContentLoaded", boot);
}

start();
