// @ts-check
/*
 * A golden run's progress on its page (templates/releases/golden_run.html, loaded as a module while the
 * run is queued or running). Progressive enhancement: without it the page still works, the editor uses
 * its Refresh link. The run's row in the database is the truth: this reads it from the API every couple
 * of seconds, keeps the progress bar and the status line in step, and once the run has finished reloads
 * the page, which then shows every answer and no script.
 */

import { api } from "./lib/api.js";

/** @typedef {{id: string, status: string, total: number, done: number, passed: number,
 *   pass_rate: number | null, error: string}} Run */

var POLL_MS = 1500;
var MAX_BACKOFF_MS = 15000;
/** @type {Record<string, boolean>} */
var FINAL = { done: true, failed: true };

/** @param {Run} run @returns {string} */
function sentence(run) {
  var total = Number(run.total) || 0;
  var done = Number(run.done) || 0;
  var questions = total === 1 ? " question" : " questions";
  if (run.status === "done") {
    var rate = run.pass_rate === null ? "" : " (" + Math.round(Number(run.pass_rate) * 100) + "%)";
    return "Done: " + run.passed + " of " + total + questions + " answered right" + rate + ".";
  }
  if (run.status === "failed") return "The run failed: " + (run.error || "no reason was given.");
  if (run.status === "running") return "Running: " + done + " of " + total + questions + " asked.";
  return "Queued: waiting for a worker to start " + total + questions + ".";
}

/** @param {HTMLElement} root */
function start(root) {
  var slug = root.getAttribute("data-slug") || "";
  var runId = root.getAttribute("data-run-id") || "";
  var url = "/api/v1/tenants/" + encodeURIComponent(slug) + "/golden/runs/" + encodeURIComponent(runId) + "/";
  var status = root.querySelector("[data-golden-status]");
  var bar = /** @type {HTMLProgressElement | null} */ (root.querySelector("[data-golden-progress]"));
  var delay = POLL_MS;
  var lastText = status ? (status.textContent || "").trim() : "";

  root.querySelectorAll("[data-golden-nojs]").forEach(function (node) {
    /** @type {HTMLElement} */ (node).hidden = true;
  });

  /** @param {string} text */
  function say(text) {
    // Only a changed sentence is written, so a screen reader hears each step once.
    if (!status || text === lastText) return;
    lastText = text;
    status.textContent = text;
  }

  /** @param {Run} run */
  function apply(run) {
    root.setAttribute("data-status", run.status);
    if (bar) {
      bar.max = Math.max(1, Number(run.total) || 0);
      bar.value = Math.min(bar.max, Number(run.done) || 0);
      bar.textContent = Math.round((100 * bar.value) / bar.max) + "%";
    }
    say(sentence(run));
  }

  function poll() {
    api("GET", url).then(
      /** @param {Run} run */
      function (run) {
        delay = POLL_MS;
        apply(run);
        if (FINAL[run.status]) {
          // The page as the server renders a finished run: every answer, its citations, no polling.
          setTimeout(function () { location.reload(); }, 600);
          return;
        }
        setTimeout(poll, delay);
      },
      /** @param {import("./lib/api.js").ApiError} error */
      function (error) {
        if (error.status === 401 || error.status === 403 || error.status === 404) {
          say(error.message + " Reload the page to see where the run is.");
          return;
        }
        // The desk is busy or unreachable for a moment: try again, less often.
        delay = Math.min(MAX_BACKOFF_MS, delay * 2);
        setTimeout(poll, delay);
      }
    );
  }

  setTimeout(poll, POLL_MS);
}

var goldenRoot = document.querySelector("[data-golden-run]");
if (goldenRoot instanceof HTMLElement && typeof window.fetch === "function") start(goldenRoot);
