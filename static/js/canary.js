// @ts-check
/*
 * The canary section of the models page (templates/releases/_canary_section.html), loaded as
 * <script type="module">. Progressive enhancement: without it the forms post as they are and a reload
 * shows the latest numbers.
 *
 * Forms carrying data-confirm ask first (promote, stop). While a canary is checking or running, its JSON
 * (GET /api/v1/tenants/<slug>/canaries/<id>/) is polled: a running canary's indicator cells follow the
 * live numbers, and when its status changes (passed or refused the golden check, stopped automatically)
 * the page is reloaded so the server renders the outcome.
 */

import { api } from "./lib/api.js";

/**
 * @typedef {{[key: string]: number | null}} Arm
 * @typedef {{status: string, status_label: string, indicators: {current?: Arm, candidate?: Arm}}} CanaryState
 */

var POLL_MS = 10000;
var MAX_BACKOFF_MS = 60000;

/** @param {HTMLElement} root */
function start(root) {
  root.querySelectorAll("form[data-confirm]").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      if (!window.confirm(form.getAttribute("data-confirm") || "Are you sure?")) event.preventDefault();
    });
  });

  var url = root.getAttribute("data-canary-url") || "";
  var status = root.getAttribute("data-status") || "";
  if (!url || (status !== "checking" && status !== "running")) return;
  var announcer = root.querySelector("[data-canary-announcer]");
  var delay = POLL_MS;

  /** @param {CanaryState} state */
  function show(state) {
    root.querySelectorAll("td[data-arm][data-key]").forEach(function (cell) {
      var arm = cell.getAttribute("data-arm") === "candidate" ? state.indicators.candidate : state.indicators.current;
      var value = arm ? arm[cell.getAttribute("data-key") || ""] : null;
      cell.textContent = value === null || value === undefined ? "–" : value + (cell.getAttribute("data-unit") || "");
    });
  }

  function poll() {
    api("GET", url).then(
      /** @param {CanaryState} state */
      function (state) {
        delay = POLL_MS;
        if (state.status !== status) {
          if (announcer) announcer.textContent = "The canary is now: " + state.status_label + ".";
          window.location.reload();
          return;
        }
        if (state.status === "running") show(state);
        setTimeout(poll, delay);
      },
      /** @param {import("./lib/api.js").ApiError} error */
      function (error) {
        if (announcer) announcer.textContent = error.message;
        if (error.status === 401 || error.status === 403 || error.status === 404) return;
        delay = Math.min(delay * 2, MAX_BACKOFF_MS);
        setTimeout(poll, delay);
      }
    );
  }

  setTimeout(poll, POLL_MS);
}

var root = document.querySelector("[data-canary-root]");
if (root instanceof HTMLElement) start(root);
