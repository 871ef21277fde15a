// The Network panel's decisions: which nodes a picture touches (the tiles' marks), and the words for a fault.
import { test } from "node:test";
import assert from "node:assert/strict";
import { describeLink, healsIn, touchedNodes } from "../src/network";

const nodes = ["node1", "node2", "node3", "node4"];

test("a link touches its two ends; '*' every node; a partition every node", () => {
  assert.deepEqual(touchedNodes({ links: [{ from: "node1", to: "node3", loss: "20%" }] }, nodes), ["node1", "node3"]);
  assert.deepEqual(touchedNodes({ links: [{ from: "node2", to: "*", rate: "1mbit" }] }, nodes), nodes);
  assert.deepEqual(touchedNodes({ partitions: [["node4"]] }, nodes), nodes);
  assert.deepEqual(touchedNodes({ links: [], partitions: [] }, nodes), []);
  assert.deepEqual(touchedNodes({ links: [{ from: "node9", to: "node1", loss: "1%" }] }, nodes), ["node1"]);
});

test("a fault in words, and when it heals", () => {
  assert.equal(describeLink({ from: "node1", to: "node2", loss: "20%", rate: "1mbit" }), "loss 20% · rate 1mbit");
  assert.equal(describeLink({ from: "node1", to: "node2", latency: "100ms", jitter: "10ms" }), "latency 100ms ± 10ms");
  const now = Date.parse("2026-12-03T08:00:00Z");
  assert.equal(healsIn("2026-12-03T08:00:42Z", now), "heals in 42 s");
  assert.equal(healsIn("2026-12-03T08:10:00Z", now), "heals in 10 min");
  assert.equal(healsIn("2026-12-03T07:59:00Z", now), "heals in 0 s");
  assert.equal(healsIn(undefined, now), "");
});
