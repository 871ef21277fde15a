// The workshop routes' types (issue 13), written by hand: session/api/openapi.json does not describe these routes
// yet. Replace them with the generated ones (api-types.ts) once the document has them; the field names are the
// API's, exactly.
//
// What the pages take for granted of the server, besides these shapes:
// - GET /api/v1/join/{code} and POST (201) need no token; codes are sent normalized (upper case, no dashes).
// - GET /api/v1/attendee takes the attendee token as Bearer; /api/v1/attendee/events and
//   /api/v1/workshops/{id}/events (text/event-stream) take it as ?token=; the attendee's events are named state
//   (their AttendeeView), message, workshop, the instructor's attendee, message, workshop.
// - Every /api/v1/workshops/{id}... call takes the instructor token as Bearer; the POSTs have JSON bodies;
//   attendance.csv may name its file in Content-Disposition.
// - A session's token (session_token) works as Bearer on every /api/v1/sessions/{id}... call, and as ?token= on
//   its terminals; the instructor token opens any attendee's terminal as a viewer (?token=, the viewer role).
// - The server serves the page (index.html) at /w/{code} and /w/{id}/instructor as it does at /s/{id}.

import type { DemoLink, SessionView } from "./api-types";

/** A workshop as anyone with its code sees it: GET /api/v1/join/{code}. */
export interface JoinInfo {
  title: string;
  /** an RFC 3339 time */
  starts_at?: string;
  /** an RFC 3339 time */
  ends_at?: string;
  state: "open" | "locked" | "ended";
  seats_left: number;
}

export interface JoinRequest {
  /** the attendee's display name, 1-40 characters */
  name: string;
}

/** Where an attendee is: waiting for the start, queued for a seat, in a session, or done. */
export type AttendeeState = "waiting" | "queued" | "active" | "ended";

/** The answer of POST /api/v1/join/{code} (201). */
export interface Joined {
  attendee_id: string;
  /** the attendee's key: Authorization: Bearer, or ?token= for the events */
  attendee_token: string;
  /** opens the join page with the token, from any browser (/w/<code>#attendee=<attendee_token>) */
  personal_url: string;
  state: AttendeeState;
  /** in the queue, 1 first */
  position?: number;
  starts_at?: string;
  session_id?: string;
  session_token?: string;
}

/** A message the instructor sent to everyone. */
export interface Broadcast {
  /** an RFC 3339 time */
  at: string;
  text: string;
}

/** The attendee as they see themselves: GET /api/v1/attendee, and `event: state` of /api/v1/attendee/events. */
export interface AttendeeView {
  state: AttendeeState;
  /** the instructor's demo while there is one: a viewer token watches its terminals */
  demo?: DemoLink;
  position?: number;
  starts_at?: string;
  ends_at?: string;
  title: string;
  session_id?: string;
  session_token?: string;
  messages: Broadcast[];
  end_reason?: string;
}

/** What a session of a workshop says of its workshop (GET /api/v1/sessions/{id}, field workshop). */
export interface SessionWorkshop {
  id: string;
  title: string;
  ends_at?: string;
  messages: Broadcast[];
}

/** The session view, with its workshop when it is one's. */
export type WorkshopSessionView = SessionView & { workshop?: SessionWorkshop };

export interface NodeStatus {
  name: string;
  status: string;
}

/** One attendee as the instructor sees them: in the workshop's list, and `event: attendee` of its events. */
export interface Attendee {
  id: string;
  name: string;
  state: AttendeeState;
  position?: number;
  session_id?: string;
  nodes?: NodeStatus[];
  /** when their session ends; an RFC 3339 time */
  expires_at?: string;
  /** their last keystroke in a terminal of their session (to within 10 s); an RFC 3339 time */
  last_activity?: string;
  /** when their page last asked for their state; an RFC 3339 time */
  last_seen?: string;
}

/** The workshop as its instructor sees it: GET /api/v1/workshops/{id}. */
export interface Workshop {
  id: string;
  code: string;
  title: string;
  template: string;
  seats: number;
  starts_at?: string;
  ends_at?: string;
  locked: boolean;
  join_url: string;
  attendees: Attendee[];
  messages: Broadcast[];
}

/** `event: workshop` of /api/v1/workshops/{id}/events: the workshop without its attendees. */
export type WorkshopUpdate = Omit<Workshop, "attendees">;

export interface BroadcastRequest {
  text: string;
}

export interface ExtendWorkshopRequest {
  duration: string;
  /** one attendee's id; without it, everyone */
  attendee?: string;
}

export interface EndWorkshopRequest {
  /** one attendee's id; without it, everyone (the workshop ends) */
  attendee?: string;
}

export interface LockRequest {
  locked: boolean;
}

export interface SeatsRequest {
  /** how many seats the workshop has from now on (the new total) */
  seats: number;
}
