// The browser's half of the terminal protocol against the byte layouts of terminal/PROTOCOL.md.
import { test } from "node:test";
import assert from "node:assert/strict";
import * as proto from "../src/protocol";

const bytes = (...parts: (string | number[])[]) =>
  Uint8Array.from(parts.flatMap((p) => (typeof p === "string" ? [...p].map((c) => c.charCodeAt(0)) : p)));
const u64 = (n: number) => [0, 0, 0, 0, (n >>> 24) & 255, (n >>> 16) & 255, (n >>> 8) & 255, n & 255];

test("client messages have the documented layout", () => {
  assert.deepEqual(proto.hello("driver", 120, 40, 70000), bytes("h", [1, 0, 0, 120, 0, 40], u64(70000)));
  assert.deepEqual(proto.hello("viewer", 80, 24, 0), bytes("h", [1, 1, 0, 80, 0, 24], u64(0)));
  assert.deepEqual(proto.input(bytes("ls\r")), bytes("ils\r"));
  assert.deepEqual(proto.resize(1000, 500), bytes("r", [3, 232, 1, 244]));
  assert.deepEqual(proto.ack(65536), bytes("a", u64(65536)));
  assert.deepEqual(proto.ping(bytes("x")), bytes("px"));
});

test("server messages decode", () => {
  assert.deepEqual(proto.decode(bytes("W", [1, 1], u64(5), [1, 0, 80, 0, 24])),
    { type: "welcome", role: "viewer", first: 5, lost: true, cols: 80, rows: 24 });
  const out = proto.decode(bytes("o", u64(300), "héllo"));
  assert.equal(out.type, "output");
  assert.equal(out.type === "output" && out.offset, 300);
  assert.deepEqual(out.type === "output" && [...out.data], [...bytes("héllo")]);
  assert.deepEqual(proto.decode(bytes("l", u64(9))), { type: "lost", offset: 9 });
  assert.deepEqual(proto.decode(bytes("s", [0, 100, 0, 30])), { type: "size", cols: 100, rows: 30 });
  assert.deepEqual(proto.decode(bytes("x", [255, 255, 255, 255])), { type: "exit", code: -1 });
  assert.equal(proto.decode(bytes("P")).type, "pong");
});

test("malformed server messages are errors, not guesses", () => {
  for (const bad of [bytes(), bytes("W", [1, 0]), bytes("o", [0, 0]), bytes("l"), bytes("s", [0]), bytes("x", [0, 0]),
    bytes("?"), bytes("o", [255, 255, 255, 255, 255, 255, 255, 255])]) {
    assert.throws(() => proto.decode(bad), proto.ProtocolError, `decoding ${[...bad]}`);
  }
});
