// The v1 HTTP API as the page uses it. The session cookie (set when the session was made) authorizes a session's
// calls, or its token where the page was given one (a workshop's session: the join answer or the attendee's state
// carries it); workshop calls carry the attendee's or instructor's token.

import type {
  AddInstanceRequest, CreateSessionRequest, Demo, ErrorBody, ExtendRequest, FileWritten, FilesWritten, Instance, LabLink,
  LinkRequest, Network, NetworkAnswer, SessionView, SetupRequest, TemplateList, Tree, TryRequest, TryResult,
} from "./api-types";
import type {
  AttendeeView, BroadcastRequest, EndWorkshopRequest, ExtendWorkshopRequest, JoinInfo, Joined, JoinRequest, LockRequest,
  SeatsRequest, Workshop, WorkshopSessionView,
} from "./workshop-types";

// The answers' types are the OpenAPI document's (session/api/openapi.json), made into api-types.ts by build.mjs.
export type { FileEntry, Instance, LabLink, Template } from "./api-types";
export type { WorkshopSessionView as Session } from "./workshop-types";

/** ApiError is a refusal from the server, with its code and message (and when to try again, if it said). */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly retryAfter?: number,
  ) {
    super(message);
  }
}

/** serverOffset is how far the server's clock is ahead of ours, in ms (from the Date header). */
export let serverOffset = 0;

/** send makes a call (with token as Bearer, if given) and returns the answer; a refusal (or no answer) is an ApiError. */
async function send(method: string, path: string, body?: unknown, token?: string): Promise<Response> {
  let res: Response;
  try {
    const raw = body instanceof FormData || body instanceof Blob;
    const headers: Record<string, string> = body === undefined || raw ? {} : { "Content-Type": "application/json" };
    if (token) headers.Authorization = `Bearer ${token}`;
    res = await fetch(path, {
      method,
      credentials: "same-origin",
      headers,
      body: body === undefined ? undefined : raw ? body : JSON.stringify(body),
    });
  } catch {
    throw new ApiError(0, "unreachable", "The Sandlot server does not answer. Check your connection.");
  }
  const date = Date.parse(res.headers.get("Date") ?? "");
  if (!Number.isNaN(date)) serverOffset = date + 500 - Date.now(); // Date has whole seconds: aim at the middle
  if (res.ok) return res;
  const text = await res.text();
  let data: Partial<ErrorBody> | undefined;
  try {
    data = JSON.parse(text);
  } catch {
    // not JSON (from a proxy in between, say): described below
  }
  const retry = Number(res.headers.get("Retry-After")) || undefined;
  throw new ApiError(res.status, data?.error?.code ?? "http_" + res.status,
    data?.error?.message ?? `The server answered ${res.status} ${res.statusText}.`, retry);
}

/** request makes a call and returns the answer's text. */
async function request(method: string, path: string, body?: unknown, token?: string): Promise<string> {
  return (await send(method, path, body, token)).text();
}

/** call makes a call and decodes its JSON answer. */
async function call<T>(method: string, path: string, body?: unknown, token?: string): Promise<T> {
  const text = await request(method, path, body, token);
  return (text ? JSON.parse(text) : undefined) as T;
}

/** Session tokens the page was handed (id -> token), for sessions whose cookie this browser may not have. */
const sessionTokens = new Map<string, string>();

/** useSessionToken makes the page's calls on session id carry token (kept for this tab, so a reload keeps it). */
export function useSessionToken(id: string, token: string) {
  sessionTokens.set(id, token);
  try {
    sessionStorage.setItem(`sandlot:token:${id}`, token);
  } catch {
    // storage refused: this page's calls still have it
  }
}

/** sessionToken is the token the page holds for session id, if it was handed one; else the cookie is used. */
export function sessionToken(id: string): string | undefined {
  if (!sessionTokens.has(id)) {
    try {
      const t = sessionStorage.getItem(`sandlot:token:${id}`);
      if (t) sessionTokens.set(id, t);
    } catch {
      // no storage: the cookie it is
    }
  }
  return sessionTokens.get(id);
}

const base = "/api/v1";
const sessionPath = (id: string) => `${base}/sessions/${encodeURIComponent(id)}`;
const nodePath = (id: string, name: string) => `${sessionPath(id)}/instances/${encodeURIComponent(name)}`;

/** upload sends files into a directory of a node (multipart); the answer lists where they went. */
async function upload(id: string, name: string, dir: string, files: File[]) {
  const form = new FormData();
  for (const f of files) form.append("file", f, f.name);
  return call<FilesWritten>("POST",
    `${nodePath(id, name)}/files?dir=${encodeURIComponent(dir)}`, form, sessionToken(id));
}

export const api = {
  templates: () => call<TemplateList>("GET", `${base}/templates`).then((r) => r.templates),
  createSession: (template = "") =>
    call<SessionView>("POST", `${base}/sessions`, (template ? { template } : {}) satisfies CreateSessionRequest),
  /** tryStack makes a session of one swarm node with the compose file at stack deployed in it (Try in Sandlot). */
  tryStack: (stack: string) => call<TryResult>("POST", `${base}/try`, { stack } satisfies TryRequest),
  session: (id: string) => call<WorkshopSessionView>("GET", sessionPath(id), undefined, sessionToken(id)),
  setup: (id: string, template: string) =>
    call<SessionView>("POST", `${sessionPath(id)}/setup`, { template } satisfies SetupRequest, sessionToken(id)),
  extend: (id: string, duration: string) =>
    call<SessionView>("POST", `${sessionPath(id)}/extend`, { duration } satisfies ExtendRequest, sessionToken(id)),
  end: (id: string) => call<SessionView>("DELETE", sessionPath(id), undefined, sessionToken(id)),
  addNode: (id: string) =>
    call<Instance>("POST", `${sessionPath(id)}/instances`, {} satisfies AddInstanceRequest, sessionToken(id)),
  network: (id: string) => call<NetworkAnswer>("GET", `/api/v1/sessions/${id}/network`, undefined, sessionToken(id)),
  setNetwork: (id: string, doc: Network) =>
    call<NetworkAnswer>("PUT", `/api/v1/sessions/${id}/network`, doc, sessionToken(id)),
  clearNetwork: (id: string) => call<void>("DELETE", `/api/v1/sessions/${id}/network`, undefined, sessionToken(id)),
  removeNode: (id: string, name: string) => call<void>("DELETE", nodePath(id, name), undefined, sessionToken(id)),
  restartNode: (id: string, name: string) =>
    call<Instance>("POST", `${nodePath(id, name)}/restart`, undefined, sessionToken(id)),
  portLink: (id: string, name: string, port: number, duration?: string) =>
    call<LabLink>("POST", `${nodePath(id, name)}/ports/${port}/link`, (duration ? { duration } : {}) satisfies LinkRequest,
      sessionToken(id)),
  upload,
  tree: (id: string, name: string, path: string, depth: number) =>
    call<Tree>("GET", `${nodePath(id, name)}/tree?path=${encodeURIComponent(path)}&depth=${depth}`, undefined,
      sessionToken(id)),
  /** download reads a file as a download does, for a session whose token a plain link cannot carry. */
  download: async (id: string, name: string, path: string) =>
    (await send("GET", fileURL(id, name, path, true), undefined, sessionToken(id))).blob(),
  readFile: (id: string, name: string, path: string) =>
    request("GET", fileURL(id, name, path), undefined, sessionToken(id)),
  writeFile: (id: string, name: string, path: string, content: string) =>
    call<FileWritten>("PUT", `${nodePath(id, name)}/files?path=${encodeURIComponent(path)}`, new Blob([content]),
      sessionToken(id)),

  // Workshops: an attendee's calls carry the attendee token, an instructor's the instructor token.
  joinInfo: (code: string) => call<JoinInfo>("GET", joinPath(code)),
  join: (code: string, name: string) => call<Joined>("POST", joinPath(code), { name } satisfies JoinRequest),
  attendee: (token: string) => call<AttendeeView>("GET", `${base}/attendee`, undefined, token),
  workshop: (id: string, token: string) => call<Workshop>("GET", workshopPath(id), undefined, token),
  broadcast: (id: string, token: string, text: string) =>
    call<unknown>("POST", `${workshopPath(id)}/broadcast`, { text } satisfies BroadcastRequest, token),
  extendWorkshop: (id: string, token: string, duration: string, attendee?: string) =>
    call<unknown>("POST", `${workshopPath(id)}/extend`, (attendee ? { duration, attendee } : { duration }) satisfies
      ExtendWorkshopRequest, token),
  endWorkshop: (id: string, token: string, attendee?: string) =>
    call<unknown>("POST", `${workshopPath(id)}/end`, (attendee ? { attendee } : {}) satisfies EndWorkshopRequest, token),
  /** startDemo starts the instructor's demo session (or answers the live one) with a session token for it. */
  startDemo: (id: string, token: string) => call<Demo>("POST", `${workshopPath(id)}/demo`, {}, token),
  lockWorkshop: (id: string, token: string, locked: boolean) =>
    call<unknown>("POST", `${workshopPath(id)}/lock`, { locked } satisfies LockRequest, token),
  setSeats: (id: string, token: string, seats: number) =>
    call<unknown>("POST", `${workshopPath(id)}/seats`, { seats } satisfies SeatsRequest, token),
  /** attendance is the attendance list (CSV) and the server's Content-Disposition, if it gave one. */
  attendance: async (id: string, token: string) => {
    const res = await send("GET", `${workshopPath(id)}/attendance.csv`, undefined, token);
    return { csv: await res.blob(), disposition: res.headers.get("Content-Disposition") };
  },
};

const joinPath = (code: string) => `${base}/join/${encodeURIComponent(code)}`;
const workshopPath = (id: string) => `${base}/workshops/${encodeURIComponent(id)}`;

/** attendeeEventsURL is the attendee's stream; EventSource sends no headers, so the token goes in the query. */
export const attendeeEventsURL = (token: string) => `${base}/attendee/events?token=${encodeURIComponent(token)}`;

/** workshopEventsURL is the instructor's stream of a workshop, the token in the query (as for attendees). */
export const workshopEventsURL = (id: string, token: string) =>
  `${workshopPath(id)}/events?token=${encodeURIComponent(token)}`;

/** fileURL is where a node's file is read; with download set, the browser saves it. */
export function fileURL(id: string, name: string, path: string, download = false): string {
  return `${nodePath(id, name)}/files?path=${encodeURIComponent(path)}${download ? "&download=1" : ""}`;
}
