// @ts-check
// Small helpers of the widget with no state of their own.

export function uuid() {
  if (window.crypto && crypto.randomUUID) {
    try {
      return crypto.randomUUID();
    } catch (e) {
      /* insecure context: fall through */
    }
  }
  var bytes = new Uint8Array(16);
  if (window.crypto && crypto.getRandomValues) crypto.getRandomValues(bytes);
  else for (var i = 0; i < 16; i++) bytes[i] = Math.floor(Math.random() * 256);
  bytes[6] = (bytes[6] & 0x0f) | 0x40;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  var hex = Array.prototype.map.call(bytes, function (b) {
    return (b + 0x100).toString(16).slice(1);
  }).join("");
  return hex.slice(0, 8) + "-" + hex.slice(8, 12) + "-" + hex.slice(12, 16) + "-" + hex.slice(16, 20) + "-" + hex.slice(20);
}

// Storage can be blocked (third-party storage settings, sandboxed frames): the widget then simply
// forgets between page loads.
/** @typedef {"localStorage" | "sessionStorage"} StoreKind */

/** @param {StoreKind} kind @returns {Storage | null} */
function store(kind) {
  try {
    return window[kind];
  } catch (e) {
    return null;
  }
}
/** @param {StoreKind} kind @param {string} key @returns {string | null} */
export function readStore(kind, key) {
  try {
    var s = store(kind);
    return s ? s.getItem(key) : null;
  } catch (e) {
    return null;
  }
}
/** @param {StoreKind} kind @param {string} key @param {string | null} value null removes it */
export function writeStore(kind, key, value) {
  try {
    var s = store(kind);
    if (!s) return;
    if (value === null) s.removeItem(key);
    else s.setItem(key, value);
  } catch (e) {
    /* full or blocked */
  }
}

/** @param {string} text */
export function charCount(text) {
  return Array.from(text).length; // the server counts code points, not UTF-16 units
}
