// The workshop pages' decisions: codes, countdowns, the streams' events, the join page's views, the instructor's table.
import { test } from "node:test";
import assert from "node:assert/strict";
import * as w from "../src/workshop";
import type { Attendee, AttendeeView, Workshop } from "../src/workshop-types";

test("codes are normalized as people type them, and checked against the alphabet", () => {
  assert.equal(w.normalizeCode(" abc-def "), "ABCDEF");
  assert.equal(w.normalizeCode("ab c\td-e f"), "ABCDEF");
  assert.equal(w.normalizeCode("k7m-2qx"), "K7M2QX");
  for (const ok of ["K7M2QX", "234567", "ZZZZZZ", w.normalizeCode("hjk-mnp")]) assert.equal(w.codeProblem(ok), "", ok);
  assert.match(w.codeProblem(""), /Type/);
  assert.match(w.codeProblem("K7M2Q"), /6 characters; this has 5/);
  assert.match(w.codeProblem("K7M2QXY"), /this has 7/);
  assert.match(w.codeProblem("K7M2Q0"), /no 0 .*without O, I and L/);
  assert.match(w.codeProblem("KIMLQX"), /no I L/);
  assert.match(w.codeProblem("K7M2Q!"), /no !\.$/);
  for (const c of w.codeAlphabet) assert.equal(w.codeProblem(c.repeat(6)), "");
});

test("display names have 1 to 40 characters, counted as people see them", () => {
  assert.equal(w.nameProblem("Ada"), "");
  assert.equal(w.nameProblem("é".repeat(40)), "");
  assert.equal(w.nameProblem("😀".repeat(40)), "");
  assert.match(w.nameProblem("   "), /Type/);
  assert.match(w.nameProblem("x".repeat(41)), /this has 41/);
});

test("countdowns show seconds, rounded up, never negative", () => {
  const cases: [number, string][] = [
    [0, "00:00"], [-5000, "00:00"], [1, "00:01"], [999, "00:01"], [1000, "00:01"], [1001, "00:02"],
    [59_000, "00:59"], [60_000, "01:00"], [45 * 60_000 + 7000, "45:07"], [3600_000, "1:00:00"],
    [3723_000, "1:02:03"], [86400_000, "1 d 00:00:00"], [2 * 86400_000 + 3 * 3600_000 + 4 * 60_000 + 5000, "2 d 03:04:05"],
  ];
  for (const [ms, want] of cases) assert.equal(w.formatCountdown(ms), want, `${ms} ms`);
});

test("last activity reads as how long ago", () => {
  assert.equal(w.formatAgo(0), "just now");
  assert.equal(w.formatAgo(-3000), "just now"); // a clock a little ahead
  assert.equal(w.formatAgo(12_400), "12 s ago");
  assert.equal(w.formatAgo(60_000), "1 min ago");
  assert.equal(w.formatAgo(3599_000), "59 min ago");
  assert.equal(w.formatAgo(2 * 3600_000), "2 h ago");
  assert.equal(w.formatAgo(4 * 86400_000), "4 d ago");
});

test("the training's clock warns from 5 minutes before the end", () => {
  assert.equal(w.warnFor(5 * 60_000 + 1), "quiet");
  assert.equal(w.warnFor(5 * 60_000), "soon");
  assert.equal(w.warnFor(1), "soon");
  assert.equal(w.warnFor(0), "over");
});

test("the queue's estimate comes from how fast it moved", () => {
  let s: w.QueueSample[] = [];
  s = w.observe(s, 10, 0);
  assert.equal(w.queueEstimate(s, 0), undefined, "no movement seen yet");
  s = w.observe(s, 10, 5000);
  assert.equal(s.length, 1, "the same position is not a sample");
  s = w.observe(s, 8, 60_000);
  assert.equal(w.queueEstimate(s, 60_000), 8 * 30_000, "2 places a minute: 8 places in 4 minutes");
  assert.equal(w.formatEstimate(w.queueEstimate(s, 60_000)!), "about 4 min");
  s = w.observe(s, 12, 70_000);
  assert.deepEqual(s, [{ at: 70_000, position: 12 }], "sent back: the rate starts again");
  assert.equal(w.formatEstimate(30_000), "under a minute");
  assert.equal(w.formatEstimate(3 * 3600_000), "about 3 h");
});

const info = { title: "Swarm 101", state: "open" as const, seats_left: 3 };
const view = (v: Partial<AttendeeView>): AttendeeView => ({ state: "waiting", title: "Swarm 101", messages: [], ...v });

test("the join page shows the view for the attendee's state, else for the workshop's", () => {
  assert.deepEqual(w.joinView({}), { kind: "loading" });
  assert.deepEqual(w.joinView({ failed: 404 }), { kind: "unknown" });
  assert.deepEqual(w.joinView({ failed: 429, message: "slow down" }), { kind: "error", message: "slow down" });
  assert.deepEqual(w.joinView({ info }), { kind: "form", info });
  assert.equal(w.joinView({ info: { ...info, state: "locked" } }).kind, "locked");
  assert.equal(w.joinView({ info: { ...info, state: "ended" } }).kind, "over");
  const at = "2026-12-02T10:00:00Z";
  assert.deepEqual(w.joinView({ info, attendee: view({ state: "waiting", starts_at: at }) }), { kind: "waiting", startsAt: at });
  assert.deepEqual(w.joinView({ attendee: view({ state: "queued", position: 4 }) }), { kind: "queued", position: 4 });
  assert.deepEqual(w.joinView({ attendee: view({ state: "active" }) }), { kind: "preparing" });
  assert.deepEqual(w.joinView({ attendee: view({ state: "active", session_id: "s1", session_token: "t" }) }),
    { kind: "enter", sessionId: "s1", sessionToken: "t" });
  assert.deepEqual(w.joinView({ attendee: view({ state: "ended", end_reason: "idle" }) }), { kind: "ended", reason: "idle" });
  assert.deepEqual(w.joinView({ attendee: view({ state: "ended" }) }), { kind: "ended", reason: "workshop_ended" });
  assert.equal(w.joinView({ info: { ...info, state: "ended" }, attendee: view({ state: "active", session_id: "s" }) }).kind,
    "enter", "a joined attendee's own state wins");
  assert.equal(w.endedWhy("workshop_ended"), "The workshop has ended.");
  assert.match(w.endedWhy("strange"), /strange/);
});

test("the attendee's stream: events decode, malformed ones are dropped, messages merge newest first", () => {
  assert.equal(w.attendeeEvent("state", "{"), undefined);
  assert.equal(w.attendeeEvent("state", "[]"), undefined);
  assert.equal(w.attendeeEvent("state", '{"state":"bored"}'), undefined);
  assert.equal(w.attendeeEvent("message", '{"text":"hi"}'), undefined);
  assert.equal(w.attendeeEvent("ping", '{"state":"active"}'), undefined);
  const ev = w.attendeeEvent("state", JSON.stringify({ state: "queued", position: 2, title: "T" }));
  assert.deepEqual(ev, { kind: "attendee", view: { state: "queued", position: 2, title: "T", messages: [] } });
  const m1 = { at: "2026-12-02T10:00:00Z", text: "welcome" };
  const m2 = { at: "2026-12-02T10:05:00Z", text: "break at 11" };
  let a = w.applyAttendeeEvent(undefined, ev!);
  a = w.applyAttendeeEvent(a, w.attendeeEvent("message", JSON.stringify(m1))!);
  a = w.applyAttendeeEvent(a, w.attendeeEvent("message", JSON.stringify({ ...m2, extra: 1 }))!);
  a = w.applyAttendeeEvent(a, w.attendeeEvent("message", JSON.stringify(m1))!);
  assert.deepEqual(a!.messages, [m2, m1]);
  a = w.applyAttendeeEvent(a, w.attendeeEvent("state", JSON.stringify({ state: "active", session_id: "s", title: "T",
    messages: [m1, { at: 3 }] }))!);
  assert.equal(a!.state, "active");
  assert.deepEqual(a!.messages, [m2, m1], "a state without the messages seen so far keeps them");
  assert.equal(w.applyAttendeeEvent(undefined, { kind: "message", message: m1 }), undefined);
});

const attendee = (id: string, state: Attendee["state"], extra: Partial<Attendee> = {}): Attendee => ({ id, name: id, state, ...extra });
const workshop: Workshop = { id: "w1", code: "K7M2QX", title: "Swarm 101", template: "swarm-1m1w", seats: 2,
  locked: false, join_url: "http://x/w/K7M2QX", messages: [],
  attendees: [attendee("a", "active", { session_id: "s1" }), attendee("b", "queued", { position: 1 })] };

test("the dashboard applies attendee events to its table, and workshop events to the rest", () => {
  assert.equal(w.applyWorkshopEvent(undefined, { kind: "attendee", attendee: attendee("a", "ended") }), undefined);
  const ev = w.workshopEvent("attendee", JSON.stringify(attendee("b", "active", { session_id: "s2",
    nodes: [{ name: "node1", status: "running" }] })));
  let ws = w.applyWorkshopEvent(workshop, ev!)!;
  assert.deepEqual(ws.attendees.map((a) => [a.id, a.state]), [["a", "active"], ["b", "active"]], "replaced in place");
  assert.deepEqual(ws.attendees[1].nodes, [{ name: "node1", status: "running" }]);
  assert.equal(workshop.attendees[1].state, "queued", "the old state is not changed");
  ws = w.applyWorkshopEvent(ws, w.workshopEvent("attendee", JSON.stringify(attendee("c", "waiting")))!)!;
  assert.deepEqual(ws.attendees.map((a) => a.id), ["a", "b", "c"], "a new attendee goes at the end");
  assert.deepEqual(w.countStates(ws.attendees), { waiting: 1, queued: 0, active: 2, ended: 0 });
  const up = w.workshopEvent("workshop", JSON.stringify({ ...workshop, locked: true, seats: 5, attendees: [] }));
  ws = w.applyWorkshopEvent(ws, up!)!;
  assert.equal(ws.locked, true);
  assert.equal(ws.seats, 5);
  assert.equal(ws.attendees.length, 3, "a workshop event keeps the table");
  assert.equal(w.workshopEvent("attendee", '{"id":"x"}'), undefined);
  assert.equal(w.workshopEvent("workshop", '{"title":"x"}'), undefined);
  assert.equal(w.workshopEvent("attendee", "not json"), undefined);
});

test("the attendance list is saved under the server's name, made safe, or one of its own", () => {
  const now = new Date(2026, 11, 2, 9, 30);
  assert.equal(w.attendanceFilename(null, "K7M2QX", now), "attendance-K7M2QX-2026-12-02.csv");
  assert.equal(w.attendanceFilename('attachment; filename="swarm-101.csv"', "K7M2QX", now), "swarm-101.csv");
  assert.equal(w.attendanceFilename("attachment; filename=list.csv", "K", now), "list.csv");
  assert.equal(w.attendanceFilename("attachment; filename*=UTF-8''J%C3%BCrgen%20list.csv; filename=\"x.csv\"", "K", now),
    "Jürgen list.csv");
  assert.equal(w.attendanceFilename('attachment; filename="../../etc/passwd"', "K", now), "passwd");
  assert.equal(w.attendanceFilename('attachment; filename="a:b?.csv"', "K", now), "a_b_.csv");
  assert.equal(w.attendanceFilename('attachment; filename=".hidden"', "K", now), "attendance-K-2026-12-02.csv");
  assert.equal(w.attendanceFilename("attachment; filename*=UTF-8''%E0%A4%A", "K", now), "attendance-K-2026-12-02.csv");
  assert.equal(w.attendanceFilename("attachment", "", now), "attendance-workshop-2026-12-02.csv");
});

test("the spoken countdown changes seldom enough to be read out", () => {
  const cases: [number, string][] = [[0, "now"], [1000, "10 seconds"], [11_000, "20 seconds"], [60_000, "60 seconds"],
    [61_000, "2 minutes"], [60 * 60_000, "60 minutes"], [61 * 60_000, "1 hour 15 minutes"], [2 * 3600_000, "2 hours"],
    [2 * 3600_000 + 1000, "2 hours 15 minutes"]];
  for (const [ms, want] of cases) assert.equal(w.spokenCountdown(ms), want, `${ms} ms`);
});

test("addresses route to their page", async () => {
  const { route } = await import("../src/routes");
  assert.deepEqual(route("/"), {});
  assert.deepEqual(route("/s/abc_1-2"), { session: "abc_1-2" });
  assert.deepEqual(route("/w/K7M2QX"), { join: "K7M2QX" });
  assert.deepEqual(route("/w/k7m-2qx/"), { join: "k7m-2qx" });
  assert.deepEqual(route("/w/k7m%202qx"), { join: "k7m 2qx" }, "a typed space comes back as typed");
  assert.deepEqual(route("/w/%E0%A4"), { join: "%E0%A4" });
  assert.deepEqual(route("/w/ws-1/instructor"), { instructor: "ws-1" });
  assert.deepEqual(route("/w/a/b"), {});
  assert.deepEqual(route("/x"), {});
});
