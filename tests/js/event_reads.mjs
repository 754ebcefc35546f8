// Reads the widget's and the console's event handlers out of their source (read-only: the files are not
// changed or executed) and lists, per event `type`, the fields each handler reads. Used by
// events.test.mjs to check them against docs/architecture/events.schema.json.
//
// What counts as a read: `<param>.<field>` in the handler, where <param> holds the event; a variable
// assigned from one of its fields (`var message = event.message || {}`) makes `message.<field>` a read of
// `message.<field>`; a function the event is passed to (`TEXT.handoff.queued(event)`, `drawRun(item)`)
// is followed, to a depth of three.

import { readdirSync, readFileSync } from "node:fs";

const IDENT = "[A-Za-z_$][\\w$]*";

/** The text between the brace at `open` and its match (strings, comments and regexes are skipped). */
export function braceBlock(src, open) {
  let depth = 0;
  for (let i = open; i < src.length; i++) {
    const c = src[i];
    if (c === '"' || c === "'" || c === "`") {
      const quote = c;
      for (i++; i < src.length && src[i] !== quote; i++) if (src[i] === "\\") i++;
      continue;
    }
    if (c === "/" && src[i + 1] === "/") {
      i = src.indexOf("\n", i);
      if (i < 0) break;
      continue;
    }
    if (c === "/" && src[i + 1] === "*") {
      i = src.indexOf("*/", i) + 1;
      continue;
    }
    if (c === "{") depth++;
    else if (c === "}" && --depth === 0) return src.slice(open + 1, i);
  }
  throw new Error("unbalanced braces from offset " + open);
}

/** Every function with a name, by name: `function f(a, b) {…}` and object methods `f: function (a) {…}`. */
export function functionsOf(src) {
  const found = new Map();
  const patterns = [
    new RegExp(`function\\s+(${IDENT})\\s*\\(([^)]*)\\)\\s*\\{`, "g"),
    new RegExp(`["']?(${IDENT})["']?\\s*:\\s*function\\s*\\(([^)]*)\\)\\s*\\{`, "g"),
  ];
  for (const pattern of patterns) {
    for (const m of src.matchAll(pattern)) {
      const params = m[2].split(",").map((p) => p.trim()).filter(Boolean);
      const body = braceBlock(src, m.index + m[0].length - 1);
      if (!found.has(m[1])) found.set(m[1], []);
      found.get(m[1]).push({ params, body });
    }
  }
  return found;
}

function stripStrings(code) {
  return code
    .replace(/\/\/[^\n]*/g, "")
    .replace(/"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*'/g, '""');
}

/** The field paths `code` reads from the variable `name` (which holds an event), following aliases and
 * calls into `functions`. */
export function readsOf(code, name, functions, depth = 0, seen = new Set()) {
  const reads = new Set();
  const text = stripStrings(code);
  const direct = new RegExp(`(?<![\\w$.])${name}\\.(${IDENT})`, "g");
  for (const m of text.matchAll(direct)) reads.add(m[1]);
  // var message = event.message || {};   var data = item;
  const alias = new RegExp(`(?:var|let|const)\\s+(${IDENT})\\s*=\\s*${name}(?:\\.(${IDENT}))?\\s*(?:\\|\\|\\s*\\{\\s*\\})?\\s*[;,]`, "g");
  for (const m of text.matchAll(alias)) {
    if (m[1] === name) continue;
    for (const sub of readsOf(code, m[1], functions, depth, seen)) reads.add(m[2] ? `${m[2]}.${sub}` : sub);
  }
  if (depth < 3) {
    const call = new RegExp(`(${IDENT})\\s*\\(([^()]*)\\)`, "g");
    for (const m of text.matchAll(call)) {
      const args = m[2].split(",").map((a) => a.trim());
      args.forEach((arg, position) => {
        const path = arg === name ? "" : arg.startsWith(name + ".") ? arg.slice(name.length + 1) : null;
        if (path === null || !/^[\w$.]*$/.test(path)) return;
        for (const fn of functions.get(m[1]) || []) {
          const param = fn.params[position];
          const key = `${m[1]}:${position}:${path}`;
          if (!param || seen.has(key)) continue;
          seen.add(key);
          for (const sub of readsOf(fn.body, param, functions, depth + 1, seen)) {
            reads.add(path ? `${path}.${sub}` : sub);
          }
        }
      });
    }
  }
  return reads;
}

/** The handlers of an object literal `var NAME = { "type": handler, … }`: type -> [{params, body}]. */
export function handlerMap(src, varName, functions) {
  const m = new RegExp(`var\\s+${varName}\\s*=\\s*\\{`).exec(src);
  if (!m) throw new Error(`no handler map ${varName}`);
  const body = braceBlock(src, m.index + m[0].length - 1);
  const handlers = new Map();
  const entry = new RegExp(`(?:"([^"]+)"|(${IDENT}))\\s*:\\s*(function\\s*\\(([^)]*)\\)\\s*\\{|(${IDENT}))`, "g");
  for (const e of body.matchAll(entry)) {
    const type = e[1] || e[2];
    if (e[5]) {
      handlers.set(type, functions.get(e[5]) || []);
    } else {
      const inner = braceBlock(body, e.index + e[0].length - 1);
      handlers.set(type, [{ params: e[4].split(",").map((p) => p.trim()).filter(Boolean), body: inner }]);
    }
  }
  return handlers;
}

/** The cases of `switch (<name>.type) {…}` in function `fn`: type -> {code, group}, the code its case
 * runs and every label that falls through to that code. */
export function switchCases(fnBody, name) {
  const m = new RegExp(`switch\\s*\\(\\s*${name}\\.type\\s*\\)\\s*\\{`).exec(fnBody);
  if (!m) throw new Error(`no switch on ${name}.type`);
  const body = braceBlock(fnBody, m.index + m[0].length - 1);
  const cases = new Map();
  const label = /(?:case\s+"([^"]+)"|default)\s*:/g;
  const marks = [...body.matchAll(label)];
  let group = [];
  marks.forEach((mark, i) => {
    const start = mark.index + mark[0].length;
    const end = i + 1 < marks.length ? marks[i + 1].index : body.length;
    const code = body.slice(start, end);
    if (mark[1]) group.push(mark[1]);
    if (code.trim() === "") return; // falls through to the next label
    for (const type of group) cases.set(type, { code, group });
    group = [];
  });
  return cases;
}

export function load(path) {
  return readFileSync(new URL(`../../${path}`, import.meta.url), "utf8");
}

/** The `.js` files directly in each of `dirs` (repository paths), in name order, as one text. */
export function loadAll(dirs) {
  return dirs
    .flatMap((dir) =>
      readdirSync(new URL(`../../${dir}/`, import.meta.url))
        .filter((name) => name.endsWith(".js"))
        .sort()
        .map((name) => load(`${dir}/${name}`)),
    )
    .join("\n");
}
