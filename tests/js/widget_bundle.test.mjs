// The checked-in widget bundle (static/widget/widget.js) is exactly what esbuild builds from its sources:
// nobody edits the bundle by hand, and nobody forgets to rebuild it after editing static/widget/src/ or
// static/js/lib/. Fix a failure with `npm run build:widget`.

import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";

import { buildWidget } from "../../static/widget/build.mjs";

const CHECKED_IN = new URL("../../static/widget/widget.js", import.meta.url);

test("the checked-in widget bundle is a fresh build of its sources", async () => {
  const dir = mkdtempSync(join(tmpdir(), "widget-build-"));
  try {
    const outfile = join(dir, "widget.js");
    await buildWidget(outfile);
    const fresh = readFileSync(outfile, "utf8");
    const current = readFileSync(CHECKED_IN, "utf8");
    assert.ok(
      fresh === current,
      "static/widget/widget.js differs from a build of static/widget/src/: run `npm run build:widget` " +
        "(and never edit the bundle by hand)",
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("the bundle is one classic script that defines no globals of its own", () => {
  const bundle = readFileSync(CHECKED_IN, "utf8");
  assert.doesNotMatch(bundle, /^\s*(import|export)\s/m, "no module syntax: a plain <script> tag loads it");
  // After the banner, the whole bundle is one immediately invoked function.
  const body = bundle.replace(/^\/\*[\s\S]*?\*\/\s*"use strict";\s*/, "");
  assert.match(body, /^\(\(\) => \{/);
  assert.match(body, /\}\)\(\);\s*$/);
});
