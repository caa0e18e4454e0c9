// The package as npm would ship it: its exports resolve, its types are
// there, it depends on nothing at run time, and it packs only what it
// should.

import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

const dir = fileURLToPath(new URL("../../", import.meta.url));
const pkg = JSON.parse(readFileSync(new URL("package.json", `file://${dir}`), "utf8"));

test("package.json: ESM, exports with types, a version, no runtime dependencies", () => {
  assert.equal(pkg.name, "@restlive/client");
  assert.match(pkg.version, /^\d+\.\d+\.\d+$/);
  assert.equal(pkg.type, "module");
  assert.equal(pkg.dependencies, undefined);
  assert.equal(pkg.peerDependencies, undefined);
  const root = pkg.exports["."];
  assert.ok(existsSync(`${dir}/${root.types}`), root.types);
  assert.ok(existsSync(`${dir}/${root.default}`), root.default);
  assert.ok(pkg.engines.node);
});

test("imports by its name, through exports", async () => {
  const mod = await import("@restlive/client");
  for (const name of ["LiveClient", "LiveCollection", "Subscription", "SubscriptionError", "ConnectionError", "fullJitter"]) {
    assert.equal(typeof (mod as Record<string, unknown>)[name], "function", name);
  }
});

test("the built code imports nothing", () => {
  for (const file of ["index", "client", "collection", "subscription", "protocol", "socket", "errors", "backoff", "internal", "env"]) {
    const js = readFileSync(`${dir}/dist/${file}.js`, "utf8");
    for (const [, spec] of js.matchAll(/\bfrom "([^"]+)"/g)) assert.match(spec!, /^\.\/[a-z]+\.js$/, `${file}.js imports ${spec}`);
  }
});

test("packs dist, src, the README and package.json; no tests", async () => {
  const { stdout } = await promisify(execFile)("npm", ["pack", "--dry-run", "--json", "--ignore-scripts"], { cwd: dir });
  const files: string[] = JSON.parse(stdout)[0].files.map((f: { path: string }) => f.path);
  for (const f of ["package.json", "README.md", "dist/index.js", "dist/index.d.ts", "src/index.ts"]) assert.ok(files.includes(f), f);
  assert.deepEqual(files.filter((f) => /^(test|build|node_modules)\//.test(f)), []);
});
