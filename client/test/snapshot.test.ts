// Live collections against the real example server: snapshots and
// broadcasts with offsets under concurrent writes; a resync after a broker
// outage, and a server killed and restarted while another process writes,
// after which every collection resumes and equals GET.
//
// A resume must answer for changes committed but not yet published when it
// is served (the outage's writes, or those made while a restarted process
// waits for the SQLite outbox's lease): the scope the server reads already
// shows them, so they would never be broadcast after.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { concurrentWrites, restart, resync, type Tap } from "./scenarios.js";
import { buildApp, tempDir } from "./server.js";

let bin = "";
let removeBuild = async () => {};
before(async () => {
  const { dir, remove } = await tempDir();
  removeBuild = remove;
  bin = await buildApp(dir);
});
after(() => removeBuild());

// How the subscriptions answered after index mark: resumed, or a snapshot.
function answers(tap: Tap, mark: number) {
  const subscribed = tap.received.slice(mark).filter((f) => f["type"] === "subscribed");
  return {
    subscribed,
    resumed: subscribed.filter((f) => f["resumed"] === true).length,
    snapshotFrames: tap.count("snapshot", mark),
  };
}

describe("live collections", () => {
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

  test("resync after the server's broker came back: every collection resumes from its offset, and equals GET", async (t) => {
    const result = await resync(t, bin);
    if (!result) return;
    const { tap, mark, watched } = result;
    const resumes = tap.sent.filter((f) => f["since"] !== undefined);
    assert.ok(resumes.length >= watched.length, "every collection resubscribed with since");
    const { subscribed, resumed, snapshotFrames } = answers(tap, mark);
    t.diagnostic(`after the resync: ${resumed} of ${subscribed.length} resumed, ${snapshotFrames} snapshot frames`);
    // Only tasks changed meanwhile: the server can tell which.
    for (const f of subscribed) assert.equal(f["resumed"], true, JSON.stringify(f));
    assert.equal(snapshotFrames, 0, "resumed, not refetched");
  });

  test("the server killed and restarted while another process writes: every collection resumes, and equals GET", async (t) => {
    const { tap, mark, watched } = await restart(t, bin);
    const resubscribes = tap.sent.filter((f) => f["since"] !== undefined);
    assert.equal(resubscribes.length, watched.length, "every collection asked to resume, from its own offset");
    const { subscribed, resumed, snapshotFrames } = answers(tap, mark);
    assert.equal(subscribed.length, watched.length);
    t.diagnostic(`after the restart: ${resumed} of ${subscribed.length} resumed, ${snapshotFrames} snapshot frames`);
    // Only tasks changed while the server was down: the server can tell
    // which, so it resumes every collection.
    for (const f of subscribed) assert.equal(f["resumed"], true, JSON.stringify(f));
    assert.equal(snapshotFrames, 0, "resumed, not refetched");
  });
});
