// @ts-check
/*
 * The agent console (templates/handoff/console.html): the live inbox, one conversation with its case file,
 * replies, private notes, canned responses, tool approvals, presence. Protocol: docs/architecture/handoff.md.
 *
 * The database is the truth and the console socket is a best-effort push (STYLE rule 8): every push makes
 * the console read again what it describes (debounced), and after a reconnect it reads the queue and the
 * open conversation from its last seq. Everything a server or a customer wrote is shown with textContent.
 *
 * An ES module (templates/handoff/console.html loads it with type="module", deferred like any module): the
 * DOM builder, fetch with the error contract, the staff error sentences and the reconnecting socket come
 * from static/js/lib/ (docs/architecture/browser.md); what is the console's own stays below.
 */
import { api as callApi } from "./lib/api.js";
import { el } from "./lib/el.js";
import { STAFF } from "./lib/errors.js";
import { timingDisclosure } from "./console-trace.js";
import { ReconnectingSocket } from "./lib/socket.js";

(function () {
  var root = /** @type {HTMLElement} */ (document.querySelector("[data-console]"));
  if (!root || !window.fetch) return;

  var slug = /** @type {string} */ (root.getAttribute("data-slug"));
  var me = Number(root.getAttribute("data-user-id"));
  var isAdmin = root.getAttribute("data-admin") === "true";
  var canGolden = root.getAttribute("data-golden") === "true"; // editors and admins
  var csrf = root.getAttribute("data-csrf") || "";
  var API = "/api/v1/tenants/" + encodeURIComponent(slug) + "/";
  var baseTitle = document.title;

  var PING_MS = 20000;
  var BACKOFF_BASE_MS = 1000;
  var MAX_BACKOFF_MS = 30000;
  var CONNECT_TIMEOUT_MS = 10000;
  var ACK_TIMEOUT_MS = 8000;
  var POLL_MS = 10000; // queue reads while the socket is down
  var REFRESH_DEBOUNCE_MS = 250;
  var CASE_FILE_POLL_MS = 15000;
  var MAX_ANNOUNCEMENTS = 20;
  var NO_TIMEOUT_MS = 2147483647; // setTimeout's longest delay: in effect, requests wait as long as the browser does

  var REASONS = {
    customer_request: "Customer asked for a person",
    assistant_abstained: "Assistant could not answer",
    assistant_failed: "Assistant failed",
    llm_unavailable: "Language model unavailable",
    tool_failed: "A tool failed",
    tool_approval: "A change needs an agent's approval",
    sensitive: "Sensitive topic",
    angry: "Customer upset",
    tenant_rule: "Company rule",
    agent_takeover: "An agent took over",
    email_reply: "Customer replied by email",
  };
  var PRIORITIES = { 1: "High priority", 2: "Urgent", 3: "Urgent" };
  var PRESENCE = { online: "Online", away: "Away", offline: "Offline" };
  var RUN_STATUS = {
    refused: "Refused",
    awaiting_approval: "Waiting for approval",
    rejected: "Rejected",
    queued: "Queued",
    running: "Running",
    done: "Done",
    failed: "Failed",
  };
  var STAGES = { looking_up: "Looking things up…", thinking: "Writing…", tool: "Using a tool…" };
  var OWNERSHIP_EVENTS = {
    "handoff.requested": true,
    "handoff.claimed": true,
    "handoff.transferred": true,
    "handoff.returned": true,
    "handoff.cancelled": true,
    "conversation.resolved": true,
    "conversation.reopened": true,
    "handoff.status": true,
    "handoff.ticket": true,
    "tool.run": true,
    "session.ended": true,
  };

  function $(selector, scope) {
    return (scope || root).querySelector(selector);
  }

  var ui = {
    conn: $("[data-conn]"),
    alert: $("[data-alert]"),
    alertDismiss: $("[data-alert-dismiss]"),
    announcer: $("[data-announcer]"),
    presence: $("[data-presence]"),
    capacity: $("[data-capacity]"),
    inbox: $("[data-inbox]"),
    agents: $("[data-agents]"),
    convTitle: $("[data-conv-title]"),
    convEmpty: $("[data-conv-empty]"),
    convBody: $("[data-conv-body]"),
    convStatus: $("[data-conv-status]"),
    actions: $("[data-actions]"),
    transfer: $("[data-transfer]"),
    transferSelect: $("[data-transfer-select]"),
    approvalsBox: $("[data-approvals-box]"),
    approvals: $("[data-approvals]"),
    timeline: $("[data-timeline]"),
    replyForm: $("[data-reply-form]"),
    reply: $("[data-reply]"),
    replyHint: $("[data-reply-hint]"),
    replySend: $("[data-reply-send]"),
    suggest: $("[data-suggest]"),
    cannedSelect: $("[data-canned-select]"),
    cannedInsert: $("[data-canned-insert]"),
    noteForm: $("[data-note-form]"),
    note: $("[data-note]"),
    caseBody: $("[data-case-body]"),
    contactBox: $("[data-contact-box]"),
    contactLoad: $("[data-contact-load]"),
    contactTimeline: $("[data-contact-timeline]"),
  };
  var REPLY_HINT = ui.replyHint.textContent;

  // ------------------------------------------------------------------------------------------- helpers

  function uuid() {
    if (window.crypto && typeof window.crypto.randomUUID === "function") return window.crypto.randomUUID();
    var bytes = new Uint8Array(16);
    window.crypto.getRandomValues(bytes);
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    var hex = Array.prototype.map.call(bytes, function (b) { return (b + 0x100).toString(16).slice(1); }).join("");
    return hex.slice(0, 8) + "-" + hex.slice(8, 12) + "-" + hex.slice(12, 16) + "-" + hex.slice(16, 20) + "-" + hex.slice(20);
  }

  function clock(seconds) {
    seconds = Math.max(0, Math.floor(seconds));
    var h = Math.floor(seconds / 3600);
    var m = Math.floor((seconds % 3600) / 60);
    var s = seconds % 60;
    var mm = h ? (m < 10 ? "0" : "") + m : String(m);
    return (h ? h + ":" : "") + mm + ":" + (s < 10 ? "0" : "") + s;
  }

  function timeOf(iso) {
    var date = new Date(iso);
    if (isNaN(date.getTime())) return "";
    return date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  }

  function reasonLabel(code) {
    return REASONS[code] || (code ? String(code).replace(/_/g, " ") : "");
  }

  function announce(text) {
    var line = el("p", { text: text });
    ui.announcer.appendChild(line);
    while (ui.announcer.childNodes.length > MAX_ANNOUNCEMENTS) ui.announcer.removeChild(ui.announcer.firstChild);
  }

  function showError(error) {
    var text = (error && error.message) || STAFF[(error && error.code) || "network"] || STAFF.network;
    ui.alert.textContent = text;
    ui.alert.setAttribute("data-code", (error && error.code) || "network");
    ui.alertDismiss.hidden = false;
  }

  function clearError() {
    ui.alert.textContent = "";
    ui.alert.removeAttribute("data-code");
    ui.alertDismiss.hidden = true;
  }

  ui.alertDismiss.addEventListener("click", clearError);

  // Every request goes through here (lib/api.js: JSON in and out, errors as {code, status, message} with the
  // staff sentences): a path relative to the tenant's API, the CSRF header, and a 401 stops the console.
  // No time limit of the console's own, as before it moved onto lib/api.js: a reply's POST is not given
  // up on (and its text offered again) while the desk may still store it.
  function api(method, path, body) {
    var url = path.charAt(0) === "/" ? path : API + path;
    var options = { body: body, csrf: method !== "GET" ? csrf || cookie("csrftoken") : "", sentences: STAFF, timeoutMs: NO_TIMEOUT_MS };
    return callApi(method, url, options).catch(function (error) {
      if (error.status === 401) stop(STAFF.unauthorized);
      throw error;
    });
  }

  function cookie(name) {
    var match = document.cookie.match(new RegExp("(?:^|; )" + name + "=([^;]*)"));
    return match ? decodeURIComponent(match[1]) : "";
  }

  // ------------------------------------------------------------------------------------------- state

  /** @type {{waiting: any[], mine: any[], others: any[], agents: any[], me: any, teams: any[]}} */
  var queue = { waiting: [], mine: [], others: [], agents: [], me: null, teams: [] };
  var tickets = [];
  var canned = [];
  var knownWaiting = null; // ids seen waiting at the last read (null: not read yet, so nothing is "new")
  var current = null; // the open conversation
  var generation = 0; // bumps when another conversation opens: answers for the old one are dropped
  var pendingReplies = {}; // client_msg_id -> {conversationId, text, node, timer}
  // message id -> the words this agent typed. Staff timelines may come redacted for agents without
  // pii_viewer (a name in a reply reads "<PERSON>"): the author is shown what they actually sent.
  var ownTexts = {};
  var stopped = false;

  // ------------------------------------------------------------------------------------------- the inbox

  var queueReads = 0;

  function refreshQueue() {
    var read = ++queueReads;
    return api("GET", "handoffs/").then(function (data) {
      if (read !== queueReads) return; // a newer read is on its way: this answer may be older than it
      queue = {
        waiting: (data.waiting || []).slice().sort(function (a, b) {
          return (b.priority - a.priority) || (b.waiting_seconds - a.waiting_seconds);
        }),
        mine: data.mine || [],
        others: data.others || [],
        agents: data.agents || [],
        me: data.me || null,
        teams: data.teams || [],
      };
      noticeNewWaiting();
      renderQueue();
      renderPresence();
      if (current) renderConversationState();
    }, function (error) {
      if (error.code !== "network") showError(error);
    });
  }

  function refreshTickets() {
    return api("GET", "tickets/?status=open").then(function (data) {
      tickets = (data && data.results) || [];
      renderTickets();
    }, function (error) {
      if (error.code !== "network") showError(error);
    });
  }

  function noticeNewWaiting() {
    var ids = {};
    queue.waiting.forEach(function (row) {
      ids[row.id] = true;
      if (knownWaiting && !knownWaiting[row.id]) {
        announce("New conversation waiting: " + (row.reason_label || reasonLabel(row.reason)));
      }
    });
    knownWaiting = ids;
    var count = queue.waiting.length;
    document.title = (count ? "(" + count + " waiting) " : "") + baseTitle;
  }

  var refreshTimer = null;
  var refreshTicketsToo = false;

  function scheduleRefresh(withTickets) {
    refreshTicketsToo = refreshTicketsToo || !!withTickets;
    if (refreshTimer) return;
    refreshTimer = setTimeout(function () {
      refreshTimer = null;
      var both = refreshTicketsToo;
      refreshTicketsToo = false;
      refreshQueue();
      if (both) refreshTickets();
    }, REFRESH_DEBOUNCE_MS);
  }

  function badge(text, kind) {
    return el("span", { className: "badge", "data-kind": kind, text: text });
  }

  function sinceAttr(row) {
    // The server's count, not the two clocks' difference: an agent's clock may be minutes off.
    return String(Date.now() - (Number(row.waiting_seconds) || 0) * 1000);
  }

  function inboxItem(row, section) {
    var reason = row.reason_label || reasonLabel(row.reason);
    var channel = channelBadges[row.conversation_id];
    var lines = [el("span", { className: "item-who", text: channelWho(row.customer, channel) })];
    var meta = el("span", { className: "item-meta" });
    meta.appendChild(el("span", { className: "item-reason", text: reason }));
    if (row.detail) meta.appendChild(el("span", { className: "item-detail", text: " (" + row.detail + ")" }));
    lines.push(meta);
    var badges = el("span", { className: "item-badges" });
    if (section === "waiting") {
      var clockNode = el("span", { className: "item-clock", "data-since": sinceAttr(row) });
      clockNode.textContent = "waiting " + clock(row.waiting_seconds || 0);
      badges.appendChild(clockNode);
    }
    if (PRIORITIES[row.priority]) badges.appendChild(badge(PRIORITIES[row.priority], "priority"));
    if (row.escalation_level > 0) {
      badges.appendChild(badge("Escalated" + (row.escalation_level > 1 ? " ×" + row.escalation_level : ""), "escalated"));
    }
    if (row.team) badges.appendChild(badge("Team: " + row.team, "team"));
    if (row.offline) badges.appendChild(badge(row.ticket ? "Offline · ticket #" + row.ticket : "Offline", "offline"));
    if (section === "others" && row.agent) badges.appendChild(badge("With " + row.agent, "agent"));
    if (row.verified) badges.appendChild(badge("Verified", "verified"));
    if (channel) badges.appendChild(badge(channel.label, "channel"));
    lines.push(badges);
    var button = el("button", {
      type: "button",
      className: "inbox-item",
      "data-conversation-id": row.conversation_id,
      "data-handoff-id": row.id,
      "data-priority": String(row.priority || 0),
    }, lines);
    if (current && current.id === row.conversation_id) button.setAttribute("aria-current", "true");
    button.addEventListener("click", function () {
      openConversation(row.conversation_id, { focus: true });
    });
    return el("li", null, [button]);
  }

  function fillList(section, rows, render) {
    var list = $('[data-list="' + section + '"]');
    var focusedId = document.activeElement && list.contains(document.activeElement)
      ? document.activeElement.getAttribute("data-conversation-id")
      : null;
    list.textContent = "";
    rows.forEach(function (row) { list.appendChild(render(row)); });
    $('[data-empty="' + section + '"]').hidden = rows.length > 0;
    $('[data-count="' + section + '"]').textContent = String(rows.length);
    if (focusedId) {
      // A re-render must not throw keyboard focus away.
      var again = list.querySelector('[data-conversation-id="' + CSS.escape(focusedId) + '"]');
      if (again) again.focus();
    }
  }

  function renderQueue() {
    fillList("waiting", queue.waiting, function (row) { return inboxItem(row, "waiting"); });
    fillList("mine", queue.mine, function (row) { return inboxItem(row, "mine"); });
    fillList("others", queue.others, function (row) { return inboxItem(row, "others"); });
    channelBadgesLoad(queue.waiting.concat(queue.mine, queue.others).map(function (row) { return row.conversation_id; }));
  }

  // ------------------------------------------------------------------ channels (SMS / messaging)

  // conversation id -> {label, address} for conversations on the messaging channel, null for the others.
  var channelBadges = {};

  function channelWho(customer, channel) {
    if (!channel) return customer || "Anonymous visitor";
    return !customer || customer === "Anonymous visitor" ? channel.address : customer + " · " + channel.address;
  }

  // Asks once per conversation which channel it is on; redraws what shows it when something new is known.
  function channelBadgesLoad(ids) {
    var unknown = ids.filter(function (id) { return id && !(id in channelBadges); });
    if (!unknown.length) return;
    unknown.forEach(function (id) { channelBadges[id] = null; });
    api("GET", "messaging/conversations/?ids=" + encodeURIComponent(unknown.slice(0, 200).join(","))).then(function (data) {
      var found = (data && data.conversations) || [];
      found.forEach(function (row) { channelBadges[row.conversation_id] = { label: row.label, address: row.address }; });
      if (found.length) {
        renderQueue();
        renderConversationState();
        if (current && channelBadges[current.id]) deliveriesLoad();
      }
    }, function () {
      unknown.forEach(function (id) { delete channelBadges[id]; });
    });
  }

  // How the open conversation's messages went out on its channel (SMS): drawn on their bubbles.
  function deliveriesLoad() {
    if (!current || !channelBadges[current.id]) return;
    var id = current.id;
    api("GET", "conversations/" + encodeURIComponent(id) + "/deliveries/").then(function (data) {
      if (!current || current.id !== id) return;
      ((data && data.deliveries) || []).forEach(deliveryShow);
    }, function () {});
  }

  function deliveryShow(delivery) {
    if (!current || !delivery || !delivery.message_id) return;
    current.deliveries = current.deliveries || {};
    current.deliveries[delivery.message_id] = delivery;
    var view = current.bubbles[delivery.message_id];
    if (view) view.delivery(delivery);
  }

  // A message's delivery on the customer's channel, in words (sent, delivered, failed with what to do).
  function deliveryText(delivery) {
    if (!delivery) return "";
    var channel = delivery.channel === "messaging" ? "SMS" : delivery.channel;
    if (delivery.status === "delivered") return channel + ": delivered";
    if (delivery.status === "sent") return channel + ": sent";
    if (delivery.status === "failed") {
      return channel + ": not delivered" + (delivery.last_error ? " (" + delivery.last_error + ")" : "") +
        ". Retries are over: reply again, or reach the customer another way.";
    }
    if (delivery.attempts > 0) return channel + ": retrying" + (delivery.last_error ? " (" + delivery.last_error + ")" : "") + "…";
    return channel + ": sending…";
  }

  function renderTickets() {
    fillList("tickets", tickets, function (ticket) {
      var button = el("button", {
        type: "button",
        className: "inbox-item",
        "data-conversation-id": ticket.conversation_id,
        "data-ticket": String(ticket.number),
      }, [
        el("span", { className: "item-who", text: "#" + ticket.number + " · " + (ticket.customer || "Anonymous visitor") }),
        el("span", { className: "item-meta", text: "Answer by email to " + (ticket.email || "") }),
        el("span", { className: "item-badges" }, [badge("Opened " + timeOf(ticket.created_at), "ticket")]),
      ]);
      if (current && current.id === ticket.conversation_id) button.setAttribute("aria-current", "true");
      button.addEventListener("click", function () { openConversation(ticket.conversation_id, { focus: true }); });
      return el("li", null, [button]);
    });
  }

  // The waiting clocks tick here, not in the server's pushes.
  setInterval(function () {
    var now = Date.now();
    root.querySelectorAll("[data-since]").forEach(function (node) {
      node.textContent = "waiting " + clock((now - Number(node.getAttribute("data-since"))) / 1000);
    });
  }, 1000);

  // j / k and the arrow keys move through the inbox; Enter (a button's own) opens.
  function inboxButtons() {
    return Array.prototype.slice.call(ui.inbox.querySelectorAll("button.inbox-item"));
  }

  function moveInbox(step) {
    var buttons = inboxButtons();
    if (!buttons.length) return;
    var index = buttons.indexOf(document.activeElement);
    if (index < 0) index = buttons.findIndex(function (b) { return b.getAttribute("aria-current") === "true"; });
    var next = index < 0 ? (step > 0 ? 0 : buttons.length - 1) : Math.max(0, Math.min(buttons.length - 1, index + step));
    buttons[next].focus();
  }

  function typing(target) {
    if (!target || !target.tagName) return false;
    var tag = target.tagName.toLowerCase();
    return tag === "input" || tag === "textarea" || tag === "select" || target.isContentEditable;
  }

  ui.inbox.addEventListener("keydown", function (event) {
    if (event.altKey || event.ctrlKey || event.metaKey) return;
    if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      event.preventDefault();
      moveInbox(event.key === "ArrowDown" ? 1 : -1);
    }
  });

  document.addEventListener("keydown", function (event) {
    if (event.altKey || event.ctrlKey || event.metaKey || typing(event.target)) return;
    if (event.key === "j" || event.key === "k") {
      event.preventDefault();
      moveInbox(event.key === "j" ? 1 : -1);
    }
  });

  // ------------------------------------------------------------------------------------------- presence

  function renderPresence() {
    var mine = queue.me;
    if (mine) {
      if (document.activeElement !== ui.presence) ui.presence.value = mine.status || "online";
      ui.capacity.textContent = "Holding " + mine.holding + " of " + mine.capacity + " conversations";
      ui.capacity.setAttribute("data-full", mine.holding >= mine.capacity ? "true" : "false");
    }
    ui.agents.textContent = "";
    queue.agents.forEach(function (agent) {
      var status = PRESENCE[agent.status] || agent.status;
      ui.agents.appendChild(el("li", { "data-status": agent.status, "data-user-id": String(agent.user_id) }, [
        el("span", { className: "agent-dot", "aria-hidden": "true" }),
        el("span", { className: "agent-name", text: agent.name + (agent.user_id === me ? " (you)" : "") }),
        el("span", { className: "agent-state", text: " · " + status + " · " + agent.holding + " of " + agent.capacity }),
      ]));
    });
    renderTransferOptions();
  }

  ui.presence.addEventListener("change", function () {
    var status = ui.presence.value;
    if (!sendFrame({ type: "presence", status: status })) {
      api("POST", "presence/", { status: status }).then(function () { scheduleRefresh(); }, showError);
    }
  });

  // ------------------------------------------------------------------------------------------- a conversation

  function emptyConversation(id) {
    return {
      id: id,
      conversation: null,
      handoff: null,
      caseFile: null,
      lastSeq: 0,
      seqs: {}, // seq -> true: every stored event is drawn once
      notes: {}, // note id -> true
      bubbles: {}, // message id -> bubble
      runLines: {}, // run id -> timeline line
      runs: {}, // run id -> latest state
      streams: {}, // message id -> text streamed so far
      loaded: false,
      reads: 0, // timeline reads started
      applied: 0, // the newest read whose state is shown
      caseKey: null, // what the case file pane shows, to redraw it only when it changed
    };
  }

  function openConversation(id, options) {
    options = options || {};
    if (!id) return Promise.resolve();
    if (current && current.id === id) {
      if (options.focus) ui.convTitle.focus();
      return Promise.resolve();
    }
    generation += 1;
    current = emptyConversation(id);
    closeSuggestions();
    ui.timeline.textContent = "";
    ui.approvals.textContent = "";
    ui.convEmpty.hidden = true;
    ui.convBody.hidden = false;
    ui.convTitle.textContent = "Conversation";
    ui.convStatus.textContent = "Loading…";
    ui.caseBody.textContent = "";
    ui.caseBody.appendChild(el("p", { className: "console-empty", text: "Loading the case file…" }));
    setUrl(id);
    markCurrent();
    sendFrame({ type: "watch", conversation_id: id });
    return loadTimeline(0).then(function () {
      if (options.focus) ui.convTitle.focus();
    });
  }

  function setUrl(id) {
    if (!window.history || !history.replaceState) return;
    var url = new URL(location.href);
    url.searchParams.delete("handoff");
    url.searchParams.set("conversation", id);
    history.replaceState(null, "", url.pathname + url.search + url.hash);
  }

  function markCurrent() {
    inboxButtons().forEach(function (button) {
      if (current && button.getAttribute("data-conversation-id") === current.id) button.setAttribute("aria-current", "true");
      else button.removeAttribute("aria-current");
    });
  }

  // Reads the conversation after `after` (0: all of it) and merges it in; returns when drawn.
  function loadTimeline(after) {
    var mine = generation;
    var id = current.id;
    var read = ++current.reads;
    return api("GET", "conversations/" + encodeURIComponent(id) + "/timeline/?after=" + after).then(function (data) {
      if (mine !== generation || !current || current.id !== id) return;
      // Events are merged whatever the order answers come in; the state only from the newest read.
      (data.items || []).forEach(drawItem);
      if (read < current.applied) return;
      current.applied = read;
      current.conversation = data.conversation;
      current.handoff = data.handoff;
      current.caseFile = data.case_file;
      (data.tool_runs || []).forEach(function (run) {
        current.runs[run.run_id] = Object.assign(current.runs[run.run_id] || {}, run);
        drawRunLine(run.run_id);
      });
      current.showingOriginal = !!data.showing_original_text;
      channelBadgesLoad([id]);
      deliveriesLoad();
      if (typeof data.last_seq === "number" && data.last_seq > current.lastSeq) current.lastSeq = data.last_seq;
      current.loaded = true;
      renderConversationState();
      renderApprovals();
      renderCaseFile();
    }, function (error) {
      if (mine !== generation) return;
      showError(error);
      if (error.code === "not_found" && !current.loaded) {
        ui.convStatus.textContent = "This conversation doesn't exist, or you can't see it.";
      }
    });
  }

  var metaTimer = null;

  // An ownership change, a tool run, a case file: read the conversation's state again (once per burst).
  function scheduleMeta() {
    if (metaTimer || !current) return;
    metaTimer = setTimeout(function () {
      metaTimer = null;
      if (current && current.loaded) loadTimeline(current.lastSeq);
    }, REFRESH_DEBOUNCE_MS);
  }

  function ownerText(conv) {
    if (!conv) return "";
    if (conv.status === "assistant") return "With the assistant.";
    if (conv.status === "waiting") return "Waiting for a person.";
    if (conv.status === "resolved") return "Resolved.";
    if (conv.status === "human") {
      return conv.agent_id === me ? "With you." : "With " + (conv.agent || "another agent") + ".";
    }
    return "";
  }

  function customerName(conv) {
    var contact = conv && conv.contact;
    if (!contact) return "Anonymous visitor";
    return contact.name || contact.external_id || "Verified customer";
  }

  function renderConversationState() {
    if (!current || !current.conversation) return;
    var conv = current.conversation;
    var handoff = current.handoff;
    var channel = channelBadges[current.id];
    ui.convTitle.textContent = "Conversation with " + channelWho(conv.contact ? customerName(conv) : "", channel) +
      (channel ? " (" + channel.label + ")" : "");
    var parts = [ownerText(conv)];
    if (conv.status === "waiting" && handoff) parts.push((handoff.reason_label || reasonLabel(handoff.reason)) + ".");
    if (conv.contact_email) parts.push("Email: " + conv.contact_email + ".");
    if (!current.showingOriginal) parts.push("Personal details in the customer's words are hidden.");
    ui.convStatus.textContent = parts.join(" ");
    ui.convStatus.setAttribute("data-owner", conv.status);
    renderContactBox(conv);

    var mineNow = conv.status === "human" && conv.agent_id === me;
    var canManage = mineNow || (conv.status === "human" && isAdmin) || conv.status === "waiting";
    show("claim", conv.status === "waiting" && !!handoff && handoff.status === "waiting");
    show("take-over", conv.status === "assistant");
    show("hand-back", canManage);
    show("resolve", canManage || conv.status === "assistant");
    ui.transfer.hidden = !canManage;
    renderTransferOptions();

    ui.reply.disabled = !mineNow;
    ui.replySend.disabled = !mineNow;
    ui.cannedSelect.disabled = !mineNow;
    ui.cannedInsert.disabled = !mineNow;
    ui.replyHint.textContent = mineNow
      ? REPLY_HINT
      : conv.status === "waiting"
        ? "Claim this conversation to reply."
        : conv.status === "assistant"
          ? "The assistant has this conversation: take it over to reply."
          : conv.status === "resolved"
            ? "This conversation is resolved."
            : (conv.agent || "Another agent") + " has this conversation.";
    markCurrent();
  }

  // ---- one verified customer across channels (docs/architecture/channels.md, "Email")

  function renderContactBox(conv) {
    var contactId = conv.contact && conv.contact.id;
    ui.contactBox.hidden = !contactId;
    if (ui.contactTimeline.getAttribute("data-for") !== (contactId || "")) {
      ui.contactTimeline.textContent = "";
      ui.contactTimeline.setAttribute("data-for", contactId || "");
    }
  }

  ui.contactLoad.addEventListener("click", function () {
    var conv = current && current.conversation;
    var contactId = conv && conv.contact && conv.contact.id;
    if (!contactId) return;
    api("GET", "contacts/" + encodeURIComponent(contactId) + "/timeline/").then(function (data) {
      if (!current || !current.conversation || !current.conversation.contact ||
          current.conversation.contact.id !== contactId) return;
      var list = ui.contactTimeline;
      list.textContent = "";
      list.setAttribute("data-for", contactId);
      (data.items || []).forEach(function (item) {
        var here = item.conversation_id === current.id;
        list.appendChild(el("li", { className: "timeline-item", "data-channel": item.channel }, [
          el("span", { className: "channel-badge", text: item.channel_label || item.channel }),
          el("time", { datetime: item.at, text: " " + new Date(item.at).toLocaleString() + " " }),
          el("strong", { text: item.author + (here ? "" : " (another conversation)") + ": " }),
          el("span", { text: item.text }),
        ]));
      });
      if (!list.children.length) list.appendChild(el("li", { text: "No messages yet." }));
      list.focus();
    }, showError);
  });

  function show(action, visible) {
    var button = ui.actions.querySelector('[data-action="' + action + '"]');
    if (button) button.hidden = !visible;
  }

  function renderTransferOptions() {
    var select = ui.transferSelect;
    var chosen = select.value;
    select.textContent = "";
    select.appendChild(el("option", { value: "", text: "Choose…" }));
    var holder = current && current.conversation ? current.conversation.agent_id : null;
    var agents = queue.agents.filter(function (agent) { return agent.user_id !== holder; });
    if (agents.length) {
      var group = el("optgroup", { label: "Agents" });
      agents.forEach(function (agent) {
        group.appendChild(el("option", {
          value: "agent:" + agent.user_id,
          text: agent.name + (agent.user_id === me ? " (you)" : "") + " · " + (PRESENCE[agent.status] || agent.status)
            + " · " + agent.holding + " of " + agent.capacity,
        }));
      });
      select.appendChild(group);
    }
    if (queue.teams.length) {
      var teams = el("optgroup", { label: "Teams" });
      queue.teams.forEach(function (team) {
        teams.appendChild(el("option", { value: "team:" + team.id, text: "Team " + team.name }));
      });
      select.appendChild(teams);
    }
    select.value = chosen;
    if (select.value !== chosen) select.value = "";
  }

  // ---- the timeline

  function lineFor(item) {
    var data = item;
    switch (item.type) {
      case "handoff.requested":
        return "Handed to a person: " + reasonLabel(data.reason) + ".";
      case "handoff.claimed":
        return data.reason === "agent_takeover"
          ? (data.agent || "An agent") + " took over from the assistant."
          : (data.agent || "An agent") + " claimed the conversation.";
      case "handoff.transferred":
        return data.to === "team"
          ? "Transferred to team " + (data.team || "") + "."
          : "Transferred to " + (data.agent || "another agent") + ".";
      case "handoff.returned":
        return "Handed back to the assistant.";
      case "handoff.cancelled":
        return "The customer went back to the assistant.";
      case "conversation.resolved":
        return "Resolved. The customer was asked to rate the conversation.";
      case "conversation.reopened":
        return "The customer wrote again: a new episode with the assistant.";
      case "handoff.status":
        if (data.state === "queued") {
          var minutes = Math.max(1, Math.round(Number(data.expected_wait_seconds) / 60));
          var wait = data.expected_wait_seconds ? ", told to expect about " + minutes + " min" : "";
          return "The customer is number " + data.position + " in the queue" + wait + ".";
        }
        if (data.state === "offline") {
          var why = data.why === "closed" ? "outside opening hours" : "no agent was available";
          var tail = "";
          if (data.ticket) tail = " Ticket #" + data.ticket + " opened for " + (data.email || "their email") + ".";
          else if (data.ask_email) tail = " They were asked for an email.";
          return "Nobody could answer live (" + why + ")." + tail;
        }
        return null;
      case "handoff.email_saved":
        return "The customer left an email: " + (data.email || "") + ".";
      case "handoff.ticket":
        return "Ticket #" + data.ticket + ": replies also go to " + (data.email || "the customer") + " by email.";
      case "csat.recorded":
        return "The customer rated the conversation " + data.score + " of 5.";
      case "conversation.notice":
        return data.code === "model_changed"
          ? "Moved back to the company's current model (a canary was stopped); the customer was told."
          : "The customer was told: " + data.text;
      case "session.ended":
        return data.why === "signed_in"
          ? "The visitor signed in as a customer: this guest chat is closed to them, and nothing in it joins their account."
          : "The visitor ended the chat on the website: this guest chat is closed to them.";
      default:
        return null;
    }
  }

  function append(node) {
    var atEnd = ui.timeline.scrollHeight - ui.timeline.scrollTop - ui.timeline.clientHeight < 40;
    ui.timeline.appendChild(node);
    if (atEnd) ui.timeline.scrollTop = ui.timeline.scrollHeight;
  }

  function drawItem(item) {
    if (!current || !item || typeof item.type !== "string") return;
    if (item.type === "note") {
      drawNote(item);
      return;
    }
    if (typeof item.seq === "number") {
      if (current.seqs[item.seq]) return;
      current.seqs[item.seq] = true;
      if (item.seq > current.lastSeq) current.lastSeq = item.seq;
    }
    var message = item.message;
    switch (item.type) {
      case "message.created":
        if (message) bubble(message.id, "customer", message).update(message);
        return;
      case "agent.message":
        if (message) bubble(message.id, "agent", message).update(message);
        return;
      case "assistant.started":
        if (item.message_id && !current.bubbles[item.message_id]) bubble(item.message_id, "assistant", null);
        return;
      case "assistant.completed":
      case "assistant.interrupted":
      case "assistant.failed":
        if (message) {
          var view = bubble(message.id, "assistant", message);
          view.update(message, item);
        }
        return;
      case "assistant.superseded":
        var gone = current.bubbles[item.message_id];
        if (gone) {
          gone.node.remove();
          delete current.bubbles[item.message_id];
        }
        return;
      case "tool.run":
        drawRun(item);
        return;
      case "tool.result":
        return;
    }
    var text = lineFor(item);
    if (text) {
      append(el("li", { className: "tl-system", "data-type": item.type, "data-seq": String(item.seq) }, [
        el("span", { className: "tl-line", text: text }),
        el("time", { className: "tl-time", datetime: item.at, text: timeOf(item.at) }),
      ]));
    }
  }

  var ROLE_LABEL = { customer: "Customer", assistant: "Assistant", agent: "Agent" };

  function bubble(messageId, role, message) {
    var view = current.bubbles[messageId];
    if (view) return view;
    var who = el("span", { className: "tl-who" });
    var state = el("span", { className: "tl-state" });
    var text = el("p", { className: "tl-text" });
    var note = el("p", { className: "tl-notice", hidden: true });
    var at = el("time", { className: "tl-time" });
    var sent = el("p", { className: "tl-delivery", hidden: true });
    // How the answer's turn went, stage by stage (console-trace.js), once the reply is final.
    var conversationId = current.id;
    var timing = role === "assistant" ? timingDisclosure({
      load: function () {
        return api("GET", "conversations/" + encodeURIComponent(conversationId) + "/messages/" + encodeURIComponent(messageId) + "/trace/");
      },
    }) : null;
    if (timing) timing.hidden = true;
    var golden = role === "assistant" && canGolden ? goldenLinks(messageId) : null;
    var node = el("li", { className: "tl-msg", "data-role": role, "data-message-id": messageId }, [
      el("div", { className: "tl-head" }, [who, state, at]),
      text,
      note,
      sent,
      timing,
      golden,
    ]);
    view = {
      node: node,
      text: text,
      final: false,
      update: function (msg, event) {
        msg = msg || {};
        var name = ROLE_LABEL[role];
        if (role === "agent") name = msg.author_full || msg.author || "Agent";
        if (role === "customer" && msg.via === "email") name += " (by email)";
        if (role === "customer" && msg.via === "messaging") name += " (by SMS)";
        if (current.deliveries && current.deliveries[messageId]) view.delivery(current.deliveries[messageId]);
        who.textContent = name;
        if (msg.created_at) {
          at.setAttribute("datetime", msg.created_at);
          at.textContent = timeOf(msg.created_at);
        }
        if (role === "agent" && ownTexts[messageId]) text.textContent = ownTexts[messageId];
        else if (typeof msg.text === "string") text.textContent = msg.text;
        var status = msg.status || (role === "assistant" ? "streaming" : "complete");
        node.setAttribute("data-status", status);
        view.final = role !== "assistant" || status !== "streaming";
        if (timing) timing.hidden = !view.final;
        if (golden) golden.hidden = status !== "complete";
        state.textContent = role === "assistant" && status === "streaming" ? "Writing…" : "";
        if (role === "customer" && msg.redacted) node.setAttribute("data-redacted", "");
        note.hidden = true;
        if (status === "interrupted") {
          note.hidden = false;
          note.textContent = event && event.by === "handoff"
            ? "Cut off: a person took the conversation."
            : "Cut off before it finished.";
        } else if (status === "failed") {
          note.hidden = false;
          var code = msg.code || (event && event.code);
          note.textContent = "The assistant couldn't answer" + (code ? " (" + code + ")" : "") + ".";
        }
        if (role === "assistant" && msg.abstained) {
          note.hidden = false;
          note.textContent = "The assistant found nothing to answer from.";
        }
      },
      progress: function (line) {
        if (!view.final) state.textContent = line;
      },
      delivery: function (delivery) {
        sent.hidden = !delivery;
        sent.textContent = deliveryText(delivery);
        if (delivery) sent.setAttribute("data-status", delivery.status);
      },
    };
    current.bubbles[messageId] = view;
    if (!message) view.update({ status: "streaming" });
    append(node);
    return view;
  }

  // "Right answer" / "Wrong answer" on a finished reply: the golden question form, prefilled on the server
  // from the reply, its turn's question and its citations, in a new tab so the conversation stays open.
  function goldenLinks(messageId) {
    var base = "/staff/" + encodeURIComponent(slug) + "/golden/new/?message=" + encodeURIComponent(messageId) + "&verdict=";
    /** @param {string} verdict @param {string} label */
    function link(verdict, label) {
      return el("a", { href: base + verdict, target: "_blank", rel: "noopener", "data-golden": verdict }, [
        label,
        el("span", { className: "visually-hidden", text: ": add this reply to the golden answers (opens a new tab)" }),
      ]);
    }
    return el("p", { className: "tl-golden", hidden: true }, [link("right", "Right answer"), " · ", link("wrong", "Wrong answer")]);
  }

  function drawNote(note) {
    if (!current || current.notes[note.id]) return;
    current.notes[note.id] = true;
    append(el("li", { className: "tl-note", "data-note-id": note.id }, [
      el("div", { className: "tl-head" }, [
        el("span", { className: "tl-who", text: "Private note · " + (note.author || "") }),
        el("time", { className: "tl-time", datetime: note.at, text: timeOf(note.at) }),
      ]),
      el("p", { className: "tl-text", text: note.text }),
      el("p", { className: "tl-private", text: "Only your team sees this." }),
    ]));
  }

  function drawRun(item) {
    var run = current.runs[item.run_id] || {};
    Object.keys(item).forEach(function (key) {
      if (key !== "type" && key !== "seq" && key !== "at") run[key] = item[key];
    });
    current.runs[item.run_id] = run;
    if (!current.runLines[item.run_id]) {
      current.runLines[item.run_id] = el("li", { className: "tl-tool", "data-run-id": item.run_id });
      append(current.runLines[item.run_id]);
    }
    drawRunLine(item.run_id);
    renderApprovals();
  }

  // A run's one line in the timeline, redrawn as its state changes.
  function drawRunLine(runId) {
    var line = current.runLines[runId];
    var run = current.runs[runId];
    if (!line || !run) return;
    line.setAttribute("data-status", run.status || "");
    line.textContent = "";
    var state = RUN_STATUS[run.status] || run.status;
    line.appendChild(el("span", { className: "tl-line", text: "Tool: " + (run.label || run.tool) + " · " + state }));
    var detail = run.summary || run.proposal;
    if (detail) line.appendChild(el("span", { className: "tl-detail", text: " · " + detail }));
  }

  // ---- streaming text while the assistant still has the conversation

  function onDelta(frame) {
    if (!current || frame.conversation_id !== current.id || !frame.message_id) return;
    var view = current.bubbles[frame.message_id] || bubble(frame.message_id, "assistant", null);
    if (view.final) return;
    var shown = current.streams[frame.message_id] || "";
    var offset = Number(frame.offset) || 0;
    var piece = String(frame.text || "");
    // Offsets are UTF-16 units, as JavaScript strings count them.
    if (offset > shown.length) return; // a gap: the final text comes with the stored event
    var next = shown.slice(0, offset) + piece;
    if (next.length <= shown.length) return;
    current.streams[frame.message_id] = next;
    view.text.textContent = next;
    view.progress("Writing…");
  }

  function onProgress(frame) {
    if (!current || frame.conversation_id !== current.id || !frame.message_id) return;
    var view = current.bubbles[frame.message_id] || bubble(frame.message_id, "assistant", null);
    var text = typeof frame.text === "string" && frame.text.trim() ? frame.text.trim().slice(0, 200) : STAGES[frame.stage];
    if (text) view.progress(text);
  }

  // ---- tool approvals

  function renderApprovals() {
    if (!current) return;
    var waiting = Object.keys(current.runs).map(function (id) { return current.runs[id]; }).filter(function (run) {
      return run.status === "awaiting_approval" && run.approval === "agent";
    });
    ui.approvals.textContent = "";
    ui.approvalsBox.hidden = !waiting.length;
    waiting.forEach(function (run) {
      var what = run.proposal || run.label || run.tool;
      // The visible word starts the accessible name, which says what is approved.
      var approve = /** @type {HTMLButtonElement} */ (el("button", { type: "button", text: "Approve", "aria-label": "Approve: " + what }));
      var reject = /** @type {HTMLButtonElement} */ (el("button", { type: "button", className: "console-danger", text: "Reject", "aria-label": "Reject: " + what }));
      function decide(yes) {
        approve.disabled = reject.disabled = true;
        api("POST", "tool-runs/" + encodeURIComponent(run.run_id) + "/decision/", { approve: yes }).then(function (result) {
          var status = (result && result.status) || (yes ? "queued" : "rejected");
          if (current && current.runs[run.run_id]) drawRun({ type: "tool.run", run_id: run.run_id, status: status });
          announce(yes ? "Approved: " + what : "Rejected: " + what);
          scheduleMeta();
        }, function (error) {
          approve.disabled = reject.disabled = false;
          showError(error);
          scheduleMeta();
        });
      }
      approve.addEventListener("click", function () { decide(true); });
      reject.addEventListener("click", function () { decide(false); });
      ui.approvals.appendChild(el("li", { className: "approval", "data-run-id": run.run_id }, [
        el("p", { className: "approval-what" }, [el("strong", { text: run.label || run.tool }), ": " + (run.proposal || "")]),
        run.customer ? el("p", { className: "console-hint", text: "For customer " + run.customer }) : null,
        el("div", { className: "approval-buttons" }, [approve, reject]),
      ]));
    });
  }

  // ---- the case file

  // The case file's fields (apps/handoff/casefile.py), each shown in words; unknown fields are left out.
  var OUTCOMES = {
    answered: "Answered",
    abstained: "Found nothing to answer from",
    failed: "Failed",
    interrupted: "Cut off",
    refused: "Refused",
  };

  function words(value) {
    if (value === null || value === undefined) return "";
    if (typeof value === "string") return value;
    if (typeof value === "number" || typeof value === "boolean") return String(value);
    if (Array.isArray(value)) return value.map(words).filter(Boolean).join(", ");
    if (typeof value === "object") return words(value.label || value.text || value.name || "");
    return "";
  }

  function capital(text) {
    return text ? text.charAt(0).toUpperCase() + text.slice(1) : "";
  }

  var CHANNEL_WORDS = { widget: "website chat", email: "email", messaging: "SMS", cli: "command line" };

  /** How the customer wrote and was answered, from the case file's per-message channels. */
  function channelSummary(list) {
    if (!Array.isArray(list) || !list.length) return "";
    /** @type {{[side: string]: {[channel: string]: number}}} */
    var counts = { wrote: {}, answered: {} };
    list.forEach(function (m) {
      var side = m && m.role === "customer" ? "wrote" : "answered";
      var name = CHANNEL_WORDS[m && m.channel] || String((m && m.channel) || "unknown");
      counts[side][name] = (counts[side][name] || 0) + 1;
    });
    function part(side, lead) {
      var names = Object.keys(counts[side]);
      if (!names.length) return "";
      return lead + " " + names.map(function (n) { return n + " (" + counts[side][n] + ")"; }).join(", ");
    }
    return [part("wrote", "Wrote by"), part("answered", "answered by")].filter(Boolean).join("; ");
  }

  /** @type {Array<[string, string, (value: any) => any]>} */
  var CASE_FIELDS = [
    ["goal", "Goal", function (v) { return words(v); }],
    ["reason", "Why a person", function (v) {
      if (typeof v === "string") return reasonLabel(v);
      if (!v || typeof v !== "object") return "";
      var label = v.label || reasonLabel(v.code);
      return label + (v.detail ? " (" + v.detail + ")" : "");
    }],
    ["identity", "Identity", function (v) {
      if (!v || typeof v !== "object") return words(v);
      if (!v.verified) return "Not verified (anonymous visitor)";
      var who = [v.name, v.external_id].filter(Boolean).join(", ");
      return "Verified" + (who ? ": " + who : "") + (v.tier ? " · tier " + v.tier : "");
    }],
    ["channels", "Channels", channelSummary],
    ["sentiment", "Sentiment", function (v) {
      if (!v || typeof v !== "object") return capital(words(v));
      var signals = Array.isArray(v.signals) && v.signals.length ? " (" + v.signals.slice(0, 5).join(", ") + ")" : "";
      return capital(words(v.label)) + signals;
    }],
    ["confidence", "Assistant's confidence", function (v) {
      if (!v || typeof v !== "object") return capital(words(v));
      var level = capital(words(v.level));
      if (!level) return "";
      var top = typeof v.top_similarity === "number" ? ", best passage " + v.top_similarity.toFixed(2) : "";
      var bar = typeof v.threshold === "number" ? " (threshold " + v.threshold.toFixed(2) + ")" : "";
      return level + (v.grounded ? ": grounded in a cited passage" : ": not grounded in a passage") + top + bar;
    }],
  ];

  function caseSection(title, children) {
    return el("section", { className: "case-section" }, [el("h3", { text: title })].concat(children));
  }

  function renderCaseFile() {
    if (!current) return;
    var body = ui.caseBody;
    var handoff = current.handoff;
    // Redrawn only when it changed, so a re-read does not take focus off "Use this reply".
    var key = JSON.stringify([handoff && handoff.id, handoff && handoff.case_file_status, current.caseFile]);
    if (key === current.caseKey) return;
    current.caseKey = key;
    body.textContent = "";
    if (!handoff) {
      body.appendChild(el("p", {
        className: "console-empty",
        text: "No case file: this conversation has not gone to a person yet. The full transcript is in the middle.",
      }));
      return;
    }
    var status = handoff.case_file_status;
    var file = current.caseFile || {};
    if (!file.reason) {
      body.appendChild(el("p", { className: "case-meta" }, [
        el("span", { text: handoff.reason_label || reasonLabel(handoff.reason) }),
        handoff.detail ? el("span", { text: " (" + handoff.detail + ")" }) : null,
      ]));
    }
    if (status === "pending" && !Object.keys(file).length) {
      body.appendChild(el("p", { className: "case-pending", role: "status", text: "Writing the case file…" }));
      body.appendChild(el("a", { href: "#timeline", className: "case-transcript", text: "Full transcript" }));
      scheduleCasePoll();
      return;
    }
    if (status === "failed") {
      var retry = /** @type {HTMLButtonElement} */ (el("button", { type: "button", className: "console-secondary", text: "Try again" }));
      retry.addEventListener("click", function () {
        retry.disabled = true;
        api("POST", "handoffs/" + encodeURIComponent(handoff.id) + "/case-file/").then(function (summary) {
          if (current && current.handoff && current.handoff.id === handoff.id) {
            current.handoff = summary || current.handoff;
            current.handoff.case_file_status = "pending";
            current.caseFile = {};
            renderCaseFile();
          }
        }, function (error) {
          retry.disabled = false;
          showError(error);
        });
      });
      body.appendChild(el("div", { className: "case-failed" }, [
        el("p", { text: "The case file couldn't be written. The full transcript has everything." }),
        retry,
      ]));
    }
    if (status === "pending") {
      body.appendChild(el("p", { className: "case-pending", role: "status", text: "Writing the case file again…" }));
    }

    var facts = el("dl", { className: "case-facts" });
    CASE_FIELDS.forEach(function (field) {
      if (!(field[0] in file)) return;
      var value = field[2](file[field[0]]);
      if (!value) return;
      facts.appendChild(el("dt", { text: field[1] }));
      facts.appendChild(el("dd", { "data-field": field[0], text: value }));
    });
    if (facts.childNodes.length) body.appendChild(facts);

    if (Array.isArray(file.facts) && file.facts.length) {
      body.appendChild(caseSection("Facts", [el("ul", { "data-field": "facts" }, file.facts.map(function (fact) {
        return el("li", { text: words(fact) });
      }))]));
    }

    // Only what the customer agreed to have remembered (apps.memory), with when they agreed.
    var remembered = file.remembered;
    if (remembered && Array.isArray(remembered.facts)) {
      var since = new Date(remembered.consent_given_at);
      body.appendChild(caseSection("Remembered with consent", [
        el("p", { className: "case-meta", "data-field": "remembered_consent" }, [
          "Consent given ",
          el("time", { datetime: remembered.consent_given_at, text: since.toLocaleString() }),
        ]),
        remembered.facts.length
          ? el("ul", { "data-field": "remembered" }, remembered.facts.map(function (fact) {
            return el("li", { text: words(fact.text) + (fact.at ? " (" + new Date(fact.at).toLocaleDateString() + ")" : "") });
          }))
          : el("p", { className: "console-empty", "data-field": "remembered", text: "Nothing remembered yet." }),
      ]));
    }

    var tried = file.tried;
    if (Array.isArray(tried)) {
      body.appendChild(caseSection("What the assistant tried", [tried.length
        ? el("ol", { "data-field": "tried" }, tried.map(function (t) {
          if (!t || typeof t !== "object") return el("li", { text: words(t) });
          var outcome = OUTCOMES[t.outcome] || capital(words(t.outcome));
          return el("li", null, [el("strong", { text: outcome }), t.excerpt ? ": " + t.excerpt : ""]);
        }))
        : el("p", { className: "console-empty", "data-field": "tried", text: "The assistant had not answered yet." })]));
    }

    var cited = file.citations || file.passages || file.cited;
    if (Array.isArray(cited) && cited.length) {
      body.appendChild(caseSection("Cited passages", [el("ul", { className: "case-cited", "data-field": "citations" }, cited.map(function (c) {
        var title = [c.title || c.document || "Document"];
        if (c.version !== undefined && c.version !== null) title.push("v" + c.version);
        var section = Array.isArray(c.section) ? c.section.join(" › ") : c.section;
        if (section) title.push(section);
        if (c.effective_date) title.push("effective " + c.effective_date);
        var quote = c.text || c.quote || c.excerpt || "";
        return el("li", null, [
          el("span", { className: "case-cite-title", text: title.join(" · ") }),
          quote ? el("blockquote", { text: quote }) : null,
        ]);
      }))]));
    }

    var runs = file.tool_runs || file.tools;
    if (Array.isArray(runs) && runs.length) {
      body.appendChild(caseSection("Tool runs", [el("ul", { "data-field": "tool_runs" }, runs.map(function (r) {
        var status = RUN_STATUS[r.status] || r.status || "";
        return el("li", { text: [r.label || r.tool, status, r.summary || r.proposal || r.error_code].filter(Boolean).join(" · ") });
      }))]));
    }

    var suggestion = typeof file.suggested_reply === "string" ? file.suggested_reply : file.suggested_reply && file.suggested_reply.text;
    if (suggestion) {
      var use = el("button", { type: "button", className: "console-secondary", text: "Use this reply" });
      use.addEventListener("click", function () {
        ui.reply.value = suggestion;
        closeSuggestions();
        if (ui.reply.disabled) {
          announce("The suggested reply is in the reply box. Claim the conversation to send it.");
        } else {
          ui.reply.focus();
          ui.reply.setSelectionRange(ui.reply.value.length, ui.reply.value.length);
        }
      });
      body.appendChild(caseSection("Suggested reply", [
        el("p", { className: "case-suggestion", "data-field": "suggested_reply", text: suggestion }),
        use,
      ]));
    }
    body.appendChild(el("a", { href: "#timeline", className: "case-transcript", text: "Full transcript" }));
  }

  var casePollTimer = null;

  // Pushes are best effort: while the case file is being written, read it now and then too.
  function scheduleCasePoll() {
    if (casePollTimer) return;
    casePollTimer = setTimeout(function () {
      casePollTimer = null;
      if (current && current.handoff && current.handoff.case_file_status === "pending") refreshCaseFile(current.handoff.id);
    }, CASE_FILE_POLL_MS);
  }

  function refreshCaseFile(handoffId) {
    var mine = generation;
    return api("GET", "handoffs/" + encodeURIComponent(handoffId) + "/").then(function (data) {
      if (mine !== generation || !current || !current.handoff || current.handoff.id !== handoffId) return;
      var file = data.case_file;
      delete data.case_file;
      current.handoff = data;
      current.caseFile = file;
      renderCaseFile();
      renderConversationState();
    }, function (error) {
      if (mine === generation && error.code !== "network") showError(error);
    });
  }

  ui.caseBody.addEventListener("click", function (event) {
    var link = event.target.closest && event.target.closest("a.case-transcript");
    if (!link) return;
    event.preventDefault();
    ui.timeline.focus();
  });

  // ---- actions

  function convPath(action) {
    return "conversations/" + encodeURIComponent(current.id) + "/" + action + "/";
  }

  function afterAction(done) {
    return function (result) {
      if (done) announce(done);
      scheduleRefresh(true);
      if (current) loadTimeline(current.lastSeq);
      return result;
    };
  }

  function onActionError(error) {
    showError(error);
    scheduleRefresh(true);
    if (current) loadTimeline(current.lastSeq);
  }

  function busy(button, promise) {
    button.disabled = true;
    button.setAttribute("aria-busy", "true");
    return promise.then(function (value) {
      button.disabled = false;
      button.removeAttribute("aria-busy");
      return value;
    }, function (error) {
      button.disabled = false;
      button.removeAttribute("aria-busy");
      throw error;
    });
  }

  ui.actions.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("button[data-action]");
    if (!button || !current) return;
    var action = button.getAttribute("data-action");
    clearError();
    var request;
    if (action === "claim") {
      if (!current.handoff) return;
      request = api("POST", "handoffs/" + encodeURIComponent(current.handoff.id) + "/claim/")
        .then(afterAction("You have this conversation now."));
    } else if (action === "take-over") {
      request = api("POST", convPath("take-over")).then(afterAction("You took over from the assistant."));
    } else if (action === "hand-back") {
      request = api("POST", convPath("hand-back")).then(afterAction("Handed back to the assistant."));
    } else if (action === "resolve") {
      request = api("POST", convPath("resolve")).then(afterAction("Resolved."));
    } else if (action === "transfer") {
      var choice = ui.transferSelect.value;
      if (!choice) {
        showError({ code: "bad_request", message: "Choose an agent or a team to transfer to." });
        ui.transferSelect.focus();
        return;
      }
      var body = choice.indexOf("agent:") === 0 ? { agent_id: Number(choice.slice(6)) } : { team_id: choice.slice(5) };
      var label = ui.transferSelect.options[ui.transferSelect.selectedIndex].textContent.split(" · ")[0];
      request = api("POST", convPath("transfer"), body).then(afterAction("Transferred to " + label + "."));
    }
    if (request) busy(button, request).catch(onActionError);
  });

  // ---- replies

  function sendReply() {
    if (!current || ui.reply.disabled) return;
    var text = ui.reply.value.trim();
    if (!text) {
      showError({ code: "bad_request", message: "Write a reply first." });
      return;
    }
    clearError();
    var id = uuid();
    var convId = current.id;
    /** @type {{conversationId: string, text: string, node: any, timer: any, posted: boolean}} */
    var pending = { conversationId: convId, text: text, node: null, timer: null, posted: false };
    pendingReplies[id] = pending;
    var node = el("li", { className: "tl-msg", "data-role": "agent", "data-status": "sending", "data-client-msg-id": id }, [
      el("div", { className: "tl-head" }, [
        el("span", { className: "tl-who", text: "You" }),
        el("span", { className: "tl-state", text: "Sending…" }),
      ]),
      el("p", { className: "tl-text", text: text }),
    ]);
    pending.node = node;
    append(node);
    ui.reply.value = "";
    closeSuggestions();
    if (sendFrame({ type: "reply", conversation_id: convId, text: text, client_msg_id: id })) {
      // No acknowledgement in time: the same id again over HTTP (stored at most once either way).
      pending.timer = setTimeout(function () { postReply(id); }, ACK_TIMEOUT_MS);
    } else {
      postReply(id);
    }
  }

  function postReply(id) {
    var pending = pendingReplies[id];
    if (!pending || pending.posted) return;
    pending.posted = true;
    api("POST", "conversations/" + encodeURIComponent(pending.conversationId) + "/replies/", {
      text: pending.text,
      client_msg_id: id,
    }).then(function (data) {
      replyStored(id, data && data.message ? data.message.id : null, data && data.message);
    }, function (error) {
      replyFailed(id, error);
    });
  }

  function replyStored(id, messageId, message) {
    var pending = pendingReplies[id];
    if (!pending) return;
    delete pendingReplies[id];
    clearTimeout(pending.timer);
    if (!current || current.id !== pending.conversationId || !messageId) {
      pending.node.remove();
      return;
    }
    ownTexts[messageId] = pending.text;
    if (current.bubbles[messageId]) {
      pending.node.remove(); // the stored event got here first: it is the one shown
      current.bubbles[messageId].text.textContent = pending.text;
      return;
    }
    // The message's own bubble takes the pending one's place; the stored event that follows updates it
    // rather than adding another.
    var view = bubble(messageId, "agent", {});
    if (pending.node.parentNode) pending.node.parentNode.replaceChild(view.node, pending.node);
    view.update(message || { id: messageId, text: pending.text, status: "complete", author_full: "You" });
  }

  function replyFailed(id, error) {
    var pending = pendingReplies[id];
    if (!pending) return;
    delete pendingReplies[id];
    clearTimeout(pending.timer);
    pending.node.remove();
    if (current && current.id === pending.conversationId && !ui.reply.value) ui.reply.value = pending.text;
    showError(error);
    if (current) loadTimeline(current.lastSeq);
  }

  ui.replyForm.addEventListener("submit", function (event) {
    event.preventDefault();
    sendReply();
  });

  // ---- canned responses: "/" + shortcut in the reply box, or the list beside it

  var suggestions = [];
  var activeSuggestion = -1;

  function loadCanned() {
    return api("GET", "canned-responses/").then(function (data) {
      canned = (data && data.results) || [];
      var select = ui.cannedSelect;
      select.textContent = "";
      select.appendChild(el("option", { value: "", text: canned.length ? "Choose one…" : "None yet" }));
      canned.forEach(function (row) {
        select.appendChild(el("option", { value: row.id, text: "/" + row.shortcut + " · " + row.title }));
      });
    }, function (error) {
      if (error.code !== "network") showError(error);
    });
  }

  // The "/word" being typed at the caret, or null.
  function slashToken() {
    var value = ui.reply.value;
    var caret = ui.reply.selectionStart;
    var before = value.slice(0, caret);
    var match = before.match(/(?:^|\s)\/([a-z0-9_-]*)$/i);
    if (!match) return null;
    return { query: match[1].toLowerCase(), start: caret - match[1].length - 1, end: caret };
  }

  function updateSuggestions() {
    var token = /** @type {{query: string, start: number, end: number}} */ (slashToken());
    if (!token || !canned.length) {
      closeSuggestions();
      return;
    }
    suggestions = canned.filter(function (row) {
      return row.shortcut.indexOf(token.query) === 0 || row.title.toLowerCase().indexOf(token.query) >= 0;
    }).slice(0, 8);
    if (!suggestions.length) {
      closeSuggestions();
      return;
    }
    activeSuggestion = 0;
    drawSuggestions();
  }

  function drawSuggestions() {
    ui.suggest.textContent = "";
    suggestions.forEach(function (row, index) {
      var option = el("li", {
        role: "option",
        id: "canned-option-" + index,
        className: "canned-option",
        "aria-selected": index === activeSuggestion ? "true" : "false",
      }, [el("span", { className: "canned-shortcut", text: "/" + row.shortcut }), " " + row.title]);
      // mousedown, so the reply box keeps focus (and its caret) while the option is picked.
      option.addEventListener("mousedown", function (event) {
        event.preventDefault();
        pickSuggestion(index);
      });
      ui.suggest.appendChild(option);
    });
    ui.suggest.hidden = false;
    ui.reply.setAttribute("aria-activedescendant", "canned-option-" + activeSuggestion);
  }

  function closeSuggestions() {
    suggestions = [];
    activeSuggestion = -1;
    ui.suggest.hidden = true;
    ui.suggest.textContent = "";
    ui.reply.removeAttribute("aria-activedescendant");
  }

  function insertCanned(body, range) {
    var value = ui.reply.value;
    var start = range ? range.start : ui.reply.selectionStart;
    var end = range ? range.end : ui.reply.selectionEnd;
    ui.reply.value = value.slice(0, start) + body + value.slice(end);
    var caret = start + body.length;
    ui.reply.focus();
    ui.reply.setSelectionRange(caret, caret);
  }

  function pickSuggestion(index) {
    var row = suggestions[index];
    var token = slashToken();
    if (!row) return;
    insertCanned(row.body, token);
    closeSuggestions();
    announce("Inserted " + row.title + ".");
  }

  ui.reply.addEventListener("input", updateSuggestions);
  ui.reply.addEventListener("blur", function () { setTimeout(closeSuggestions, 150); });
  ui.reply.addEventListener("keydown", function (event) {
    if (!ui.suggest.hidden && suggestions.length) {
      if (event.key === "ArrowDown" || event.key === "ArrowUp") {
        event.preventDefault();
        activeSuggestion = (activeSuggestion + (event.key === "ArrowDown" ? 1 : -1) + suggestions.length) % suggestions.length;
        drawSuggestions();
        return;
      }
      if (event.key === "Enter" || event.key === "Tab") {
        event.preventDefault();
        pickSuggestion(activeSuggestion);
        return;
      }
      if (event.key === "Escape") {
        event.preventDefault();
        closeSuggestions();
        return;
      }
    }
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      sendReply();
    }
  });

  ui.cannedInsert.addEventListener("click", function () {
    var row = canned.filter(function (r) { return r.id === ui.cannedSelect.value; })[0];
    if (!row) {
      showError({ code: "bad_request", message: "Choose a canned response to insert." });
      ui.cannedSelect.focus();
      return;
    }
    insertCanned(row.body, null);
  });

  // ---- private notes

  ui.noteForm.addEventListener("submit", function (event) {
    event.preventDefault();
    if (!current) return;
    var text = ui.note.value.trim();
    if (!text) {
      showError({ code: "bad_request", message: "Write a note first." });
      return;
    }
    clearError();
    var button = ui.noteForm.querySelector("button[type=submit]");
    var convId = current.id;
    busy(button, api("POST", convPath("notes"), { text: text })).then(function (note) {
      ui.note.value = "";
      if (current && current.id === convId && note) drawNote(note);
    }, showError);
  });

  // ------------------------------------------------------------------------------------------- the socket

  // lib/socket.js's ReconnectingSocket opens it, reconnects with backoff (1 s doubling to 30 s, jittered),
  // closes a handshake that hangs, pings (a socket can die without a close event: a laptop asleep, a proxy
  // dropping it; the ping also keeps the agent counted as online), gives up on a socket silent for two
  // intervals, reconnects at once when the browser is back online and stops for good on 4401/4403. The
  // console's protocol is here: the socket counts as open from the desk's hello, and while it is not the
  // queue is read by polling.
  var socket = null; // the ReconnectingSocket, from connect()
  var socketOpen = false; // the desk said hello on the current connection
  var pollTimer = null;
  var everConnected = false;

  function setConn(state, text) {
    ui.conn.setAttribute("data-state", state);
    ui.conn.textContent = text;
  }

  function sendFrame(frame) {
    if (!socket || !socketOpen) return false;
    return socket.send(frame);
  }

  function stop(reason) {
    if (stopped) return;
    stopped = true;
    socketOpen = false;
    clearTimeout(pollTimer);
    if (socket) socket.stop();
    setConn("stopped", reason);
    showError({ code: "unauthorized", message: reason });
  }

  function schedulePoll() {
    if (pollTimer || stopped || socketOpen) return;
    pollTimer = setTimeout(function () {
      pollTimer = null;
      if (socketOpen || stopped) return;
      refreshQueue();
      schedulePoll();
    }, POLL_MS);
  }

  function onHello() {
    socketOpen = true;
    socket.healthy();
    clearTimeout(pollTimer);
    pollTimer = null;
    setConn("live", "Live");
    // Whatever happened while no socket listened: the queue, the tickets, the open conversation from its
    // last seq. The presence the agent chose is theirs to keep across reconnects.
    refreshQueue();
    refreshTickets();
    if (current) {
      sendFrame({ type: "watch", conversation_id: current.id });
      // From the start, not from the last seq: notes carry no seq, and one may have come meanwhile. What
      // is drawn already is not drawn again (seqs and note ids).
      if (current.loaded) loadTimeline(0);
    }
    if (everConnected && queue.me && queue.me.status && queue.me.status !== "online") {
      sendFrame({ type: "presence", status: queue.me.status });
    }
    everConnected = true;
    Object.keys(pendingReplies).forEach(function (id) {
      if (!pendingReplies[id].posted) postReply(id);
    });
  }

  function onFrame(frame) {
    switch (frame.type) {
      case "hello":
        onHello();
        break;
      case "presence.set":
        scheduleRefresh();
        break;
      case "watching":
        if (current && frame.conversation_id === current.id && current.loaded && frame.last_seq > current.lastSeq) {
          loadTimeline(current.lastSeq);
        }
        break;
      case "timeline":
        if (current && frame.conversation_id === current.id) {
          var meta = false;
          (frame.items || []).forEach(function (item) {
            drawItem(item);
            if (OWNERSHIP_EVENTS[item.type]) meta = true;
          });
          if (meta) scheduleMeta();
        }
        break;
      case "assistant.delta":
        onDelta(frame);
        break;
      case "assistant.progress":
        onProgress(frame);
        break;
      case "ack":
        if (frame.client_msg_id && pendingReplies[frame.client_msg_id]) replyStored(frame.client_msg_id, frame.message_id, null);
        break;
      case "error":
        if (frame.client_msg_id && pendingReplies[frame.client_msg_id]) replyFailed(frame.client_msg_id, frame);
        // The socket's own answer while the desk restarts (close 1013 follows): reconnecting, not an error.
        else if (frame.code === "temporarily_unavailable" && !frame.client_msg_id) setConn("reconnecting", "Reconnecting…");
        else showError(frame);
        break;
      case "queue.changed":
        scheduleRefresh(true);
        if (current && frame.handoff && frame.handoff.conversation_id === current.id) scheduleMeta();
        break;
      case "conversation.activity":
        scheduleRefresh(false);
        if (current && frame.conversation_id === current.id) scheduleMeta();
        break;
      case "handoff.escalated":
        if (frame.handoff) announce("Still waiting, escalated: " + (frame.handoff.reason_label || reasonLabel(frame.handoff.reason)));
        scheduleRefresh(false);
        break;
      case "ticket.opened":
        if (frame.ticket) announce("Ticket #" + frame.ticket.number + " opened.");
        scheduleRefresh(true);
        break;
      case "presence.changed":
        scheduleRefresh(false);
        break;
      case "note.added":
        if (current && frame.conversation_id === current.id && frame.note) drawNote(frame.note);
        break;
      case "delivery.updated":
        if (current && frame.conversation_id === current.id && frame.delivery) {
          deliveryShow(Object.assign({ message_id: frame.message_id }, frame.delivery));
        }
        break;
      case "case_file.ready":
        if (current && current.handoff && frame.handoff_id === current.handoff.id) refreshCaseFile(frame.handoff_id);
        scheduleRefresh(false);
        break;
    }
  }

  function connect() {
    if (stopped) return;
    if (!window.WebSocket) {
      schedulePoll();
      return;
    }
    socket = new ReconnectingSocket({
      url: function () {
        var scheme = location.protocol === "https:" ? "wss://" : "ws://";
        return scheme + location.host + "/ws/console/" + encodeURIComponent(slug) + "/";
      },
      onFrame: function (frame) {
        if (frame && typeof frame.type === "string") onFrame(frame);
      },
      onClose: function () {
        socketOpen = false;
        setConn("reconnecting", "Reconnecting…");
        schedulePoll();
      },
      onStop: function () {
        socketOpen = false;
        stop("Live updates stopped: you were signed out or are no longer an agent here. Reload the page.");
      },
      fatal: [4401, 4403],
      baseMs: BACKOFF_BASE_MS,
      capMs: MAX_BACKOFF_MS,
      connectTimeoutMs: CONNECT_TIMEOUT_MS,
      pingMs: PING_MS,
      silenceMs: 2 * PING_MS + 5000,
    });
    socket.connect();
  }

  // ------------------------------------------------------------------------------------------- start

  function openFromUrl() {
    var params = new URLSearchParams(location.search);
    var conversation = params.get("conversation");
    var handoff = params.get("handoff");
    if (conversation) return openConversation(conversation, { focus: true });
    if (handoff) {
      return api("GET", "handoffs/" + encodeURIComponent(handoff) + "/").then(function (data) {
        return openConversation(data.conversation_id, { focus: true });
      }, showError);
    }
    return Promise.resolve();
  }

  refreshQueue();
  refreshTickets();
  loadCanned();
  openFromUrl();
  connect();
})();
