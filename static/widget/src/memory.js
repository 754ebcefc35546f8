// @ts-check
/*
 * Consented memory in the widget (docs/architecture/memory.md): the question, asked once in a small card
 * above the message box that never blocks typing, and the "What we remember" panel, opened from the
 * head, where the customer sees what is remembered, deletes any of it, forgets everything, or stops
 * remembering.
 *
 * Everything it shows comes from GET /api/widget/v1/memory (whose memory is decided by the session token,
 * never by the page): the state of the answer, the question's exact wording and version, the facts. The
 * answer is sent with the version of the wording shown, so the desk stores the words the customer read.
 * All text goes in with textContent.
 */

import { el } from "../../js/lib/el.js";

export var MEMORY_TEXT = {
  open: "What we remember",
  title: "What we remember",
  yes: "Yes, remember",
  no: "No thanks",
  close: "Close",
  remove: "Delete",
  removeName: function (text) { return "Delete: " + text; },
  forgetAll: "Forget everything",
  stop: "Stop remembering",
  start: "Remember what I tell you",
  since: function (when) { return "You agreed on " + when + ". Delete anything you don't want us to keep."; },
  nothingYet: "Nothing yet. When you tell us how you like to be contacted, or which plan or device you have, it shows here.",
  off: "We don't remember anything from your chats: each chat starts fresh.",
  told: function (when) { return "Told us " + when; },
  saidYes: "Thanks. We'll remember a few things you tell us; see them under \u201cWhat we remember\u201d.",
  saidNo: "Okay, we won't remember anything after this chat.",
  deleted: "Deleted.",
  forgotten: "Everything we remembered is deleted.",
  stopped: "We've stopped remembering and deleted everything we kept.",
  loading: "Loading\u2026",
  failed: "We couldn't reach the desk. Please try again.",
  expired: "Your chat session has ended. Reload the page to start again.",
  busy: "Too many requests. Please wait a moment and try again.",
};

var PATH = "api/widget/v1/memory";

/**
 * @typedef {{id: string, kind: string, text: string, created_at: string}} Fact
 * @typedef {{consent: {state: string, answered_at: string | null}, ask: {version: number, wording: string},
 *   facts: Fact[]}} Memory
 * @typedef {{status: number, ok: boolean, body: any}} Answer
 * @typedef {{
 *   request: (url: string, init: RequestInit) => Promise<Answer>,
 *   url: (path: string) => string,
 *   token: () => string | null,
 *   onUnauthorized: () => void,
 *   focusReturn: () => HTMLElement | null,
 * }} Deps
 */

/** @param {Deps} deps */
export function memoryWidget(deps) {
  /** @type {Memory | null} */
  var state = null;
  var loading = false;
  var asked = false; // the card was answered on this page: not shown again whatever the desk says

  var button = el("button", {
    type: "button",
    className: "remember",
    "aria-label": MEMORY_TEXT.open,
    title: MEMORY_TEXT.open,
    "aria-haspopup": "dialog",
  }, [bookmark()]);

  var cardText = el("p", { className: "memory-ask-text" });
  var cardYes = el("button", { type: "button", text: MEMORY_TEXT.yes });
  var cardNo = el("button", { type: "button", className: "secondary", text: MEMORY_TEXT.no });
  var card = el("div", { className: "memory-ask", role: "region", "aria-label": MEMORY_TEXT.title, hidden: true }, [
    cardText,
    el("div", { className: "memory-ask-row" }, [cardYes, cardNo]),
  ]);

  var live = el("p", { className: "vh", role: "status", "aria-live": "polite" });
  var heading = el("h3", { id: "hd-memory-title", text: MEMORY_TEXT.title });
  var intro = el("p", { id: "hd-memory-intro", className: "memory-intro" });
  var list = el("ul", { className: "memory-list" });
  var note = el("p", { className: "memory-note", role: "alert" });
  var wording = el("p", { className: "memory-wording", hidden: true });
  var start = el("button", { type: "button", text: MEMORY_TEXT.start, hidden: true });
  var forgetAll = el("button", { type: "button", className: "secondary", text: MEMORY_TEXT.forgetAll, hidden: true });
  var stop = el("button", { type: "button", className: "secondary", text: MEMORY_TEXT.stop, hidden: true });
  var close = el("button", { type: "button", className: "secondary", text: MEMORY_TEXT.close });
  var box = el("div", {
    className: "passage-box memory-box",
    role: "dialog",
    "aria-modal": "true",
    "aria-labelledby": "hd-memory-title",
    "aria-describedby": "hd-memory-intro",
  }, [
    el("div", { className: "passage-head" }, [el("div", { className: "passage-titles" }, [heading]), close]),
    el("div", { className: "memory-body", tabindex: "0" }, [intro, list, wording, note]),
    el("div", { className: "memory-actions" }, [start, forgetAll, stop]),
  ]);
  var dialog = el("div", { className: "passage memory", hidden: true }, [box, live]);

  button.addEventListener("click", openDialog);
  close.addEventListener("click", closeDialog);
  dialog.addEventListener("click", function (event) {
    if (event.target === dialog) closeDialog();
  });
  // Escape closes this dialog, not the whole chat; Tab stays inside it.
  dialog.addEventListener("keydown", function (event) {
    if (event.key === "Escape") {
      event.stopPropagation();
      closeDialog();
    } else if (event.key === "Tab") {
      trapFocus(event);
    }
  });
  cardYes.addEventListener("click", function () { answer(true, MEMORY_TEXT.saidYes); });
  cardNo.addEventListener("click", function () { answer(false, MEMORY_TEXT.saidNo); });
  start.addEventListener("click", function () { answer(true, ""); });
  stop.addEventListener("click", function () {
    close.focus();
    answer(false, MEMORY_TEXT.stopped);
  });
  start.addEventListener("click", function () { close.focus(); });
  forgetAll.addEventListener("click", function () {
    call("DELETE", PATH + "/facts").then(function (result) {
      if (!result) return;
      close.focus(); // "Forget everything" is hidden once nothing is left
      refresh(MEMORY_TEXT.forgotten);
    });
  });

  function bookmark() {
    var svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
    svg.setAttribute("viewBox", "0 0 24 24");
    svg.setAttribute("class", "icon");
    svg.setAttribute("aria-hidden", "true");
    svg.setAttribute("focusable", "false");
    var path = document.createElementNS("http://www.w3.org/2000/svg", "path");
    path.setAttribute("d", "M7 4h10a1 1 0 0 1 1 1v15l-6-4-6 4V5a1 1 0 0 1 1-1z");
    svg.appendChild(path);
    return svg;
  }

  /**
   * @param {string} method
   * @param {string} path
   * @param {unknown} [body]
   * @returns {Promise<any>} the answer's body (true for an empty one), or null after showing why not
   */
  function call(method, path, body) {
    var token = deps.token();
    if (!token) return Promise.resolve(null);
    /** @type {Record<string, string>} */
    var headers = { Authorization: "Bearer " + token, Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    note.textContent = "";
    return deps.request(deps.url(path), {
      method: method,
      headers: headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    }).then(function (result) {
      if (result.ok) return result.body || true;
      if (result.status === 401) {
        deps.onUnauthorized();
        note.textContent = MEMORY_TEXT.expired;
      } else if (result.status === 429) {
        note.textContent = MEMORY_TEXT.busy;
      } else {
        var message = result.body && typeof result.body.message === "string" ? result.body.message : "";
        note.textContent = message || MEMORY_TEXT.failed;
        if (result.status === 404 || result.status === 409) refresh();
      }
      return null;
    }, function () {
      note.textContent = MEMORY_TEXT.failed;
      return null;
    });
  }

  /** @param {string} [said] announced once the new state is shown */
  function refresh(said) {
    if (loading) return Promise.resolve();
    loading = true;
    return call("GET", PATH).then(function (body) {
      loading = false;
      if (body && body.consent) {
        state = body;
        show();
        if (said) announce(said);
      }
    });
  }

  /**
   * @param {boolean} remember
   * @param {string} said
   */
  function answer(remember, said) {
    if (!state) return;
    asked = true;
    card.hidden = true;
    call("POST", PATH + "/consent", { remember: remember, version: state.ask.version }).then(function (body) {
      if (!body || !body.consent) return;
      state = body;
      show();
      if (said) announce(said);
    });
  }

  function show() {
    if (!state) return;
    var consent = state.consent.state;
    var on = consent === "granted";
    card.hidden = asked || consent !== "unasked";
    cardText.textContent = state.ask.wording;
    intro.textContent = on
      ? MEMORY_TEXT.since(day(state.consent.answered_at))
      : MEMORY_TEXT.off;
    list.textContent = "";
    if (on && !state.facts.length) list.appendChild(el("li", { className: "memory-empty", text: MEMORY_TEXT.nothingYet }));
    (on ? state.facts : []).forEach(function (fact) {
      var remove = el("button", {
        type: "button",
        className: "secondary",
        text: MEMORY_TEXT.remove,
        "aria-label": MEMORY_TEXT.removeName(fact.text),
      });
      remove.addEventListener("click", function () {
        remove.setAttribute("disabled", "");
        call("DELETE", PATH + "/facts/" + encodeURIComponent(fact.id)).then(function (result) {
          if (!result) {
            remove.removeAttribute("disabled");
            return;
          }
          // The button goes with its row: focus stays in the dialog (Escape and Tab keep working).
          close.focus();
          refresh(MEMORY_TEXT.deleted);
        });
      });
      list.appendChild(el("li", { className: "memory-fact", "data-fact-id": fact.id }, [
        el("span", { className: "memory-text", text: fact.text }),
        el("span", { className: "memory-date", text: MEMORY_TEXT.told(day(fact.created_at)) }),
        remove,
      ]));
    });
    // Asking again is the customer's own doing here: the wording they agree to is shown with the button.
    wording.hidden = on;
    wording.textContent = state.ask.wording;
    start.hidden = on;
    forgetAll.hidden = !on || !state.facts.length;
    stop.hidden = !on;
  }

  /** @param {string | null} iso */
  function day(iso) {
    if (!iso) return "";
    var date = new Date(iso);
    return isNaN(date.getTime()) ? "" : date.toLocaleDateString([], { year: "numeric", month: "short", day: "numeric" });
  }

  /** @param {string} text */
  function announce(text) {
    live.textContent = "";
    setTimeout(function () { live.textContent = text; }, 50);
  }

  function openDialog() {
    dialog.hidden = false;
    intro.textContent = state ? intro.textContent : MEMORY_TEXT.loading;
    refresh();
    close.focus();
  }

  function closeDialog() {
    if (dialog.hidden) return;
    dialog.hidden = true;
    var back = deps.focusReturn();
    if (back) back.focus();
    else button.focus();
  }

  /** @param {KeyboardEvent} event */
  function trapFocus(event) {
    var focusable = Array.prototype.filter.call(
      box.querySelectorAll("button, [tabindex='0']"),
      function (node) { return !node.disabled && !node.hidden && node.offsetParent !== null; }
    );
    if (!focusable.length) return;
    var root = /** @type {ShadowRoot | Document} */ (box.getRootNode());
    var active = root.activeElement;
    var first = focusable[0];
    var last = focusable[focusable.length - 1];
    if (event.shiftKey && (active === first || focusable.indexOf(active) < 0)) {
      event.preventDefault();
      last.focus();
    } else if (!event.shiftKey && (active === last || focusable.indexOf(active) < 0)) {
      event.preventDefault();
      first.focus();
    }
  }

  return {
    button: button,
    card: card,
    dialog: dialog,
    // The chat was opened: ask once, if this visitor never answered.
    panelOpened: function () {
      if (!state) refresh();
    },
    // Another session (a sign-in, a sign-out): whatever was shown belonged to someone else.
    sessionChanged: function () {
      state = null;
      asked = false;
      card.hidden = true;
      list.textContent = "";
      if (!dialog.hidden) refresh();
    },
  };
}
