// The widget's and the console's event handlers checked against the exported event schema
// (docs/architecture/events.schema.json, from apps/core/event_types): every `type` they handle exists on
// their socket, and every field they read from it exists in that type's definition. A field renamed on
// the server (and the schema regenerated, which a Python test enforces) fails here until the browser code
// follows. Run by `make test` (`node --test tests/js/`).

import assert from "node:assert/strict";
import { test } from "node:test";

import { functionsOf, handlerMap, load, loadAll, readsOf, switchCases } from "./event_reads.mjs";

const schema = JSON.parse(load("docs/architecture/events.schema.json"));
const defs = schema.$defs;

// Reads that find nothing on purpose: fallbacks for a field that lives elsewhere. Each names where it is.
const TOLERATED = {
  // onFinished/update read `event.code || message.code`: the code is on the event (assistant.failed,
  // assistant.interrupted); stored messages carry none.
  "message.code": "the event's own `code`",
  // onFinished reads `event.offer_handoff || message.offer_handoff`: it is on the message.
  offer_handoff: "`message.offer_handoff`",
};

// The console draws every message, whatever its role, with one `bubble(...).update(message)`: what that
// reads of a message is checked against the three message shapes together (the widget, whose handlers
// are per role, is checked per type).
const EVERY_MESSAGE = ["CustomerMessage", "AssistantMessage", "AgentMessage"];

function nameOf(ref) {
  return ref.split("/").pop();
}

function resolve(node) {
  while (node && node.$ref) node = defs[nameOf(node.$ref)];
  return node;
}

function branches(node) {
  node = resolve(node);
  const options = node.oneOf || node.anyOf;
  return options ? options.flatMap(branches) : [node];
}

/** type -> definition name, for a discriminated union definition (or a property holding one). */
function mappingOf(node) {
  node = resolve(node);
  const mapping = node.discriminator && node.discriminator.mapping;
  assert.ok(mapping, "a discriminated union");
  return Object.fromEntries(Object.entries(mapping).map(([type, ref]) => [type, nameOf(ref)]));
}

/** Whether `path` (a.b.c) can be read from one of `definitions`. Reading into a value that is not an
 * object (`text.trim`, `citations.length`) is the value's own and passes. */
export function readable(definitions, path, { messages = null } = {}) {
  let nodes = definitions.map((name) => defs[name]);
  const parts = path.split(".");
  for (let i = 0; i < parts.length; i++) {
    const next = [];
    let scalar = false;
    for (const node of nodes.flatMap(branches)) {
      if (!node.properties) {
        scalar = true;
        continue;
      }
      if (parts[i] in node.properties) next.push(node.properties[parts[i]]);
    }
    if (next.length === 0) return scalar;
    nodes = i === 0 && parts[0] === "message" && messages ? messages.map((name) => defs[name]) : next;
  }
  return true;
}

function unread(definitions, reads, options) {
  return [...reads].filter((path) => !(path in TOLERATED) && !readable(definitions, path, options)).sort();
}

const WIDGET = mappingOf(defs.WidgetFrame);
const CONSOLE = mappingOf(defs.ConsoleFrame);
const TIMELINE = mappingOf(defs.Timeline.properties.items.items);

test("the schema has one definition per type on each socket", () => {
  for (const surface of ["WidgetFrame", "ConsoleFrame", "StaffFrame"]) {
    const mapping = mappingOf(defs[surface]);
    for (const [type, name] of Object.entries(mapping)) {
      assert.equal(defs[name].properties.type.const, type, `${surface}: ${type} -> ${name}`);
    }
  }
});

test("the extractor finds what a handler reads", () => {
  const src = `
    var MAP = { "a.b": onA, c: function (f) { return f.x; } };
    function onA(event) { var message = event.message || {}; say(event); return message.text + event.seq; }
    function say(d) { return d.why; }`;
  const fns = functionsOf(src);
  const map = handlerMap(src, "MAP", fns);
  assert.deepEqual([...map.keys()], ["a.b", "c"]);
  const [onA] = map.get("a.b");
  assert.deepEqual([...readsOf(onA.body, onA.params[0], fns)].sort(), ["message", "message.text", "seq", "why"]);
  assert.equal(readable(["Welcome"], "last_seq"), true);
  assert.equal(readable(["Welcome"], "last_sequence"), false);
  assert.equal(readable(["AssistantCompleted"], "message.citations.length"), true);
  assert.equal(readable(["AssistantCompleted"], "message.author"), false);
});

test("the widget handles only types its socket sends, and reads only their fields", () => {
  // The widget's sources (its bundle, static/widget/widget.js, is built from them): its own modules and
  // the shared ones it imports, read as one text so a handler passing an event to another module's
  // function (`TEXT.handoff.queued(event)`) is followed there.
  const src = loadAll(["static/widget/src", "static/js/lib"]);
  const fns = functionsOf(src);
  const problems = [];
  for (const mapName of ["STORED", "PUSHED"]) {
    const handlers = handlerMap(src, mapName, fns);
    assert.ok(handlers.size > 5, `${mapName} found`);
    // A handler shared by several types (onFinished) may read a field any of them has.
    const typesOf = new Map();
    for (const [type, [handler]] of handlers) {
      if (!handler) continue;
      if (!typesOf.has(handler.body)) typesOf.set(handler.body, []);
      typesOf.get(handler.body).push(type);
    }
    for (const [type, hs] of handlers) {
      if (!(type in WIDGET)) {
        problems.push(`${mapName}: the widget socket sends no "${type}"`);
        continue;
      }
      assert.ok(hs.length > 0, `the handler of ${type} was found`);
      for (const handler of hs) {
        const param = handler.params[0];
        if (!param) continue;
        const sharing = typesOf.get(handler.body).filter((t) => t in WIDGET).map((t) => WIDGET[t]);
        for (const path of unread(sharing, readsOf(handler.body, param, fns))) {
          problems.push(`${mapName}["${type}"] reads ${param}.${path}, which ${WIDGET[type]} does not have`);
        }
      }
    }
  }
  assert.deepEqual(problems, []);
});

function caseReads(fnBody, param, code, fns) {
  // Aliases declared before the switch (`var data = item;`, `var message = item.message;`) count where
  // the case uses them.
  const prelude = fnBody.slice(0, fnBody.search(/switch\s*\(/));
  const reads = new Set(readsOf(code, param, fns));
  const alias = new RegExp(`var\\s+([\\w$]+)\\s*=\\s*${param}(?:\\.([\\w$]+))?\\s*;`, "g");
  for (const m of prelude.matchAll(alias)) {
    for (const sub of readsOf(code, m[1], fns)) reads.add(m[2] ? `${m[2]}.${sub}` : sub);
  }
  return reads;
}

test("the console handles only types its socket sends, and reads only their fields", () => {
  const src = load("static/js/console.js");
  const fns = functionsOf(src);
  const problems = [];
  const check = (fnName, param, mapping, where, options) => {
    const [fn] = fns.get(fnName);
    const cases = switchCases(fn.body, param);
    assert.ok(cases.size > 5, `${fnName}'s switch found`);
    for (const [type, { code, group }] of cases) {
      if (!(type in mapping)) {
        problems.push(`${fnName}: ${where} has no "${type}"`);
        continue;
      }
      // Labels that share code (assistant.completed/interrupted/failed) may read what any of them has.
      const sharing = group.filter((t) => t in mapping).map((t) => mapping[t]);
      for (const path of unread(sharing, caseReads(fn.body, param, code, fns), options)) {
        problems.push(`${fnName} case "${type}" reads ${param}.${path}, which ${mapping[type]} does not have`);
      }
    }
    return cases;
  };
  check("onFrame", "frame", CONSOLE, "the console socket");
  check("drawItem", "item", TIMELINE, "a timeline", { messages: EVERY_MESSAGE });
  const lines = check("lineFor", "item", TIMELINE, "a timeline");
  // What drawItem writes under every line lineFor returns.
  for (const type of lines.keys()) {
    for (const path of unread([TIMELINE[type]], ["seq", "at"])) problems.push(`${type} has no ${path}`);
  }
  const [drawNote] = fns.get("drawNote");
  for (const path of unread([TIMELINE.note], readsOf(drawNote.body, drawNote.params[0], fns))) {
    problems.push(`drawNote reads ${path}, which a note does not have`);
  }
  const ownership = /var\s+OWNERSHIP_EVENTS\s*=\s*\{([^}]*)\}/.exec(src);
  assert.ok(ownership, "OWNERSHIP_EVENTS found");
  for (const m of ownership[1].matchAll(/"([^"]+)"\s*:/g)) {
    if (!(m[1] in TIMELINE)) problems.push(`OWNERSHIP_EVENTS lists "${m[1]}", which no timeline has`);
  }
  assert.deepEqual(problems, []);
});
