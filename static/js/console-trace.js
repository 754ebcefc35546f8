// @ts-check
/*
 * The "Timing" disclosure under each assistant reply in the agent console: the turn's waterfall (stage,
 * start, duration, status) from GET conversations/<id>/messages/<id>/trace/ (docs/architecture/tracing.md),
 * read when it is first opened.
 *
 * Bars are scaled to the turn's duration; their offsets and widths are set through element.style, which
 * the Content-Security-Policy allows (no inline <style>). The bars are hidden from assistive technology:
 * a table under them holds the same figures for screen readers. Everything the server sent goes in as
 * textContent (lib/el.js).
 */
import { el } from "./lib/el.js";

/**
 * @typedef {{ span_id: string, name: string, label: string, depth: number, offset_ms: number,
 *   duration_ms: number, status: string }} Stage
 * @typedef {{ message_id: string, trace_id: string, total_ms: number, stages: Stage[] }} Waterfall
 */

var counter = 0;

/** @param {number} value */
function ms(value) {
  return value >= 1000 ? (value / 1000).toFixed(2) + " s" : Math.round(value) + " ms";
}

/** @param {number} share */
function percent(share) {
  return (Math.max(0, Math.min(1, share)) * 100).toFixed(2) + "%";
}

/**
 * A button (aria-expanded) and the panel it opens; `load` fetches the waterfall the first time.
 * @param {{ load: () => Promise<Waterfall> }} options
 * @returns {HTMLElement}
 */
export function timingDisclosure(options) {
  counter += 1;
  var panelId = "reply-timing-" + counter;
  var button = el("button", {
    type: "button",
    className: "tl-timing-toggle",
    "aria-expanded": "false",
    "aria-controls": panelId,
    text: "Timing",
  });
  var panel = el("div", { className: "tl-timing", id: panelId, hidden: true });
  var state = "idle"; // idle | loading | shown
  button.addEventListener("click", function () {
    var open = button.getAttribute("aria-expanded") !== "true";
    button.setAttribute("aria-expanded", String(open));
    panel.hidden = !open;
    if (!open || state !== "idle") return;
    state = "loading";
    panel.textContent = "";
    panel.appendChild(el("p", { className: "wf-note", role: "status", text: "Loading the timing…" }));
    options.load().then(function (data) {
      state = "shown";
      waterfallRender(panel, data);
    }, function () {
      state = "idle"; // opening it again tries again
      panel.textContent = "";
      panel.appendChild(el("p", { className: "wf-note", role: "status", text: "The timing could not be loaded. Try again." }));
    });
  });
  return el("div", { className: "tl-timing-box" }, [button, panel]);
}

/**
 * @param {HTMLElement} panel
 * @param {Waterfall} data
 */
export function waterfallRender(panel, data) {
  panel.textContent = "";
  var stages = (data && Array.isArray(data.stages)) ? data.stages : [];
  if (!stages.length) {
    panel.appendChild(el("p", { className: "wf-note", text: "No timing was recorded for this reply." }));
    return;
  }
  var total = Math.max(Number(data.total_ms) || 0, 1);
  var bars = el("ol", { className: "wf", "aria-hidden": "true" });
  stages.forEach(function (stage) {
    var failed = stage.status === "error";
    var bar = el("span", { className: "wf-bar" });
    bar.style.marginLeft = percent(stage.offset_ms / total);
    bar.style.width = percent(Math.max(stage.duration_ms / total, 0.004));
    var label = el("span", {
      className: "wf-label",
      text: stage.label + " · " + ms(stage.duration_ms) + (failed ? " · failed" : ""),
    });
    label.style.paddingLeft = Math.min(stage.depth, 6) * 0.6 + "rem";
    bars.appendChild(el("li", { className: "wf-row", "data-status": stage.status, "data-name": stage.name }, [
      label,
      el("span", { className: "wf-track" }, [bar]),
    ]));
  });
  var rows = stages.map(function (stage) {
    return el("tr", null, [
      el("th", { scope: "row", text: stage.label }),
      el("td", { text: ms(stage.offset_ms) }),
      el("td", { text: ms(stage.duration_ms) }),
      el("td", { text: stage.status === "error" ? "failed" : "ok" }),
    ]);
  });
  var table = el("table", { className: "visually-hidden" }, [
    el("caption", { text: "Timing of this reply, " + ms(total) + " in all" }),
    el("thead", null, [el("tr", null, [
      el("th", { scope: "col", text: "Stage" }),
      el("th", { scope: "col", text: "Starts after" }),
      el("th", { scope: "col", text: "Duration" }),
      el("th", { scope: "col", text: "Status" }),
    ])]),
    el("tbody", null, rows),
  ]);
  panel.appendChild(el("p", { className: "wf-total", "aria-hidden": "true", text: "Whole turn: " + ms(total) }));
  panel.appendChild(bars);
  panel.appendChild(table);
}
