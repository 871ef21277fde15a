// The v1 HTTP API as the page uses it. The session cookie (set when the session was made) authorizes every call.

import type {
  AddInstanceRequest, CreateSessionRequest, ErrorBody, ExtendRequest, FileWritten, FilesWritten, Instance, LabLink,
  LinkRequest, SessionView, SetupRequest, TemplateList, Tree,
} from "./api-types";

// The answers' types are the OpenAPI document's (session/api/openapi.json), made into api-types.ts by build.mjs.
export type { FileEntry, Instance, LabLink, SessionView as Session, Template } from "./api-types";

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

/** request makes a call and returns the answer's text; a refusal (or no answer) is an ApiError. */
async function request(method: string, path: string, body?: unknown): Promise<string> {
  let res: Response;
  try {
    const raw = body instanceof FormData || body instanceof Blob;
    res = await fetch(path, {
      method,
      credentials: "same-origin",
      headers: body === undefined || raw ? {} : { "Content-Type": "application/json" },
      body: body === undefined ? undefined : raw ? body : JSON.stringify(body),
    });
  } catch {
    throw new ApiError(0, "unreachable", "The Sandlot server does not answer. Check your connection.");
  }
  const date = Date.parse(res.headers.get("Date") ?? "");
  if (!Number.isNaN(date)) serverOffset = date + 500 - Date.now(); // Date has whole seconds: aim at the middle
  const text = await res.text();
  if (!res.ok) {
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
  return text;
}

/** call makes a call and decodes its JSON answer. */
async function call<T>(method: string, path: string, body?: unknown): Promise<T> {
  const text = await request(method, path, body);
  return (text ? JSON.parse(text) : undefined) as T;
}

const base = "/api/v1";
const sessionPath = (id: string) => `${base}/sessions/${encodeURIComponent(id)}`;
const nodePath = (id: string, name: string) => `${sessionPath(id)}/instances/${encodeURIComponent(name)}`;

/** upload sends files into a directory of a node (multipart); the answer lists where they went. */
async function upload(id: string, name: string, dir: string, files: File[]) {
  const form = new FormData();
  for (const f of files) form.append("file", f, f.name);
  return call<FilesWritten>("POST",
    `${nodePath(id, name)}/files?dir=${encodeURIComponent(dir)}`, form);
}

export const api = {
  templates: () => call<TemplateList>("GET", `${base}/templates`).then((r) => r.templates),
  createSession: (template = "") =>
    call<SessionView>("POST", `${base}/sessions`, (template ? { template } : {}) satisfies CreateSessionRequest),
  session: (id: string) => call<SessionView>("GET", sessionPath(id)),
  setup: (id: string, template: string) =>
    call<SessionView>("POST", `${sessionPath(id)}/setup`, { template } satisfies SetupRequest),
  extend: (id: string, duration: string) =>
    call<SessionView>("POST", `${sessionPath(id)}/extend`, { duration } satisfies ExtendRequest),
  end: (id: string) => call<SessionView>("DELETE", sessionPath(id)),
  addNode: (id: string) => call<Instance>("POST", `${sessionPath(id)}/instances`, {} satisfies AddInstanceRequest),
  removeNode: (id: string, name: string) => call<void>("DELETE", nodePath(id, name)),
  restartNode: (id: string, name: string) => call<Instance>("POST", `${nodePath(id, name)}/restart`),
  portLink: (id: string, name: string, port: number, duration?: string) =>
    call<LabLink>("POST", `${nodePath(id, name)}/ports/${port}/link`, (duration ? { duration } : {}) satisfies LinkRequest),
  upload,
  tree: (id: string, name: string, path: string, depth: number) =>
    call<Tree>("GET", `${nodePath(id, name)}/tree?path=${encodeURIComponent(path)}&depth=${depth}`),
  readFile: (id: string, name: string, path: string) => request("GET", fileURL(id, name, path)),
  writeFile: (id: string, name: string, path: string, content: string) =>
    call<FileWritten>("PUT", `${nodePath(id, name)}/files?path=${encodeURIComponent(path)}`, new Blob([content])),
};

/** fileURL is where a node's file is read; with download set, the browser saves it. */
export function fileURL(id: string, name: string, path: string, download = false): string {
  return `${nodePath(id, name)}/files?path=${encodeURIComponent(path)}${download ? "&download=1" : ""}`;
}
