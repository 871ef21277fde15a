// The v1 HTTP API as the page uses it. The session cookie (set when the session was made) authorizes every call.

export interface Template {
  name: string;
  title: string;
  description: string;
  managers: number;
  workers: number;
  swarm: boolean;
}

export interface Instance {
  name: string;
  hostname: string;
  ip?: string;
  status: string;
  ports: number[];
  created_at: string;
}

export interface Session {
  id: string;
  template?: string;
  state: "starting" | "active" | "ended";
  created_at: string;
  expires_at: string;
  max_expires_at: string;
  end_reason?: "expired" | "deleted" | "idle" | "error" | "admin";
  end_message?: string;
  max_instances: number;
  instances: Instance[];
  limits: { max_instances: number; instances: number; remaining_instances: number };
}

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
    let data: any = undefined;
    try {
      data = JSON.parse(text);
    } catch {
      // not JSON: described below
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

export interface LabLink {
  url: string;
  path_url: string;
  expires_at: string;
}

export interface FileEntry {
  path: string;
  type: "d" | "f" | "l";
  size: number;
  mtime: string;
}

/** upload sends files into a directory of a node (multipart); the answer lists where they went. */
async function upload(id: string, name: string, dir: string, files: File[]) {
  const form = new FormData();
  for (const f of files) form.append("file", f, f.name);
  return call<{ files: { path: string; size: number }[] }>("POST",
    `${nodePath(id, name)}/files?dir=${encodeURIComponent(dir)}`, form);
}

export const api = {
  templates: () => call<{ templates: Template[] }>("GET", `${base}/templates`).then((r) => r.templates),
  createSession: (template = "") => call<Session>("POST", `${base}/sessions`, template ? { template } : {}),
  session: (id: string) => call<Session>("GET", sessionPath(id)),
  setup: (id: string, template: string) => call<Session>("POST", `${sessionPath(id)}/setup`, { template }),
  extend: (id: string, duration: string) => call<Session>("POST", `${sessionPath(id)}/extend`, { duration }),
  end: (id: string) => call<Session>("DELETE", sessionPath(id)),
  addNode: (id: string) => call<Instance>("POST", `${sessionPath(id)}/instances`, {}),
  removeNode: (id: string, name: string) => call<void>("DELETE", nodePath(id, name)),
  restartNode: (id: string, name: string) => call<Instance>("POST", `${nodePath(id, name)}/restart`),
  portLink: (id: string, name: string, port: number, duration?: string) =>
    call<LabLink>("POST", `${nodePath(id, name)}/ports/${port}/link`, duration ? { duration } : {}),
  upload,
  tree: (id: string, name: string, path: string) =>
    call<{ entries: FileEntry[]; truncated: boolean }>("GET", `${nodePath(id, name)}/tree?path=${encodeURIComponent(path)}&depth=3`),
  readFile: (id: string, name: string, path: string) => request("GET", fileURL(id, name, path)),
  writeFile: (id: string, name: string, path: string, content: string) =>
    call<{ path: string; size: number }>("PUT", `${nodePath(id, name)}/files?path=${encodeURIComponent(path)}`, new Blob([content])),
};

/** fileURL is where a node's file is read; with download set, the browser saves it. */
export function fileURL(id: string, name: string, path: string, download = false): string {
  return `${nodePath(id, name)}/files?path=${encodeURIComponent(path)}${download ? "&download=1" : ""}`;
}
