// @ts-check
/*
 * The small DOM builder every page uses. `text` always goes in as textContent, so nothing a customer or
 * the desk wrote becomes markup; `className` sets the class; `hidden: true` hides; other attributes are set
 * as strings (true for a bare attribute, null/undefined/false to leave one out). Children may be nodes or
 * strings (added as text); null/undefined/false children are skipped.
 */

/**
 * @typedef {Record<string, string | number | boolean | null | undefined>} Attrs
 * @typedef {Node | string | null | undefined | false} Child
 */

/**
 * @param {string} tag
 * @param {Attrs | null} [attrs]
 * @param {Child[]} [children]
 * @returns {HTMLElement}
 */
export function el(tag, attrs, children) {
  var node = document.createElement(tag);
  if (attrs) {
    Object.keys(attrs).forEach(function (name) {
      var value = attrs[name];
      if (value === null || value === undefined || value === false) return;
      if (name === "text") node.textContent = String(value);
      else if (name === "className") node.className = String(value);
      else if (name === "hidden") node.hidden = true;
      else node.setAttribute(name, value === true ? "" : String(value));
    });
  }
  (children || []).forEach(function (child) {
    if (child === null || child === undefined || child === false) return;
    node.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
  });
  return node;
}
