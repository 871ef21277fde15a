// The Sandlot JS SDK: sessions, nodes, commands, files and terminals of a Sandlot server, from any page.
//
//   import { Sandlot } from "https://sandlot.example/assets/sandlot-sdk.js";
//   const sandlot = new Sandlot({ server: "https://sandlot.example" });
//   const lab = await sandlot.createSession({ template: "swarm-1m1w" });   // or { launchToken }
//   lab.on("node-added", (e) => console.log(e.detail.name));
//   const term = await lab.terminal("node1", document.querySelector("#term"));
//   console.log((await lab.exec("node1", "docker info")).stdout);
//   await lab.end();
//
// Every call carries the session's token as a Bearer header: a page on another site cannot count on cookies.
// The server answers a browser on another origin only when that origin is in its --public-origins (or, for
// creating a session, the page holds a launch token its own backend minted); see docs/embedding.md.
// Types: the answers are the OpenAPI document's schemas (api-types.ts, generated), through endpoints.ts.

import type { ErrorBody, ExecResult, FilesWritten, FileWritten, Instance, LabLink, SessionView, Template } from "../api-types";
import { endpoints, type AnswerOf, type Name, type RequestOf } from "./endpoints";
import type { SandlotTerminal } from "../sandlot-terminal";

export type { ExecResult, FilesWritten, FileWritten, Instance, LabLink, SessionView, Template } from "../api-types";
export { endpoints } from "./endpoints";

/** SandlotError is a refusal from the server (status and code as the API documents them) or no answer (status 0). */
export class SandlotError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly retryAfter?: number,
  ) {
    super(message);
    this.name = "SandlotError";
  }
}

/** Options of a Sandlot client. */
export interface SandlotOptions {
  /** the Sandlot server's origin (default: this page's) */
  server?: string;
  /** the fetch to use (default: the page's) */
  fetch?: typeof fetch;
  /** loads the <sandlot-terminal> element when a terminal is first opened (default: the server's /assets/sandlot-terminal.js) */
  loadTerminal?: () => Promise<unknown>;
}

/** Options of a new session. */
export interface CreateOptions {
  template?: string;
  duration?: string;
  /** a launch token minted by the page's backend (it fixes template, duration and node limit) */
  launchToken?: string;
}

type PathParams = { id?: string; name?: string; port?: number };

/** Sandlot is a client of one Sandlot server. */
export class Sandlot {
  readonly server: string;
  private readonly fetcher: typeof fetch;
  private readonly loader: () => Promise<unknown>;
  /** clockOffset is how far the server's clock is ahead of this one, in ms, when its answers say (Date header). */
  clockOffset = 0;

  constructor(opts: SandlotOptions = {}) {
    this.server = new URL(opts.server || globalThis.location?.origin || "http://localhost").origin;
    this.fetcher = opts.fetch ?? ((...a) => fetch(...a));
    this.loader = opts.loadTerminal ?? (() => import(/* @vite-ignore */ `${this.server}/assets/sandlot-terminal.js`));
  }

  /** call makes one call of the table, with token as Bearer, and returns its decoded answer. */
  async call<N extends Name>(name: N, params: PathParams, token?: string, body?: RequestOf<N> | FormData | Blob,
    query?: Record<string, string>): Promise<AnswerOf<N>> {
    const res = await this.send(name, params, token, body, query);
    const text = await res.text();
    return (endpoints[name].answer && text ? JSON.parse(text) : undefined) as AnswerOf<N>;
  }

  /** send makes one call and returns the response, or throws a SandlotError for a refusal. */
  async send(name: Name, params: PathParams, token?: string, body?: unknown, query?: Record<string, string>): Promise<Response> {
    const e = endpoints[name];
    const path = e.path.replace(/\{(\w+)\}/g, (_, k: keyof PathParams) => encodeURIComponent(String(params[k] ?? "")));
    const url = new URL(path, this.server);
    for (const [k, v] of Object.entries(query ?? {})) url.searchParams.set(k, v);
    const headers: Record<string, string> = {};
    const raw = body instanceof FormData || body instanceof Blob;
    if (body !== undefined && !raw) headers["Content-Type"] = "application/json";
    if (token) headers.Authorization = `Bearer ${token}`;
    let res: Response;
    try {
      res = await this.fetcher(url, { method: e.method, headers, credentials: "omit",
        body: body === undefined ? undefined : raw ? (body as BodyInit) : JSON.stringify(body) });
    } catch {
      throw await this.unanswered();
    }
    const date = Date.parse(res.headers.get("Date") ?? "");
    if (!Number.isNaN(date)) this.clockOffset = date + 500 - Date.now(); // whole seconds: aim at the middle
    if (res.ok) return res;
    const text = await res.text();
    let data: Partial<ErrorBody> | undefined;
    try {
      data = JSON.parse(text);
    } catch {
      // not JSON (a proxy in between): described below
    }
    throw new SandlotError(res.status, data?.error?.code ?? `http_${res.status}`,
      data?.error?.message ?? `The server answered ${res.status} ${res.statusText}.`,
      Number(res.headers.get("Retry-After")) || undefined);
  }

  /**
   * unanswered tells a server that does not answer from one that refuses this page's origin: a browser shows a
   * CORS refusal to the page as no answer at all, but a request that asks for no CORS still reaches the server.
   */
  private async unanswered(): Promise<SandlotError> {
    const origin = globalThis.location?.origin;
    if (origin && origin !== this.server) {
      try {
        await this.fetcher(new URL("/healthz", this.server), { mode: "no-cors", credentials: "omit" });
        return new SandlotError(0, "origin_not_allowed", `The Sandlot server at ${this.server} does not allow labs ` +
          `on pages of ${origin}. Its operator can list this site in --public-origins.`);
      } catch {
        // no answer to that either: the server is away
      }
    }
    return new SandlotError(0, "unreachable", `The Sandlot server at ${this.server} does not answer. Check your connection.`);
  }

  /** templates lists the server's templates. */
  async templates(): Promise<Template[]> {
    return (await this.call("templates", {})).templates;
  }

  /** createSession starts a session (anonymously, or with a launch token) and returns it, watched for changes. */
  async createSession(opts: CreateOptions = {}): Promise<Session> {
    const req: RequestOf<"createSession"> = {};
    if (opts.template) req.template = opts.template;
    if (opts.duration) req.duration = opts.duration;
    const view = await this.call("createSession", {}, opts.launchToken, req);
    if (!view.token) throw new SandlotError(500, "no_token", "The server made a session but gave no token for it.");
    return new Session(this, view.id, view.token, view);
  }

  /** session returns a session this page already holds (say, kept over a reload), read once from the server. */
  async session(id: string, token: string): Promise<Session> {
    const s = new Session(this, id, token);
    await s.refresh();
    return s;
  }

  private terminalLoaded?: Promise<unknown>;

  /** defineTerminal makes sure <sandlot-terminal> is defined, loading it (once) if the page has not. */
  defineTerminal(): Promise<unknown> {
    if (globalThis.customElements?.get("sandlot-terminal")) return Promise.resolve();
    this.terminalLoaded ??= this.loader().catch((err) => {
      this.terminalLoaded = undefined;
      throw err;
    });
    return this.terminalLoaded;
  }
}

/** Events of a session (see Session.on): each a CustomEvent with this detail. */
export interface SessionEvents {
  /** the session as last read, after any change */
  change: SessionView;
  "node-added": Instance;
  "node-removed": Instance;
  /** a node's status, address or ports changed */
  "node-changed": Instance;
  /** the session ended: detail has end_reason and end_message */
  ended: SessionView;
  /** reading the session failed (it is tried again, later each time) */
  error: SandlotError;
}

/** Options of Session.watch. */
export interface WatchOptions {
  /** ms between reads while nothing fails (default 2000) */
  interval?: number;
  /** the longest wait after failures (default 30000) */
  maxInterval?: number;
}

/** Session is one session: its nodes, commands, files, terminals and end. Its events come from reading it now and then. */
export class Session extends EventTarget {
  /** view is the session as last read (undefined until it has been). */
  view?: SessionView;
  private timer?: ReturnType<typeof setTimeout>;
  private watching = false;
  private failures = 0;
  private opts: Required<WatchOptions> = { interval: 2000, maxInterval: 30_000 };

  constructor(
    readonly client: Sandlot,
    readonly id: string,
    readonly token: string,
    view?: SessionView,
  ) {
    super();
    if (view) this.view = view;
  }

  /** ended says whether the session has ended, as last read. */
  get ended(): boolean {
    return this.view?.state === "ended";
  }

  /** nodes are the session's nodes, as last read. */
  get nodes(): Instance[] {
    return this.view?.instances ?? [];
  }

  /** expiresAt is when the session ends unless extended, in this browser's clock. */
  get expiresAt(): Date | undefined {
    return this.view ? new Date(Date.parse(this.view.expires_at) - this.client.clockOffset) : undefined;
  }

  /** on listens to an event and returns what stops listening. */
  on<K extends keyof SessionEvents>(type: K, f: (e: CustomEvent<SessionEvents[K]>) => void): () => void {
    const l = f as EventListener;
    this.addEventListener(type, l);
    return () => this.removeEventListener(type, l);
  }

  private emit<K extends keyof SessionEvents>(type: K, detail: SessionEvents[K]) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  /** refresh reads the session and fires the events of what changed since it was last read. */
  async refresh(): Promise<SessionView> {
    const next = await this.client.call("session", { id: this.id }, this.token);
    this.update(next);
    return next;
  }

  /** update takes a newer view of the session and fires the events of the differences. */
  private update(next: SessionView) {
    const before = new Map((this.view?.instances ?? []).map((i) => [i.name, i]));
    const wasEnded = this.ended;
    this.view = next;
    const now = new Set<string>();
    for (const n of next.instances) {
      now.add(n.name);
      const old = before.get(n.name);
      if (!old) this.emit("node-added", n);
      else if (old.status !== n.status || old.ip !== n.ip || old.ports.join() !== n.ports.join()) this.emit("node-changed", n);
    }
    for (const [name, n] of before) if (!now.has(name)) this.emit("node-removed", n);
    this.emit("change", next);
    if (next.state === "ended" && !wasEnded) {
      this.emit("ended", next);
      this.unwatch();
    }
  }

  /** watch reads the session every interval (later after failures, and not while the page is hidden) until it ends. */
  watch(opts: WatchOptions = {}): this {
    this.opts = { ...this.opts, ...opts };
    if (this.watching || this.ended) return this;
    this.watching = true;
    this.schedule(0);
    return this;
  }

  /** unwatch stops reading the session. */
  unwatch() {
    this.watching = false;
    clearTimeout(this.timer);
  }

  private schedule(delay: number) {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.tick(), delay);
  }

  private async tick() {
    if (!this.watching) return;
    if (globalThis.document?.visibilityState === "hidden") {
      this.schedule(this.opts.interval);
      return;
    }
    try {
      await this.refresh();
      this.failures = 0;
    } catch (e) {
      const err = e as SandlotError;
      this.emit("error", err);
      // Gone for good (ended long ago, or the token is refused): say the session ended, stop.
      if (err.status === 404 || err.status === 401 || err.status === 403 || err.status === 410) {
        this.unwatch();
        return;
      }
      this.failures++;
    }
    if (!this.watching) return;
    const backoff = Math.min(this.opts.interval * 2 ** this.failures, this.opts.maxInterval);
    this.schedule(backoff);
  }

  /** addNode adds a node; it is answered when the node's engine answers. */
  async addNode(hostname?: string): Promise<Instance> {
    const n = await this.client.call("addNode", { id: this.id }, this.token, hostname ? { hostname } : {});
    if (this.view && !this.view.instances.some((i) => i.name === n.name)) {
      this.update({ ...this.view, instances: [...this.view.instances, n] });
    }
    return n;
  }

  /** removeNode removes a node. */
  async removeNode(name: string): Promise<void> {
    await this.client.call("removeNode", { id: this.id, name }, this.token);
    if (this.view) this.update({ ...this.view, instances: this.view.instances.filter((i) => i.name !== name) });
  }

  /** restartNode restarts a node's container. */
  restartNode(name: string): Promise<Instance> {
    return this.client.call("restart", { id: this.id, name }, this.token);
  }

  /** setup makes a template's nodes in an empty session and forms its swarm. */
  async setup(template: string): Promise<SessionView> {
    const v = await this.client.call("setup", { id: this.id }, this.token, { template });
    this.update(v);
    return v;
  }

  /** extend moves the deadline by duration ("30m"), up to the session's maximum. */
  async extend(duration: string): Promise<SessionView> {
    const v = await this.client.call("extend", { id: this.id }, this.token, { duration });
    this.update(v);
    return v;
  }

  /** exec runs a command in a node (a string runs in sh -c) and returns its exit code and output. */
  exec(name: string, cmd: string | string[]): Promise<ExecResult> {
    return this.client.call("exec", { id: this.id, name }, this.token,
      { cmd: typeof cmd === "string" ? ["sh", "-c", cmd] : cmd });
  }

  /** upload writes files into a directory of a node (default /root), each under its own name. */
  upload(name: string, files: (File | { name: string; content: string | Blob })[], dir = "/root"): Promise<FilesWritten> {
    const form = new FormData();
    for (const f of files) {
      if (f instanceof File) form.append("file", f, f.name);
      else form.append("file", typeof f.content === "string" ? new Blob([f.content]) : f.content, f.name);
    }
    return this.client.call("upload", { id: this.id, name }, this.token, form, { dir });
  }

  /** writeFile replaces (or makes) one file of a node with content. */
  writeFile(name: string, path: string, content: string | Blob): Promise<FileWritten> {
    return this.client.call("writeFile", { id: this.id, name }, this.token,
      typeof content === "string" ? new Blob([content]) : content, { path });
  }

  /** readFile reads one file of a node. */
  async readFile(name: string, path: string): Promise<Blob> {
    return (await this.client.send("readFile", { id: this.id, name }, this.token, undefined, { path })).blob();
  }

  /** portLink gives a link that opens a node's port through the lab proxy (for duration, or as long as the session may live). */
  portLink(name: string, port: number, duration?: string): Promise<LabLink> {
    return this.client.call("portLink", { id: this.id, name, port }, this.token, duration ? { duration } : {});
  }

  /** viewerToken gives a token that opens this session's terminals read-only, and nothing else. */
  async viewerToken(): Promise<string> {
    return (await this.client.call("viewer", { id: this.id }, this.token)).token;
  }

  /**
   * terminal opens a shell of node into an element: a <sandlot-terminal> given is set up in place, any other
   * element gets one as its child. The element reconnects on its own; call its stop() or remove it to close.
   */
  async terminal(name: string, into: HTMLElement, opts: { tab?: number; theme?: "dark" | "light"; viewer?: boolean } = {}): Promise<SandlotTerminal> {
    await this.client.defineTerminal();
    let el = into as SandlotTerminal;
    if (into.localName !== "sandlot-terminal") {
      el = document.createElement("sandlot-terminal");
      into.appendChild(el);
    }
    this.configure(el, name, opts);
    return el;
  }

  /** configure points a <sandlot-terminal> (defined or not yet) at a shell of node. */
  configure(el: HTMLElement, name: string, opts: { tab?: number; theme?: "dark" | "light"; viewer?: boolean } = {}) {
    if (this.client.server !== globalThis.location?.origin) el.setAttribute("server", this.client.server);
    el.setAttribute("instance", name);
    if (opts.tab) el.setAttribute("tab", String(opts.tab));
    if (opts.theme) el.setAttribute("theme", opts.theme);
    el.toggleAttribute("viewer", !!opts.viewer);
    el.setAttribute("token", this.token);
    el.setAttribute("session", this.id); // last: the element connects once it has a session
  }

  /** end ends the session now: its nodes and network are removed. */
  async end(): Promise<SessionView> {
    const v = await this.client.call("end", { id: this.id }, this.token);
    this.update(v);
    return v;
  }
}
