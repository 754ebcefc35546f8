// @ts-check
/*
 * "Erase this customer" in the agent console (admins only; docs/architecture/erasure.md).
 *
 * A module of its own beside console.js: it finds the open conversation in the page address (console.js
 * keeps `?conversation=<id>` current), asks for confirmation in a dialog that lists what will be deleted,
 * posts the request, and follows it until it is done, showing each step as it finishes.
 */

import { api } from "./lib/api.js";
import { STAFF } from "./lib/errors.js";

(function () {
  var root = /** @type {HTMLElement | null} */ (document.querySelector("[data-console]"));
  var button = /** @type {HTMLButtonElement | null} */ (document.querySelector("[data-erase-open]"));
  var dialog = /** @type {HTMLDialogElement | null} */ (document.querySelector("[data-erase-dialog]"));
  if (!root || !button || !dialog || root.getAttribute("data-admin") !== "true") return;
  var box = dialog;
  var slug = root.getAttribute("data-slug") || "";
  var csrf = root.getAttribute("data-csrf") || "";
  var API = "/api/v1/tenants/" + encodeURIComponent(slug) + "/erasures/";
  var POLL_MS = 1000;
  var confirmButton = /** @type {HTMLButtonElement} */ (box.querySelector("[data-erase-confirm]"));
  var cancelButton = /** @type {HTMLButtonElement} */ (box.querySelector("[data-erase-cancel]"));
  var status = /** @type {HTMLElement} */ (box.querySelector("[data-erase-status]"));
  var KINDS = {
    contact: "this verified customer, in every conversation and channel",
    visitor: "this anonymous visitor",
    address: "everyone who wrote from this address",
  };
  var LABELS = {
    messages: "messages",
    conversations: "conversations",
    events: "conversation events",
    assistant_traces: "assistant prompts",
    deliveries: "deliveries",
    ratings: "ratings",
    notes: "notes",
    case_files: "case files",
    handoffs: "handoffs",
    tickets: "tickets",
    emails: "emails",
    email_threads: "email threads",
    tool_runs: "tool runs scrubbed",
    voice_clips: "voice clips",
    knowledge_gaps: "knowledge gaps",
    cached_answers: "cached answers",
    cache_keys: "cache entries",
    contacts: "contact",
  };

  button.hidden = false;

  function conversationId() {
    return new URL(location.href).searchParams.get("conversation") || "";
  }

  function say(text, state) {
    status.textContent = text;
    status.setAttribute("data-state", state);
  }

  /** @param {any} erasure */
  function summary(erasure) {
    var parts = Object.keys(erasure.counts || {})
      .filter(function (kind) { return erasure.counts[kind] > 0; })
      .map(function (kind) { return erasure.counts[kind] + " " + (LABELS[kind] || kind.replace(/_/g, " ")); });
    return parts.length ? parts.join(", ") : "nothing was left to delete";
  }

  /** @param {any} erasure */
  function follow(erasure) {
    var total = erasure.steps.length + erasure.steps_pending.length;
    if (erasure.state === "done") {
      say("Erased " + KINDS[erasure.subject_kind] + ": " + summary(erasure) + ".", "done");
      cancelButton.textContent = "Close";
      return;
    }
    if (erasure.state === "failed") {
      say("Erasure finished with a problem: " + erasure.error, "failed");
      cancelButton.textContent = "Close";
      return;
    }
    var note = erasure.error ? " " + erasure.error : "";
    say("Erasing… " + erasure.steps.length + " of " + total + " steps done." + note, "running");
    setTimeout(function () {
      api("GET", API + encodeURIComponent(erasure.id) + "/", { sentences: STAFF }).then(follow, failed);
    }, POLL_MS);
  }

  /** @param {{message: string}} error */
  function failed(error) {
    say(error.message, "error");
    confirmButton.disabled = false;
  }

  button.addEventListener("click", function () {
    if (!conversationId()) return;
    confirmButton.disabled = false;
    confirmButton.hidden = false;
    cancelButton.textContent = "Cancel";
    say("", "idle");
    box.showModal();
  });

  cancelButton.addEventListener("click", function () {
    box.close();
  });

  confirmButton.addEventListener("click", function () {
    var id = conversationId();
    if (!id) return;
    confirmButton.disabled = true;
    say("Starting…", "running");
    api("POST", API, { body: { conversation: id }, csrf: csrf, sentences: STAFF }).then(function (erasure) {
      confirmButton.hidden = true;
      follow(erasure);
    }, failed);
  });
})();
