// @ts-check
/*
 * fetch, the way every page calls the desk. Two levels:
 *
 * - `request(url, init, {timeoutMs})` never throws for an HTTP status: it resolves to
 *   {status, ok, body, headers} (body parsed as JSON, or null), and rejects only when the desk could not
 *   be reached or did not answer in time. The widget uses it (it reacts to each status itself).
 * - `api(method, url, {body, csrf, sentences})` resolves to the parsed body of a 2xx answer and rejects
 *   otherwise with the error contract's object (CONTRACTS.md §1): {code, status, message}, where `message`
 *   is the desk's own safe sentence or the table's sentence for the code; status 0 and code "network" when
 *   the desk could not be reached.
 */

import { STAFF, codeForStatus, sentenceFor } from "./errors.js";

/**
 * @typedef {{status: number, ok: boolean, body: any, headers: Headers}} Answer
 * @typedef {{code: string, status: number, message: string}} ApiError
 */

/**
 * @param {string} url
 * @param {RequestInit} [init]
 * @param {{timeoutMs?: number}} [options]
 * @returns {Promise<Answer>}
 */
export function request(url, init, options) {
  var timeoutMs = (options && options.timeoutMs) || 15000;
  var controller = typeof AbortController === "function" ? new AbortController() : null;
  var timer = controller
    ? setTimeout(function () {
        if (controller) controller.abort();
      }, timeoutMs)
    : null;
  /** @type {RequestInit} */
  var merged = Object.assign({}, init || {});
  if (controller) merged.signal = controller.signal;
  return fetch(url, merged).then(
    function (response) {
      if (timer) clearTimeout(timer);
      return response
        .json()
        .catch(function () { return null; })
        .then(function (body) {
          return { status: response.status, ok: response.ok, body: body, headers: response.headers };
        });
    },
    function (error) {
      if (timer) clearTimeout(timer);
      throw error;
    }
  );
}

/**
 * @param {string} method
 * @param {string} url
 * @param {{body?: unknown, csrf?: string, sentences?: Record<string, import("./errors.js").Entry>,
 *   timeoutMs?: number}} [options]
 * @returns {Promise<any>} the answer's body; rejects with an {@link ApiError}
 */
export function api(method, url, options) {
  var o = options || {};
  var sentences = o.sentences || STAFF;
  /** @type {Record<string, string>} */
  var headers = { Accept: "application/json" };
  /** @type {RequestInit} */
  var init = { method: method, credentials: "same-origin", headers: headers };
  if (o.body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(o.body);
  }
  if (method !== "GET" && o.csrf) headers["X-CSRFToken"] = o.csrf;
  return request(url, init, { timeoutMs: o.timeoutMs }).then(
    function (answer) {
      if (answer.ok) return answer.body;
      var body = answer.body;
      var code = (body && typeof body.code === "string" && body.code) || codeForStatus(answer.status);
      /** @type {ApiError} */
      var error = {
        code: code,
        status: answer.status,
        message: (body && typeof body.message === "string" && body.message) || sentenceFor(sentences, code, body || {}),
      };
      throw error;
    },
    function () {
      /** @type {ApiError} */
      var error = { code: "network", status: 0, message: sentenceFor(sentences, "network") };
      throw error;
    }
  );
}
