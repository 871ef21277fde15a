// What the workshop pages decide, as pure functions (no DOM, no fetch), so that node --test covers them: access
// codes, countdowns, the events of the two streams, which view the join page shows, and the instructor's table.

import type {
  Attendee, AttendeeState, AttendeeView, Broadcast, JoinInfo, Workshop, WorkshopUpdate,
} from "./workshop-types";

/** codeAlphabet is what access codes are made of: no 0/O, 1/I/L, so that a code read aloud is typed right. */
export const codeAlphabet = "23456789ABCDEFGHJKMNPQRSTUVWXYZ";
export const codeLength = 6;

/** normalizeCode is the code as the server knows it: upper case, without the dashes and spaces people type. */
export function normalizeCode(typed: string): string {
  return typed.replace(/[\s-]+/g, "").toUpperCase();
}

/** codeProblem says what is wrong with a normalized code, or "" when it is one. */
export function codeProblem(code: string): string {
  if (!code) return "Type the workshop's access code.";
  const bad = [...code].filter((c) => !codeAlphabet.includes(c));
  if (bad.length) {
    const similar = bad.some((c) => "01OIL".includes(c));
    return `A code has no ${[...new Set(bad)].join(" ")}${similar ? " (codes use 2-9 and letters without O, I and L)" : ""}.`;
  }
  if (code.length !== codeLength) return `A code has ${codeLength} characters; this has ${code.length}.`;
  return "";
}

/** nameProblem says what is wrong with a display name, or "" when it will do. */
export function nameProblem(name: string): string {
  const n = [...name.trim()].length;
  if (n === 0) return "Type the name others will see.";
  if (n > 40) return `A name has at most 40 characters; this has ${n}.`;
  return "";
}

const pad = (n: number) => String(n).padStart(2, "0");

/** formatCountdown shows a duration to the second, rounded up: 45:07, 1:02:03, 2 d 03:04:05; never negative. */
export function formatCountdown(ms: number): string {
  const all = Math.max(0, Math.ceil(ms / 1000));
  const d = Math.floor(all / 86400);
  const h = Math.floor((all % 86400) / 3600);
  const m = Math.floor((all % 3600) / 60);
  const s = all % 60;
  if (d > 0) return `${d} d ${pad(h)}:${pad(m)}:${pad(s)}`;
  return h > 0 ? `${h}:${pad(m)}:${pad(s)}` : `${pad(m)}:${pad(s)}`;
}

/** formatAgo says how long ago something was: "just now", "12 s ago", "3 min ago", "2 h ago", "4 d ago". */
export function formatAgo(ms: number): string {
  const s = Math.floor(Math.max(0, ms) / 1000);
  if (s < 1) return "just now";
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return `${Math.floor(s / 86400)} d ago`;
}

/** warnFor is how loud the training's clock is: quiet, soon (5 minutes or less), or over. */
export function warnFor(leftMs: number): "quiet" | "soon" | "over" {
  return leftMs <= 0 ? "over" : leftMs <= 5 * 60_000 ? "soon" : "quiet";
}

/** A queue position as the page saw it, at its own clock's time. */
export interface QueueSample {
  at: number;
  position: number;
}

/** observe adds a position to the samples, keeping the last 20 and dropping those from before a move back. */
export function observe(samples: QueueSample[], position: number, at: number): QueueSample[] {
  const last = samples[samples.length - 1];
  if (last && last.position === position) return samples;
  const kept = last && position > last.position ? [] : samples; // sent back (seats removed): start again
  return [...kept, { at, position }].slice(-20);
}

/** queueEstimate is how long until the seat, in ms, from how fast the queue moved; undefined before it moved. */
export function queueEstimate(samples: QueueSample[], now: number): number | undefined {
  if (samples.length < 2) return undefined;
  const first = samples[0];
  const last = samples[samples.length - 1];
  const moved = first.position - last.position;
  const took = now - first.at;
  if (moved <= 0 || took <= 0) return undefined;
  return (last.position * took) / moved;
}

/** formatEstimate puts an estimate in words: "under a minute", "about 4 min", "about 2 h". */
export function formatEstimate(ms: number): string {
  if (ms < 60_000) return "under a minute";
  const min = Math.ceil(ms / 60_000);
  return min < 90 ? `about ${min} min` : `about ${Math.round(min / 60)} h`;
}

/** What the join page shows. */
export type JoinView =
  | { kind: "loading" }
  | { kind: "unknown" } // no workshop has this code
  | { kind: "form"; info: JoinInfo } // open: a name and Join
  | { kind: "locked"; info: JoinInfo } // not taking anyone now
  | { kind: "over"; info: JoinInfo } // ended before this person joined
  | { kind: "waiting"; startsAt?: string }
  | { kind: "queued"; position?: number }
  | { kind: "preparing" } // active, but the session is not there yet
  | { kind: "enter"; sessionId: string; sessionToken?: string }
  | { kind: "ended"; reason: string }
  | { kind: "error"; message: string };

/** What the join page knows: the workshop (before joining) or the attendee (after), and what went wrong. */
export interface JoinState {
  info?: JoinInfo;
  attendee?: AttendeeView;
  /** the status of the last refusal of GET /join/{code} or /attendee, 0 for none */
  failed?: number;
  message?: string;
}

/** joinView is the view for what the join page knows; an attendee's state wins over the workshop's. */
export function joinView(s: JoinState): JoinView {
  const a = s.attendee;
  if (a) {
    switch (a.state) {
      case "waiting":
        return { kind: "waiting", startsAt: a.starts_at };
      case "queued":
        return { kind: "queued", position: a.position };
      case "active":
        return a.session_id ? { kind: "enter", sessionId: a.session_id, sessionToken: a.session_token } : { kind: "preparing" };
      case "ended":
        return { kind: "ended", reason: a.end_reason ?? "workshop_ended" };
    }
  }
  if (s.info) {
    if (s.info.state === "ended") return { kind: "over", info: s.info };
    if (s.info.state === "locked") return { kind: "locked", info: s.info };
    return { kind: "form", info: s.info };
  }
  if (s.failed === 404) return { kind: "unknown" };
  if (s.failed) return { kind: "error", message: s.message ?? "Something went wrong." };
  return { kind: "loading" };
}

/** endedWhy says why an attendee's time is over, for them. */
export function endedWhy(reason: string): string {
  return ({
    workshop_ended: "The workshop has ended.",
    expired: "Your session's time ran out.",
    deleted: "Your session was ended.",
    idle: "Your session was idle for a while and was ended.",
    admin: "The instructor ended your session.",
    error: "Something went wrong with your session.",
  } as Record<string, string>)[reason] ?? `Your session has ended (${reason}).`;
}

/** An event of the attendee's stream (/api/v1/attendee/events): `event: state` (their view) or `event: message`. */
export type AttendeeEvent = { kind: "attendee"; view: AttendeeView } | { kind: "message"; message: Broadcast };

/** An event of the instructor's stream (/api/v1/workshops/{id}/events). */
export type WorkshopEvent = { kind: "attendee"; attendee: Attendee } | { kind: "workshop"; workshop: WorkshopUpdate };

function json(data: string): Record<string, unknown> | undefined {
  try {
    const v = JSON.parse(data);
    return v && typeof v === "object" && !Array.isArray(v) ? v : undefined;
  } catch {
    return undefined;
  }
}

const states = new Set(["waiting", "queued", "active", "ended"]);
const isBroadcast = (v: unknown): v is Broadcast =>
  !!v && typeof (v as Broadcast).at === "string" && typeof (v as Broadcast).text === "string";

/** attendeeEvent decodes an event of the attendee's stream; anything else (or malformed) is undefined. */
export function attendeeEvent(type: string, data: string): AttendeeEvent | undefined {
  const v = json(data);
  if (!v) return undefined;
  if (type === "state" && states.has(v.state as string)) {
    const view = v as unknown as AttendeeView;
    return { kind: "attendee", view: { ...view, messages: Array.isArray(view.messages) ? view.messages.filter(isBroadcast) : [] } };
  }
  if (type === "message" && isBroadcast(v)) return { kind: "message", message: { at: v.at, text: v.text } };
  return undefined;
}

/** workshopEvent decodes an event of the instructor's stream; anything else (or malformed) is undefined. */
export function workshopEvent(type: string, data: string): WorkshopEvent | undefined {
  const v = json(data);
  if (!v) return undefined;
  if (type === "attendee" && typeof v.id === "string" && typeof v.name === "string" && typeof v.state === "string") {
    return { kind: "attendee", attendee: v as unknown as Attendee };
  }
  if (type === "workshop" && typeof v.id === "string" && typeof v.code === "string") {
    const { attendees: _, ...w } = v as unknown as Workshop;
    return { kind: "workshop", workshop: w };
  }
  return undefined;
}

/** broadcastKey tells broadcasts apart (the same text sent twice is two). */
export const broadcastKey = (m: Broadcast) => `${m.at}\n${m.text}`;

/** mergeBroadcasts is every broadcast of both lists once, newest first. */
export function mergeBroadcasts(a: Broadcast[], b: Broadcast[]): Broadcast[] {
  const seen = new Map<string, Broadcast>();
  for (const m of [...a, ...b]) seen.set(broadcastKey(m), m);
  return [...seen.values()].sort((x, y) => Date.parse(y.at) - Date.parse(x.at));
}

/** applyAttendeeEvent is the attendee after an event of their stream. */
export function applyAttendeeEvent(view: AttendeeView | undefined, ev: AttendeeEvent): AttendeeView | undefined {
  if (ev.kind === "attendee") return { ...ev.view, messages: mergeBroadcasts(view?.messages ?? [], ev.view.messages) };
  return view && { ...view, messages: mergeBroadcasts(view.messages, [ev.message]) };
}

/** applyWorkshopEvent is the instructor's workshop after an event: an attendee replaced (or added), or the rest. */
export function applyWorkshopEvent(w: Workshop | undefined, ev: WorkshopEvent): Workshop | undefined {
  if (!w) return w; // nothing to apply to until the first GET; it will have this
  if (ev.kind === "workshop") return { ...w, ...ev.workshop, attendees: w.attendees };
  const i = w.attendees.findIndex((a) => a.id === ev.attendee.id);
  const attendees = i < 0 ? [...w.attendees, ev.attendee] : w.attendees.map((a, j) => (j === i ? ev.attendee : a));
  return { ...w, attendees };
}

/** countStates is how many attendees are in each state (every state listed, 0 included). */
export function countStates(attendees: Attendee[]): Record<AttendeeState, number> & Record<string, number> {
  const n: Record<string, number> = { waiting: 0, queued: 0, active: 0, ended: 0 };
  for (const a of attendees) n[a.state] = (n[a.state] ?? 0) + 1;
  return n as Record<AttendeeState, number>;
}

/** attendanceFilename is the name to save the attendance list as: the server's (Content-Disposition), made safe,
 * else attendance-<code>-<date>.csv in the local date. */
export function attendanceFilename(disposition: string | null, code: string, now: Date): string {
  let name = "";
  const star = /filename\*\s*=\s*(?:UTF-8|utf-8)''([^;]+)/.exec(disposition ?? "");
  const plain = /filename\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^;\s]+))/.exec(disposition ?? "");
  try {
    name = star ? decodeURIComponent(star[1].trim()) : plain ? (plain[1] ?? plain[2]).replace(/\\(.)/g, "$1") : "";
  } catch {
    name = "";
  }
  name = name.replace(/^.*[\\/]/, "").replace(/[\u0000-\u001f<>:"|?*]/g, "_").trim();
  if (name && !name.startsWith(".")) return name;
  const date = `${now.getFullYear()}-${pad(now.getMonth() + 1)}-${pad(now.getDate())}`;
  return `attendance-${code || "workshop"}-${date}.csv`;
}

/** spokenCountdown is a countdown for screen readers: it changes seldom enough to be read out (every minute, every
 * 10 s in the last minute, every quarter hour beyond an hour), where the one on screen changes every second. */
export function spokenCountdown(ms: number): string {
  const s = Math.max(0, Math.ceil(ms / 1000));
  if (s === 0) return "now";
  if (s <= 60) return `${Math.ceil(s / 10) * 10} seconds`;
  const min = Math.ceil(s / 60);
  if (min <= 60) return min === 1 ? "1 minute" : `${min} minutes`;
  const q = Math.ceil(min / 15) * 15;
  const h = Math.floor(q / 60);
  const m = q % 60;
  return `${h} hour${h > 1 ? "s" : ""}${m ? ` ${m} minutes` : ""}`;
}
