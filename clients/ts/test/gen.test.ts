// The committed src/gen is what scripts/gen.mjs writes from idl/*.thrift
// now: an IDL change without `npm run gen` fails here.

import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { root } from "./helpers.js";

test("src/gen is up to date with idl/*.thrift (npm run gen)", () => {
  const pkg = fileURLToPath(root);
  const tmp = mkdtempSync(join(tmpdir(), "noon-tsgen-"));
  try {
    execFileSync(process.execPath, [join(pkg, "scripts/gen.mjs"), join(pkg, "../../idl"), tmp], { stdio: "pipe" });
    const want = readdirSync(tmp).sort();
    assert.deepEqual(readdirSync(join(pkg, "src/gen")).sort(), want);
    for (const f of want) {
      assert.equal(readFileSync(join(pkg, "src/gen", f), "utf8"), readFileSync(join(tmp, f), "utf8"), `src/gen/${f} is stale: run npm run gen`);
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
});
