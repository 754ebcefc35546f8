// @ts-check
/*
 * The knowledge change page (templates/releases/change.html), loaded as <script type="module">.
 * Progressive enhancement: without it the page still works (the editor reloads to see progress, and the
 * decision forms post as they are).
 *
 * While the change is being checked, its progress (both golden runs' done/total) is polled as JSON and
 * the bars follow; once the check ends the page is reloaded, so the server renders the outcome (applied,
 * or held with the answers that would turn wrong). A form carrying data-confirm asks first.
 */

import { api } from "./lib/api.js";

/**
 * @typedef {{kind: string, label: string, status: string, done: number, total: number}} RunProgress
 * @typedef {{status: string, status_label: string, finished: boolean, regression_count: number,
 *   error: string, runs: RunProgress[]}} ChangeProgress
 */

var POLL_MS = 1500;
var MAX_BACKOFF_MS = 15000;

/** @param {HTMLElement} root */
function start(root) {
  var url = root.getAttribute("data-progress-url") || "";
  var announcer = root.querySelector("[data-change-announcer]");
  var hint = root.querySelector("[data-change-hint]");
  var delay = POLL_MS;

  root.querySelectorAll("form[data-confirm]").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      if (!window.confirm(form.getAttribute("data-confirm") || "Are you sure?")) event.preventDefault();
    });
  });

  if (root.getAttribute("data-status") !== "checking" || !url) return;
  if (hint) hint.textContent = "This page follows the check by itself.";

  /** @param {RunProgress} run */
  function show(run) {
    var row = root.querySelector('[data-run="' + CSS.escape(run.kind) + '"]');
    if (!row) return;
    var bar = row.querySelector("progress");
    if (bar) {
      bar.max = Math.max(run.total, 1);
      bar.value = run.done;
    }
    var count = row.querySelector("[data-run-count]");
    if (count) count.textContent = run.done + " of " + run.total + (run.total === 1 ? " question" : " questions");
  }

  /** @param {string} text */
  function announce(text) {
    if (announcer) announcer.textContent = text;
  }

  function poll() {
    api("GET", url).then(
      /** @param {ChangeProgress} progress */
      function (progress) {
        delay = POLL_MS;
        progress.runs.forEach(show);
        if (progress.finished) {
          announce("The check is over: " + progress.status_label + ".");
          window.location.reload();
          return;
        }
        setTimeout(poll, delay);
      },
      /** @param {import("./lib/api.js").ApiError} error */
      function (error) {
        announce(error.message);
        // Signed out or no longer allowed: polling again cannot help.
        if (error.status === 401 || error.status === 403 || error.status === 404) return;
        delay = Math.min(delay * 2, MAX_BACKOFF_MS);
        setTimeout(poll, delay);
      }
    );
  }

  setTimeout(poll, POLL_MS);
}

var root = document.querySelector("[data-change]");
if (root instanceof HTMLElement) start(root);
