// Live collections against the real example server: snapshot, broadcasts
// with offsets, and resume after a server restart and a resync. The
// server's side of snapshots is being built; until it is on main these
// tests run only with RESTLIVE_SNAPSHOT=1.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { concurrentWrites, restart, resync } from "./scenarios.js";
import { buildApp, tempDir } from "./server.js";

const skip = process.env["RESTLIVE_SNAPSHOT"] !== "1" && "set RESTLIVE_SNAPSHOT=1 once the server sends snapshots and resumes";

let bin = "";
let removeBuild = async () => {};
before(async () => {
  if (skip) return;
  const { dir, remove } = await tempDir();
  removeBuild = remove;
  bin = await buildApp(dir);
});
after(() => removeBuild());

describe("live collections", { skip }, () => {
  test("equal GET of their list under concurrent writes", async (t) => {
    const { tap, watched } = await concurrentWrites(t, bin);
    for (const w of watched) assert.equal(w.collection.status, "live");
    const subscribed = tap.received.filter((f) => f["type"] === "subscribed");
    assert.equal(subscribed.length, watched.length);
    for (const f of subscribed) assert.equal(typeof f["offset"], "string", "a snapshot subscription is answered with an offset");
    for (const f of tap.received.filter((f) => f["type"] === "broadcast")) {
      assert.equal(typeof f["offset"], "string", "broadcasts of a snapshot subscription carry offsets");
    }
  });

  test("the server killed and restarted while another process writes: every collection resumes, and equals GET", async (t) => {
    const { tap, mark, watched } = await restart(t, bin);
    const after = tap.received.slice(mark);
    const resubscribes = tap.sent.filter((f) => f["since"] !== undefined);
    assert.equal(resubscribes.length, watched.length, "every collection asked to resume");
    const subscribed = after.filter((f) => f["type"] === "subscribed");
    assert.equal(subscribed.length, watched.length);
    // Only tasks changed while the server was down: the server can tell
    // which, so it resumes and sends no snapshot.
    for (const f of subscribed) assert.equal(f["resumed"], true, JSON.stringify(f));
    assert.equal(tap.count("snapshot", mark), 0, "no snapshot frame after the restart");
  });

  test("resync after the server's broker came back: every collection resumes, and equals GET", async (t) => {
    const result = await resync(t, bin);
    if (!result) return;
    const { tap, mark, watched } = result;
    const resumes = tap.sent.filter((f) => f["since"] !== undefined);
    assert.ok(resumes.length >= watched.length, "every collection resubscribed with since");
    assert.equal(tap.count("snapshot", mark), 0, "resumed, not refetched");
  });
});
