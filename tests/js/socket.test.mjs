// The reconnecting socket's pure rules (static/js/lib/socket.js): stored events applied once and in
// order by `seq`, a gap caught up from the last applied seq, duplicates dropped; the outbox keeping what
// was not acknowledged across reconnects and sending it once per connection; the backoff growing, capped,
// and jittered within its bounds. The widget's Chromium tests exercise the same code through the bundle.

import assert from "node:assert/strict";
import { test } from "node:test";

import { Outbox, SeqTracker, backoff } from "../../static/js/lib/socket.js";

/** Plays a connection: events pushed live, a catch-up read answering a gap, and what got applied. */
function replay(pushes, stored) {
  const seqs = new SeqTracker();
  const applied = [];
  const catchUps = [];
  const offer = (seq, fromCatchUp) => {
    const verdict = seqs.accept(seq, fromCatchUp);
    if (verdict === "apply") applied.push(seq);
    if (verdict === "gap") {
      catchUps.push(seqs.last);
      // GET /events?after=<last>: the stored events after it, the pushed one included.
      for (const s of stored.filter((s) => s > seqs.last)) offer(s, true);
    }
    return verdict;
  };
  const verdicts = pushes.map((seq) => offer(seq, false));
  return { seqs, applied, catchUps, verdicts };
}

test("events in order are applied in order", () => {
  const { applied, catchUps, verdicts, seqs } = replay([1, 2, 3, 4], [1, 2, 3, 4]);
  assert.deepEqual(applied, [1, 2, 3, 4]);
  assert.deepEqual(catchUps, []);
  assert.deepEqual(verdicts, ["apply", "apply", "apply", "apply"]);
  assert.equal(seqs.last, 4);
  assert.equal(seqs.behind(), false);
});

test("a gap is caught up from the last applied seq, and the late push is then a duplicate", () => {
  // 3 and 4 were lost on the way; 5 arrives live, then 4 arrives late.
  const { applied, catchUps, verdicts, seqs } = replay([1, 2, 5, 4], [1, 2, 3, 4, 5]);
  assert.deepEqual(catchUps, [2], "read after seq 2");
  assert.deepEqual(applied, [1, 2, 3, 4, 5]);
  assert.deepEqual(verdicts, ["apply", "apply", "gap", "duplicate"]);
  assert.equal(seqs.last, 5);
});

test("a gap not filled yet is not applied, and behind() says to read again", () => {
  const seqs = new SeqTracker();
  assert.equal(seqs.accept(1), "apply");
  assert.equal(seqs.accept(4), "gap");
  assert.equal(seqs.last, 1, "nothing past the gap applied");
  assert.equal(seqs.behind(), true);
  // The catch-up read returned only 2 (more was still being written): still behind.
  assert.equal(seqs.accept(2, true), "apply");
  assert.equal(seqs.behind(), true);
  assert.equal(seqs.accept(3, true), "apply");
  assert.equal(seqs.accept(4, true), "apply");
  assert.equal(seqs.behind(), false);
});

test("duplicates are dropped, whether pushed again or replayed after a reconnect", () => {
  const seqs = new SeqTracker();
  for (const seq of [1, 2, 3]) seqs.accept(seq);
  assert.equal(seqs.accept(2), "duplicate");
  assert.equal(seqs.accept(3, true), "duplicate");
  assert.equal(seqs.accept(1, true), "duplicate");
  assert.equal(seqs.last, 3);
  seqs.reset(); // another conversation: it starts from 0 again
  assert.equal(seqs.accept(1), "apply");
});

const message = (id) => ({ client_msg_id: id, text: `text ${id}`, conversation_id: "c1" });
const ids = (items) => items.map((item) => item.client_msg_id);

test("the outbox sends each message once per connection, however often it is flushed", () => {
  const outbox = new Outbox();
  outbox.add(message("a"));
  outbox.add(message("b"));
  assert.deepEqual(ids(outbox.takeUnsent()), ["a", "b"]);
  assert.deepEqual(ids(outbox.takeUnsent()), [], "already in flight on this connection");
  outbox.add(message("c"));
  assert.deepEqual(ids(outbox.takeUnsent()), ["c"]);
});

test("unacknowledged messages survive a reconnect and are sent again once; an ack clears one", () => {
  const outbox = new Outbox();
  for (const id of ["a", "b", "c"]) outbox.add(message(id));
  outbox.takeUnsent();
  assert.equal(outbox.remove("b"), true, "b acknowledged");
  assert.equal(outbox.remove("b"), false, "a second ack changes nothing");
  outbox.reconnected(); // the socket closed before a and c were acknowledged
  assert.deepEqual(ids(outbox.takeUnsent()), ["a", "c"]);
  assert.deepEqual(ids(outbox.takeUnsent()), []);
  outbox.remove("a");
  outbox.remove("c");
  outbox.reconnected();
  assert.deepEqual(ids(outbox.takeUnsent()), [], "nothing acknowledged is ever sent again");
  assert.equal(outbox.size(), 0);
});

test("a message answered without an ack (rate limited) goes out again on the next flush", () => {
  const outbox = new Outbox();
  outbox.add(message("a"));
  outbox.takeUnsent();
  outbox.release("a");
  assert.deepEqual(ids(outbox.takeUnsent()), ["a"]);
  assert.equal(outbox.newest().client_msg_id, "a");
});

test("the outbox is bounded, and a restore keeps only well-formed items of this conversation", () => {
  const outbox = new Outbox({ max: 3 });
  for (const id of ["a", "b", "c"]) outbox.add(message(id));
  assert.equal(outbox.full(), true);
  // What localStorage gave back after a reload (as JSON), with junk and another conversation's message.
  const saved = JSON.parse(
    JSON.stringify([
      message("1"),
      null,
      { client_msg_id: "x", text: 5, conversation_id: "c1" },
      { ...message("other"), conversation_id: "c2" },
      message("2"),
      message("3"),
      message("4"),
    ]),
  );
  const restored = new Outbox({ max: 3 });
  assert.deepEqual(ids(restored.restore(saved, "c1")), ["2", "3", "4"], "the newest three of c1");
  assert.deepEqual(ids(restored.takeUnsent()), ["2", "3", "4"]);
  assert.deepEqual(ids(new Outbox().restore("not a list", "c1")), []);
  restored.clear();
  assert.equal(restored.size(), 0);
});

test("backoff doubles from its base up to its cap", () => {
  const top = () => 1; // the largest draw: the ceiling itself
  const delays = [1, 2, 3, 4, 5, 6, 7, 8].map((n) => backoff(n, { baseMs: 500, capMs: 10000, random: top }));
  assert.deepEqual(delays, [500, 1000, 2000, 4000, 8000, 10000, 10000, 10000]);
  assert.equal(backoff(0, { baseMs: 500, capMs: 10000, random: top }), 500, "attempt 0 waits like the first");
  assert.equal(backoff(50, { baseMs: 1000, capMs: 30000, random: top }), 30000, "no overflow past the cap");
});

test("backoff's jitter stays between half the ceiling and the ceiling", () => {
  for (const n of [1, 3, 6, 12]) {
    const ceiling = Math.min(10000, 500 * 2 ** (n - 1));
    assert.equal(backoff(n, { random: () => 0 }), Math.round(ceiling / 2), "lowest draw");
    assert.equal(backoff(n, { random: () => 0.5 }), Math.round(ceiling * 0.75));
    for (let i = 0; i < 200; i++) {
      const delay = backoff(n);
      assert.ok(delay >= ceiling / 2 && delay <= ceiling, `${delay} within [${ceiling / 2}, ${ceiling}]`);
    }
  }
  // Real draws spread out: ten tabs reconnecting after a restart do not all pick the same moment.
  const spread = new Set(Array.from({ length: 10 }, () => backoff(5)));
  assert.ok(spread.size > 1);
});
