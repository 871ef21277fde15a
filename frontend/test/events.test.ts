// The page's way of listening to a stream of server-sent events, against a stand-in for the browser's EventSource.
import { test } from "node:test";
import assert from "node:assert/strict";
import { listen } from "../src/events";

class FakeSource {
  static CLOSED = 2;
  static made: FakeSource[] = [];
  readyState = 0;
  closed = false;
  handlers = new Map<string, ((e: { data: string }) => void)[]>();
  onopen?: () => void;
  onerror?: () => void;
  constructor(readonly url: string) {
    FakeSource.made.push(this);
  }
  addEventListener(type: string, f: (e: { data: string }) => void) {
    this.handlers.set(type, [...(this.handlers.get(type) ?? []), f]);
  }
  emit(type: string, data: string) {
    for (const f of this.handlers.get(type) ?? []) f({ data });
  }
  close() {
    this.closed = true;
    this.readyState = FakeSource.CLOSED;
  }
}

test("events of the named types reach the handler; a stream the server closed opens again, later each time", (t) => {
  t.mock.timers.enable({ apis: ["setTimeout"] });
  (globalThis as Record<string, unknown>).EventSource = FakeSource;
  FakeSource.made = [];
  const got: string[] = [];
  const downs: boolean[] = [];
  const stop = listen("/api/v1/attendee/events?token=t", ["attendee", "message"], (type, data) => got.push(`${type}:${data}`),
    (down) => downs.push(down));
  const first = FakeSource.made[0];
  assert.equal(first.url, "/api/v1/attendee/events?token=t");
  first.onopen?.();
  first.emit("attendee", "{}");
  first.emit("message", '{"text":"hi"}');
  first.emit("other", "x");
  assert.deepEqual(got, ["attendee:{}", 'message:{"text":"hi"}']);

  first.readyState = 0; // the browser is trying again by itself: nothing to do
  first.onerror?.();
  t.mock.timers.tick(60_000);
  assert.equal(FakeSource.made.length, 1);

  first.readyState = FakeSource.CLOSED;
  first.onerror?.();
  t.mock.timers.tick(1999);
  assert.equal(FakeSource.made.length, 1, "not before 2 s");
  t.mock.timers.tick(1);
  assert.equal(FakeSource.made.length, 2);
  const second = FakeSource.made[1];
  second.readyState = FakeSource.CLOSED;
  second.onerror?.();
  t.mock.timers.tick(3999);
  assert.equal(FakeSource.made.length, 2, "the pause doubles");
  t.mock.timers.tick(1);
  assert.equal(FakeSource.made.length, 3);
  assert.deepEqual(downs, [false, true, true, true]);

  const third = FakeSource.made[2];
  third.readyState = FakeSource.CLOSED;
  third.onerror?.();
  stop();
  assert.equal(third.closed, true);
  t.mock.timers.tick(120_000);
  assert.equal(FakeSource.made.length, 3, "stopped: nothing opens again");
});
