// The session page: the nodes, a terminal per node (with tabs for more shells), the time left, and the end. A
// workshop's session also shows the workshop: its title, the time left of the training, and the instructor's
// broadcasts (live from the attendee's stream where this browser holds the attendee's token, else from the
// session view the page reads every few seconds anyway).

import { LitElement, html, nothing } from "lit";
import { repeat } from "lit/directives/repeat.js";
import { ifDefined } from "lit/directives/if-defined.js";
import { api, ApiError, attendeeEventsURL, serverOffset, sessionToken, useSessionToken, type Instance, type Session } from "./api";
import { listen } from "./events";
import { attendeeEvent, broadcastKey, formatCountdown, mergeBroadcasts, spokenCountdown, warnFor } from "./workshop";
import { sessionAttendee, takeLinkParam } from "./workshop-store";
import type { DemoLink } from "./api-types";
import type { Broadcast } from "./workshop-types";
import { settings } from "./settings";
import { copyText } from "./clipboard";
import { settingsControl } from "./settings-control";
import "./files-dialog";
import "./network-panel";
import type { SandlotTerminal, TerminalState } from "./sandlot-terminal";

const maxTabs = 8; // session.MaxTerminalsPerNode
const extendBy = "30m";

const endReasons: Record<string, string> = {
  expired: "Its time ran out.",
  deleted: "You ended it.",
  idle: "Nobody used it for a while.",
  error: "Something went wrong.",
  admin: "An administrator ended it.",
  workshop_ended: "The workshop has ended.",
};

/** What the page remembers of a session across reloads: tabs per node, the selected node. */
interface Layout {
  selected?: string;
  tabs: Record<string, number[]>;
  active: Record<string, number>;
}

function loadLayout(id: string): Layout {
  try {
    const l = JSON.parse(localStorage.getItem(`sandlot:layout:${id}`) ?? "");
    if (l && typeof l.tabs === "object" && typeof l.active === "object") return l;
  } catch {
    // nothing kept, or something unreadable: start afresh
  }
  return { tabs: {}, active: {} };
}

function loadDismissed(id: string): string[] {
  try {
    const d = JSON.parse(localStorage.getItem(`sandlot:dismissed:${id}`) ?? "[]");
    return Array.isArray(d) ? d.filter((k) => typeof k === "string") : [];
  } catch {
    return [];
  }
}

export function formatLeft(ms: number): string {
  const s = Math.max(0, Math.ceil(ms / 1000));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const pad = (n: number) => String(n).padStart(2, "0");
  return h > 0 ? `${h}:${pad(m)}:${pad(s % 60)}` : `${pad(m)}:${pad(s % 60)}`;
}

export class SessionPage extends LitElement {
  static properties = {
    sessionId: { attribute: "session-id" },
    template: {},
    session: { state: true },
    now: { state: true },
    error: { state: true },
    busy: { state: true },
    creating: { state: true },
    confirm: { state: true },
    status: { state: true },
    layout: { state: true },
    toast: { state: true },
    files: { state: true },
    dropping: { state: true },
    broadcasts: { state: true },
    dismissed: { state: true },
    demo: { state: true },
    watching: { state: true },
    faulted: { state: true },
  };

  sessionId = "";
  template = ""; // set by the landing page: the template to set up now
  session?: Session;
  now = Date.now();
  error = "";
  busy = "";
  creating = 0; // nodes being made
  confirm = ""; // the button waiting for a second click
  status: Record<string, TerminalState> = {};
  layout: Layout = { tabs: {}, active: {} };
  toast = ""; // a short message that goes away by itself
  files = ""; // the node whose files are open in the editor
  dropping = ""; // where files are being dragged over: a node's name, or "terminal"
  broadcasts: Broadcast[] = []; // the workshop's, newest first
  dismissed: string[] = []; // broadcastKey of those the learner closed
  demo?: DemoLink; // the instructor's demo, which an attendee may watch
  watching = false; // the demo's terminal is open
  faulted: string[] = []; // nodes a network fault touches (the Network panel says)

  private toastTimer?: number;
  private clock?: number;
  private poller?: number;
  private polling = false;
  private confirmTimer?: number;
  private attendeeToken?: string;
  private stopStream?: () => void;

  createRenderRoot() {
    return this;
  }

  connectedCallback() {
    super.connectedCallback();
    const given = takeLinkParam("token"); // a link that carries the session's token (the instructor's demo)
    if (given) useSessionToken(this.sessionId, given);
    this.layout = loadLayout(this.sessionId);
    this.attendeeToken = sessionAttendee(this.sessionId);
    this.dismissed = loadDismissed(this.sessionId);
    this.clock = window.setInterval(() => this.tick(), 250);
    this.addEventListener("sandlot-status", (e) => {
      const t = e.target as SandlotTerminal;
      const { state } = (e as CustomEvent<{ state: TerminalState }>).detail;
      this.status = { ...this.status, [`${t.getAttribute("instance")}/${t.getAttribute("tab")}`]: state };
      if (state === "reconnecting") void this.refresh(); // the node or the session may be gone
    });
    void this.start();
  }

  disconnectedCallback() {
    super.disconnectedCallback();
    clearInterval(this.clock);
    clearTimeout(this.poller);
    this.stopStream?.();
  }

  private async start() {
    await this.refresh();
    const t = this.template;
    this.template = "";
    if (!t || !this.session || this.session.state === "ended" || this.session.instances.length > 0) return;
    this.creating = 1;
    void api.templates().then((all) => {
      const n = all.find((x) => x.name === t);
      if (n && this.busy === "setup") this.creating = n.managers + n.workers;
    }, () => {});
    this.busy = "setup";
    const polling = window.setInterval(() => void this.refresh(), 300); // show each node as soon as it is up
    try {
      this.session = { ...this.session, ...(await api.setup(this.sessionId, t)) };
    } catch (e) {
      this.error = `Setting up the nodes failed: ${(e as ApiError).message}`;
    } finally {
      clearInterval(polling);
      this.creating = 0;
      this.busy = "";
      void this.refresh();
    }
  }

  /** refresh reads the session; it runs every few seconds, and more often near the end. */
  private async refresh(): Promise<void> {
    if (this.polling) return;
    this.polling = true;
    clearTimeout(this.poller);
    try {
      const s = await api.session(this.sessionId);
      this.session = s;
      if (s.workshop) this.broadcasts = mergeBroadcasts(this.broadcasts, s.workshop.messages ?? []);
      if (s.state === "ended") {
        this.stopTerminals();
        this.stopStream?.();
        return;
      }
      if (s.workshop && this.attendeeToken) this.listenWorkshop(this.attendeeToken);
      this.keepLayout(s.instances);
    } catch (e) {
      const err = e as ApiError;
      if ((err.status === 401 || err.status === 403) && (await this.tokenFromAttendee())) {
        this.polling = false;
        return await this.refresh();
      }
      if (err.status === 404 || err.status === 401 || err.status === 403) {
        this.error = err.status === 404 ? "There is no such session (it may have ended long ago)."
          : "This browser does not hold this session's key. Start a session of your own.";
        this.stopTerminals();
        this.session = undefined;
        return;
      }
      this.error = err.message;
    } finally {
      this.polling = false;
    }
    if (!this.error.startsWith("There is no") && this.session?.state !== "ended") {
      this.poller = window.setTimeout(() => void this.refresh(), this.left() < 3000 ? 250 : 1500);
    }
  }

  /** tokenFromAttendee asks the attendee's state for this session's token, for a browser that came back by the
   * attendee's personal link (it has no cookie of the session); true when it got one. */
  private async tokenFromAttendee(): Promise<boolean> {
    if (!this.attendeeToken || sessionToken(this.sessionId)) return false;
    try {
      const a = await api.attendee(this.attendeeToken);
      if (a.session_id !== this.sessionId || !a.session_token) return false;
      useSessionToken(this.sessionId, a.session_token);
      return true;
    } catch {
      return false;
    }
  }

  /** listenWorkshop hears the instructor's broadcasts, and the attendee's end, as they happen. */
  private listenWorkshop(token: string) {
    if (this.stopStream) return;
    this.stopStream = listen(attendeeEventsURL(token), ["state", "message"], (type, data) => {
      const ev = attendeeEvent(type, data);
      if (!ev) return;
      if (ev.kind === "message") this.broadcasts = mergeBroadcasts(this.broadcasts, [ev.message]);
      else {
        this.broadcasts = mergeBroadcasts(this.broadcasts, ev.view.messages);
        const d = ev.view.demo;
        this.demo = d && typeof d.session_id === "string" && typeof d.viewer_token === "string" ? d : undefined;
        if (!this.demo) this.watching = false;
        if (ev.view.state === "ended") void this.refresh();
      }
    });
  }

  private dismiss(m: Broadcast) {
    this.dismissed = [...this.dismissed, broadcastKey(m)].slice(-200);
    try {
      localStorage.setItem(`sandlot:dismissed:${this.sessionId}`, JSON.stringify(this.dismissed));
    } catch {
      // not kept: it comes back after a reload
    }
  }

  private left(): number {
    return this.session ? Date.parse(this.session.expires_at) - (Date.now() + serverOffset) : Infinity;
  }

  private tick() {
    this.now = Date.now();
    if (this.session?.state !== "ended" && this.left() <= 0 && !this.polling) void this.refresh();
  }

  /** keepLayout gives every node at least one tab and makes sure a node is selected. */
  private keepLayout(nodes: Instance[]) {
    const l: Layout = { selected: this.layout.selected, tabs: {}, active: {} };
    for (const n of nodes) {
      l.tabs[n.name] = this.layout.tabs[n.name]?.length ? this.layout.tabs[n.name] : [1];
      l.active[n.name] = l.tabs[n.name].includes(this.layout.active[n.name]) ? this.layout.active[n.name] : l.tabs[n.name][0];
    }
    if (!l.selected || !l.tabs[l.selected]) l.selected = nodes[0]?.name;
    const changed = JSON.stringify(l) !== JSON.stringify(this.layout);
    if (!changed) return;
    const first = !this.layout.selected && l.selected;
    this.layout = l;
    localStorage.setItem(`sandlot:layout:${this.sessionId}`, JSON.stringify(l));
    if (first) void this.focusSelected();
  }

  private setLayout(change: (l: Layout) => void) {
    const l: Layout = structuredClone(this.layout);
    change(l);
    this.layout = l;
    localStorage.setItem(`sandlot:layout:${this.sessionId}`, JSON.stringify(l));
    void this.focusSelected();
  }

  private select(name: string) {
    this.setLayout((l) => (l.selected = name));
  }

  private async focusSelected() {
    await this.updateComplete;
    const t = this.activeTerminal();
    t?.fit();
    t?.focus();
  }

  private activeTerminal(): SandlotTerminal | null {
    const n = this.layout.selected;
    if (!n) return null;
    return this.querySelector(`sandlot-terminal[instance="${n}"][tab="${this.layout.active[n]}"]`);
  }

  private stopTerminals() {
    this.querySelectorAll("sandlot-terminal").forEach((t) => t.stop());
  }

  private async act(what: string, run: () => Promise<unknown>) {
    this.busy = what;
    this.error = "";
    try {
      await run();
    } catch (e) {
      this.error = (e as ApiError).message;
    } finally {
      this.busy = "";
      await this.refresh();
    }
  }

  /** twice runs a destructive action on its second click (within 3 s). */
  private twice(key: string, run: () => void) {
    if (this.confirm !== key) {
      this.confirm = key;
      clearTimeout(this.confirmTimer);
      this.confirmTimer = window.setTimeout(() => (this.confirm = ""), 3000);
      return;
    }
    this.confirm = "";
    run();
  }

  private addNode() {
    this.creating++;
    void this.act("add", async () => {
      try {
        const n = await api.addNode(this.sessionId);
        this.setLayout((l) => (l.selected = n.name));
      } finally {
        this.creating--;
      }
    });
  }

  private newTab(node: string) {
    const used = this.layout.tabs[node] ?? [];
    const t = Array.from({ length: maxTabs }, (_, i) => i + 1).find((i) => !used.includes(i));
    if (!t) return;
    this.setLayout((l) => {
      l.tabs[node] = [...used, t];
      l.active[node] = t;
    });
  }

  private closeTab(node: string, tab: number) {
    this.setLayout((l) => {
      l.tabs[node] = l.tabs[node].filter((t) => t !== tab);
      if (l.active[node] === tab) l.active[node] = l.tabs[node][l.tabs[node].length - 1];
    });
  }

  render() {
    const s = this.session;
    if (!s) {
      return html`<div class="ended" role="alert"><div class="card"><h2>${this.error || "Loading…"}</h2>
        ${this.error ? html`<button class="primary" @click=${this.home}>Start a new session</button>` : nothing}</div></div>`;
    }
    return html`
      <header class="bar">
        <a class="brand" href="/" @click=${this.home}><span class="logo" aria-hidden="true">▦</span> Sandlot</a>
        ${s.workshop ? html`<span class="workshop-title" id="workshop-title">${s.workshop.title}</span>` : nothing}
        ${this.renderTime(s)}
        ${this.renderTraining(s)}
        <span class="usage" title="nodes in this session, of the most it may have">
          ${s.instances.length} / ${s.max_instances} nodes</span>
        <span class="spacer"></span>
        ${settingsControl(() => void this.focusSelected())}
        <button class="danger" id="end" ?disabled=${s.state === "ended"}
          @click=${() => this.twice("end", () => void this.act("end", () => api.end(this.sessionId)))}>
          ${this.confirm === "end" ? "Really end?" : "End session"}</button>
      </header>
      ${this.error ? html`<p class="banner error" role="alert">${this.error}
        <button class="link" @click=${() => (this.error = "")}>dismiss</button></p>` : nothing}
      ${this.renderWorkshopBanners(s)}
      ${this.renderDemo(s)}
      <div class="workspace">
        ${this.renderNodes(s)}
        ${this.renderTerminals(s)}
      </div>
      ${this.toast ? html`<p class="toast" role="status">${this.toast}</p>` : nothing}
      ${this.files && s.state !== "ended" ? html`<sl-files .session=${s.id} .node=${this.files}
        @close=${() => { this.files = ""; void this.focusSelected(); }}></sl-files>` : nothing}
      ${s.state === "ended" ? this.renderEnd(s) : nothing}`;
  }

  /** renderDemo offers an attendee the instructor's demo, to watch (read-only) beside their own nodes. */
  private renderDemo(s: Session) {
    const d = this.demo;
    if (!d || s.state === "ended") return nothing;
    return html`<section class="demo" aria-label="the instructor's demo">
      <button id="watch-demo" aria-expanded=${this.watching ? "true" : "false"}
        @click=${() => (this.watching = !this.watching)}>
        ${this.watching ? "Hide the instructor's demo" : "Watch the instructor's demo"}</button>
      ${this.watching ? html`<sandlot-terminal class="demo-term" session=${d.session_id} instance="node1"
        token=${d.viewer_token} viewer></sandlot-terminal>` : nothing}
    </section>`;
  }

  /** renderTraining is the workshop's clock: the time left of the training, beside the session's own. */
  private renderTraining(s: Session) {
    const ends = s.workshop?.ends_at;
    if (!ends || s.state === "ended") return nothing;
    const left = Date.parse(ends) - (Date.now() + serverOffset);
    const warn = warnFor(left);
    return html`<span class="time training ${warn === "soon" ? "low" : warn === "over" ? "critical" : ""}" id="training-left"
      role="timer" title="time until the workshop ends">
      <span aria-hidden="true">workshop ${warn === "over" ? "over" : formatCountdown(left)}</span>
      <span class="sr-only">${warn === "over" ? "the workshop's time is over" : `${spokenCountdown(left)} left in the workshop`}</span></span>`;
  }

  /** renderWorkshopBanners shows the end coming (from 5 minutes before) and the broadcasts not dismissed. */
  private renderWorkshopBanners(s: Session) {
    if (!s.workshop) return nothing;
    const ends = s.workshop.ends_at;
    const left = ends ? Date.parse(ends) - (Date.now() + serverOffset) : Infinity;
    const shown = this.broadcasts.filter((m) => !this.dismissed.includes(broadcastKey(m)));
    return html`
      <div class="workshop-banners" aria-live="polite">
        ${s.state !== "ended" && warnFor(left) === "soon" ? html`<p class="banner warn" id="workshop-ending">
          The workshop ends in ${spokenCountdown(left)}: save what you want to keep.</p>` : nothing}
        ${shown.map((m) => html`<p class="banner broadcast" data-at=${m.at}>
          <span class="muted">${new Date(m.at).toLocaleTimeString()} · from your instructor:</span> ${m.text}
          <button class="link" aria-label="dismiss this message" @click=${() => this.dismiss(m)}>dismiss</button></p>`)}
      </div>`;
  }

  private renderTime(s: Session) {
    const left = this.left();
    const canExtend = s.state !== "ended" && Date.parse(s.expires_at) < Date.parse(s.max_expires_at) - 1000;
    const cls = left < 60_000 ? "time critical" : left < 5 * 60_000 ? "time low" : "time";
    return html`
      <span class=${cls} id="time-left" role="timer" title="time until this session ends">
        ${s.state === "ended" ? "ended" : `${formatLeft(left)} left`}</span>
      ${canExtend ? html`<button id="extend" ?disabled=${this.busy === "extend"}
        @click=${() => this.act("extend", () => api.extend(this.sessionId, extendBy))}>Extend</button>` : nothing}`;
  }

  private say(text: string) {
    this.toast = text;
    clearTimeout(this.toastTimer);
    this.toastTimer = window.setTimeout(() => (this.toast = ""), 6000);
  }

  /** openPort opens a port of a node through the lab proxy, in a new tab. */
  private async openPort(node: string, port: number) {
    try {
      const link = await api.portLink(this.sessionId, node, port);
      window.open(link.url, "_blank", "noopener");
    } catch (e) {
      this.error = (e as ApiError).message;
    }
  }

  /** sharePort copies a link to a port that anyone may open for an hour. */
  private async sharePort(node: string, port: number) {
    try {
      const link = await api.portLink(this.sessionId, node, port, "1h");
      await copyText(link.url);
      this.say(`A link to ${node}:${port} is on your clipboard; anyone can open it until ${new Date(link.expires_at).toLocaleTimeString()}.`);
    } catch (e) {
      this.error = (e as ApiError).message;
    }
  }

  private dragOver(e: DragEvent, where: string) {
    if (!e.dataTransfer?.types.includes("Files")) return;
    e.preventDefault();
    e.dataTransfer.dropEffect = "copy";
    this.dropping = where;
  }

  /** drop uploads dropped files: onto a terminal, into its shell's directory; onto a node, into /root. */
  private async drop(e: DragEvent, node: string, dir: string) {
    e.preventDefault();
    this.dropping = "";
    const files = Array.from(e.dataTransfer?.files ?? []);
    if (!files.length || !node) return;
    this.say(`Uploading ${files.length === 1 ? files[0].name : `${files.length} files`} to ${node}:${dir}…`);
    try {
      const r = await api.upload(this.sessionId, node, dir, files);
      this.say(`Uploaded to ${node}: ${r.files.map((f) => f.path).join(", ")}`);
    } catch (err) {
      this.error = `Upload to ${node} failed: ${(err as ApiError).message}`;
    }
  }

  private renderNodes(s: Session) {
    const full = s.instances.length + this.creating >= s.max_instances;
    return html`
      <nav class="node-list" aria-label="nodes">
        <ul>
          ${s.instances.map((n) => {
            const key = `${n.name}/${this.layout.active[n.name]}`;
            const conn = this.status[key];
            return html`
              <li class="node ${this.layout.selected === n.name ? "selected" : ""} ${this.dropping === n.name ? "dropping" : ""} ${this.faulted.includes(n.name) ? "faulted" : ""}"
                data-node=${n.name} @dragover=${(e: DragEvent) => this.dragOver(e, n.name)}
                @dragleave=${() => (this.dropping = "")} @drop=${(e: DragEvent) => this.drop(e, n.name, "/root")}>
                <button class="pick" @click=${() => this.select(n.name)} aria-current=${this.layout.selected === n.name}>
                  <span class="dot ${n.status}" title=${n.status}></span>
                  <span class="name">${n.hostname || n.name}${this.faulted.includes(n.name) ? html` <span class="fault-mark"
                    title="a network fault touches ${n.name}" aria-label="network fault">⚡</span>` : nothing}</span>
                  <span class="ip">${n.ip ?? ""}</span>
                  <span class="state">${n.status}${conn === "reconnecting" ? " · reconnecting" : ""}</span>
                </button>
                ${n.ports?.length ? html`<span class="ports">${n.ports.map((p) => html`
                  <span class="port" data-port=${p}><button class="port-open" title="open ${n.name}:${p} in a new tab"
                    @click=${() => this.openPort(n.name, p)}>${p}</button><button class="port-share" title="copy a link anyone can open for 1 h"
                    aria-label="share ${n.name}:${p}" @click=${() => this.sharePort(n.name, p)}>⤴</button></span>`)}</span>` : nothing}
                <span class="node-actions">
                  <button class="icon files-open" title="files of ${n.name}" aria-label="files of ${n.name}" ?disabled=${s.state === "ended"}
                    @click=${() => (this.files = n.name)}>≡</button>
                  <button class="icon" title="restart ${n.name}" aria-label="restart ${n.name}" ?disabled=${!!this.busy || s.state === "ended"}
                    @click=${() => this.twice(`restart:${n.name}`, () => void this.act("restart", () => api.restartNode(this.sessionId, n.name)))}>
                    ${this.confirm === `restart:${n.name}` ? "restart?" : "⟳"}</button>
                  <button class="icon" title="delete ${n.name}" aria-label="delete ${n.name}" ?disabled=${!!this.busy || s.state === "ended"}
                    @click=${() => this.twice(`delete:${n.name}`, () => void this.act("delete", () => api.removeNode(this.sessionId, n.name)))}>
                    ${this.confirm === `delete:${n.name}` ? "delete?" : "✕"}</button>
                </span>
              </li>`;
          })}
          ${Array.from({ length: this.creating }, () => html`
            <li class="node placeholder"><span class="dot creating"></span><span class="name">starting a node…</span></li>`)}
        </ul>
        <button id="add-node" class="primary" ?disabled=${full || s.state === "ended" || this.busy === "setup"}
          title=${full ? `a session may have ${s.max_instances} nodes` : "add a node to this session"}
          @click=${this.addNode}>+ Add node</button>
        ${!s.instances.length && !this.creating && s.state !== "ended"
          ? html`<p class="hint">No nodes yet. Add one to get a shell.</p>` : nothing}
        <sl-network .session=${s.id} .nodes=${s.instances.filter((n) => n.status !== "creating").map((n) => n.name)}
          ?ended=${s.state === "ended"} @network-change=${(e: CustomEvent<string[]>) => (this.faulted = e.detail)}></sl-network>
      </nav>`;
  }

  private renderTerminals(s: Session) {
    const sel = this.layout.selected;
    const terms = s.instances.flatMap((n) => (this.layout.tabs[n.name] ?? []).map((tab) => ({ node: n.name, tab })));
    return html`
      <section class="terminals ${this.dropping === "terminal" ? "dropping" : ""}" aria-label="terminals"
        @dragover=${(e: DragEvent) => this.dragOver(e, "terminal")} @dragleave=${() => (this.dropping = "")}
        @drop=${(e: DragEvent) => this.drop(e, sel ?? "", this.activeTerminal()?.cwd || "/root")}>
        ${sel && this.layout.tabs[sel] ? html`
          <div class="tabs" role="tablist">
            ${this.layout.tabs[sel].map((tab) => {
              const st = this.status[`${sel}/${tab}`];
              return html`
                <span class="tab ${this.layout.active[sel] === tab ? "active" : ""}" role="tab"
                  aria-selected=${this.layout.active[sel] === tab} data-tab=${tab}>
                  <button class="tab-pick" @click=${() => this.setLayout((l) => (l.active[sel] = tab))}>
                    ${sel} · ${tab}<span class="conn ${st ?? ""}" title=${st ?? ""}></span></button>
                  ${this.layout.tabs[sel].length > 1 ? html`<button class="tab-close" title="close this tab (the shell stays)"
                    aria-label="close tab ${tab}" @click=${() => this.closeTab(sel, tab)}>×</button>` : nothing}
                </span>`;
            })}
            ${this.layout.tabs[sel].length < maxTabs ? html`<button class="tab-new" title="another shell on ${sel}"
              aria-label="new terminal on ${sel}" @click=${() => this.newTab(sel)}>+</button>` : nothing}
          </div>` : nothing}
        <div class="stack">
          ${repeat(terms, (t) => `${t.node}/${t.tab}`, (t) => html`
            <sandlot-terminal session=${s.id} instance=${t.node} tab=${t.tab} token=${ifDefined(sessionToken(s.id))} theme=${settings.theme}
              font-size=${settings.fontSize} class=${t.node === sel && this.layout.active[t.node] === t.tab ? "shown" : ""}>
            </sandlot-terminal>`)}
        </div>
      </section>`;
  }

  private renderEnd(s: Session) {
    const reason: string = s.end_reason ?? "expired";
    const workshop = reason === "workshop_ended";
    return html`
      <div class="ended" role="alertdialog" aria-labelledby="ended-title">
        <div class="card">
          <h2 id="ended-title">${workshop ? "The workshop has ended" : "This session has ended"}</h2>
          <p class="reason" data-reason=${reason}>${workshop ? html`${s.workshop?.title ?? "The workshop"} is over; thank you
            for taking part.` : html`<strong>${reason}</strong>: ${reason === "admin" && s.workshop ? "The instructor ended it." : endReasons[reason] ?? ""}`}
            ${s.end_message && reason === "error" ? html`<br /><small>${s.end_message}</small>` : nothing}</p>
          <p>Its nodes and everything on them are gone.</p>
          <button class="primary big" id="restart-session" @click=${this.home}>Start a new session</button>
        </div>
      </div>`;
  }

  private home = (e?: Event) => {
    e?.preventDefault();
    this.dispatchEvent(new CustomEvent("sandlot-navigate", { bubbles: true, detail: { path: "/" } }));
  };
}

customElements.define("sl-session", SessionPage);
