// @ts-check
/*
 * The sentence a person reads for each error code (CONTRACTS.md §1), in one place: customers (the widget)
 * and staff (the console, the knowledge pages) are told different things about the same code. A value is a
 * sentence, or a function of the error's details (a wait, a limit) returning one.
 */

/** @typedef {Record<string, any>} Details */
/** @typedef {string | ((details: Details) => string)} Entry */

/** @param {number} s @returns {string} "1 second", "5 seconds" (rounded up) */
export function seconds(s) {
  var n = Math.ceil(s);
  return n === 1 ? "1 second" : n + " seconds";
}

/** What a customer reads in the widget. @type {Record<string, Entry>} */
export var CUSTOMER = {
  bad_request: "Sorry, we couldn't read that request. Please try again.",
  unauthorized: "Your chat session has expired. We're starting a new one.",
  forbidden: "Chat isn't available on this website.",
  not_found: "We couldn't find that. It may have been removed.",
  rate_limited: function (d) {
    var s = d && Number(d.retry_after);
    return s > 0
      ? "You're sending messages too quickly. Please wait " + seconds(s) + " and try again."
      : "You're sending messages too quickly. Please wait a moment and try again.";
  },
  message_too_long: function (d) {
    return d && d.limit
      ? "Your message is too long. Please shorten it to " + d.limit + " characters or fewer."
      : "Your message is too long. Please shorten it and send it again.";
  },
  llm_unavailable: "Our assistant can't answer right now. Please try again in a moment, or talk to a person.",
  temporarily_unavailable:
    "We can't look up our policies right now, so we can't answer reliably. Please try again shortly, or talk to a person.",
  interrupted: "This answer was cut off before it finished. You can try again.",
  conflict: "That changed while we were working on it. Please try again.",
  unknown: "Something went wrong on our side. Please try again.",
};

/** What a customer reads when the widget's socket closes with a code. @type {Record<number, string>} */
export var CUSTOMER_CLOSES = {
  4401: "Your chat session has expired. We're starting a new one.",
  4403: "Chat isn't available on this website.",
  1008: "The connection was closed because something we received wasn't allowed. Reconnecting…",
  1009: "That message was too large to send. Please shorten it.",
  1011: "Something went wrong on our side. Reconnecting…",
  1013: "Reconnecting…", // the desk is briefly unavailable (restarting): not the customer's problem
  4429: "Too many chat connections from your network just now. We'll reconnect shortly.",
};

/** What staff read (the console's wording) when the desk sent no sentence of its own. @type {Record<string, Entry>} */
export var STAFF = {
  bad_request: "That request wasn't accepted. Check what you entered and try again.",
  unauthorized: "You were signed out. Reload the page to sign in again.",
  forbidden: "You don't have permission to do that.",
  not_found: "That doesn't exist any more, or you can't see it.",
  rate_limited: "Too many requests. Wait a moment and try again.",
  message_too_long: "That is too long. Shorten it and try again.",
  llm_unavailable: "The assistant is unavailable right now.",
  temporarily_unavailable: "The desk is briefly unavailable. Try again in a few seconds.",
  interrupted: "That was cut off before it finished. Try again.",
  conflict: "Someone else changed this first. The console shows the current state.",
  network: "The desk can't be reached. Check your connection; the console keeps trying.",
  unknown: "Something went wrong on the desk's side. Try again.",
};

/**
 * The sentence for `code` from `table` (its `unknown` entry for a code it lacks).
 * @param {Record<string, Entry>} table
 * @param {string | null | undefined} code
 * @param {Details} [details]
 * @returns {string}
 */
export function sentenceFor(table, code, details) {
  var entry = (code && table[code]) || table.unknown;
  return typeof entry === "function" ? entry(details || {}) : entry;
}

/** @param {number} status @returns {string} the contract's code for an HTTP status without a body code */
export function codeForStatus(status) {
  /** @type {Record<number, string>} */
  var codes = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    409: "conflict",
    413: "message_too_long",
    429: "rate_limited",
    503: "temporarily_unavailable",
  };
  return codes[status] || "temporarily_unavailable";
}
