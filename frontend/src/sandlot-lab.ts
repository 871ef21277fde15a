// <sandlot-lab>: a whole lab for a documentation page, built on the SDK. The page loads one module and writes
//
//   <script type="module" src="https://sandlot.example/assets/sandlot-lab.js"></script>
//   <sandlot-lab template="swarm-1m1w" nodes="2"></sandlot-lab>
//
// and gets a Start button; nothing is asked of the server until the reader presses it (or runs a block). Then the
// session is made, its nodes appear as terminals (the element's own <sandlot-terminal instance="node2"> children
// where the page placed them, or one per node in a grid), with the time left and, at the end, why it ended. The
// session's id and token are kept in this tab's sessionStorage under the page and the lab, so a reload comes back
// to the same lab.
//
// Attributes: template, nodes (how many nodes to have, default 1 without a template), duration ("30m"), server
// (the Sandlot origin, default the one this script came from), launch-token (minted by the page's backend), id
// (names the lab for blocks and storage when a page has several). Property getLaunchToken: an async function
// returning a launch token, asked at Start.
// In the page: <pre data-sandlot-run="node1"> gets Run (types the block into node1's terminal) and Copy buttons;
// <a data-sandlot-port="node1:8080"> opens that port through the lab proxy. data-sandlot-lab="<id>" ties either to
// a lab other than the page's first.
// The element's state is in data-state: idle, starting, running, ended, error; "sandlot-lab-state" events say so.

import { Sandlot, SandlotError, type Session } from "./sdk/index";
import type { SandlotTerminal } from "./sandlot-terminal";
import { copyText } from "./clipboard";

export type LabState = "idle" | "starting" | "running" | "ended" | "error";

const here = import.meta.url;

const css = `
sandlot-lab { display: block; margin: 1em 0; border: 1px solid #c8ccd1; border-radius: 8px; overflow: hidden;
  background: #14171c; font: 14px system-ui, sans-serif; }
sandlot-lab .sl-lab-bar { display: flex; align-items: center; gap: 10px; padding: 6px 10px; background: #f6f8fa;
  color: #1f2328; border-bottom: 1px solid #c8ccd1; }
sandlot-lab .sl-lab-bar .sl-lab-msg { flex: 1; }
sandlot-lab .sl-lab-bar .sl-lab-left { font-variant-numeric: tabular-nums; color: #57606a; }
sandlot-lab .sl-lab-bar .sl-lab-left.low { color: #9a6700; }
sandlot-lab .sl-lab-bar .sl-lab-left.out { color: #cf222e; }
sandlot-lab button, .sandlot-run button { font: 13px system-ui, sans-serif; padding: 3px 12px; border-radius: 6px;
  border: 1px solid #c8ccd1; background: #fff; color: #1f2328; cursor: pointer; }
sandlot-lab button.sl-lab-start { background: #1f6feb; border-color: #1f6feb; color: #fff; font-weight: 600; }
sandlot-lab button:disabled { opacity: .6; cursor: default; }
sandlot-lab .sl-lab-grid { display: grid; grid-template-columns: repeat(var(--sl-cols, 1), minmax(0, 1fr)); gap: 1px;
  background: #30363d; }
sandlot-lab .sl-lab-node { background: #14171c; }
sandlot-lab .sl-lab-node > .sl-lab-name { padding: 2px 8px; font: 12px ui-monospace, monospace; color: #8b949e; }
sandlot-lab sandlot-terminal { height: var(--sl-height, 320px); }
sandlot-lab sandlot-terminal:not([session]) { height: 0; min-height: 0; }
sandlot-lab .sl-lab-node:has(sandlot-terminal:not([session])) { display: none; }
sandlot-lab[data-state="idle"] .sl-lab-bar, sandlot-lab[data-state="error"] .sl-lab-bar { border-bottom: 0; }
.sandlot-run { position: relative; }
.sandlot-run > .sandlot-run-buttons { position: absolute; top: 4px; right: 4px; display: flex; gap: 4px; }
.sandlot-run > .sandlot-run-buttons button { padding: 1px 8px; font-size: 12px; opacity: .85; }
`;

const endReasons: Record<string, string> = {
  expired: "its time ran out",
  deleted: "it was ended",
  idle: "nothing happened in it for too long",
  error: "it failed on the server",
  admin: "an administrator ended it",
  workshop_ended: "its workshop ended",
};

function adoptStyles() {
  if (document.head.querySelector("style[data-sandlot-lab]")) return;
  const style = document.createElement("style");
  style.dataset.sandlotLab = "";
  style.textContent = css;
  document.head.appendChild(style);
}

function el<K extends keyof HTMLElementTagNameMap>(tag: K, cls: string, text = ""): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  e.className = cls;
  e.textContent = text;
  return e;
}

/** Saved is what a reload needs to come back to the lab. */
interface Saved {
  id: string;
  token: string;
}

export class SandlotLab extends HTMLElement {
  /** getLaunchToken, when set, is asked for a launch token at Start (a page whose backend mints them). */
  getLaunchToken?: () => string | Promise<string>;
  /** session is the lab's session once there is one. */
  session?: Session;

  private client?: Sandlot;
  private bar?: HTMLElement;
  private msg!: HTMLElement;
  private left!: HTMLElement;
  private startButton!: HTMLButtonElement;
  private endButton!: HTMLButtonElement;
  private ticker?: ReturnType<typeof setInterval>;
  private starting?: Promise<Session>;
  private stopWatching: (() => void)[] = [];

  get state(): LabState {
    return (this.dataset.state as LabState) || "idle";
  }

  connectedCallback() {
    if (this.bar) return;
    adoptStyles();
    this.bar = el("div", "sl-lab-bar");
    this.msg = el("span", "sl-lab-msg", "A lab with real Docker hosts, for this page.");
    this.left = el("span", "sl-lab-left");
    this.startButton = el("button", "sl-lab-start", "Start the lab");
    this.endButton = el("button", "sl-lab-end", "End");
    this.endButton.hidden = true;
    this.startButton.onclick = () => void this.start().catch(() => {});
    this.endButton.onclick = () => void this.end();
    this.bar.append(this.msg, this.left, this.startButton, this.endButton);
    this.prepend(this.bar);
    if (!this.querySelector("sandlot-terminal")) this.defaultLayout();
    this.setState("idle");
    // Blocks and links may come after the element in the page: decorate once the document is parsed.
    if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", () => this.decorate(), { once: true });
    else this.decorate();
    const saved = this.saved();
    if (saved) void this.resume(saved);
  }

  disconnectedCallback() {
    queueMicrotask(() => {
      if (this.isConnected) return;
      this.session?.unwatch();
      clearInterval(this.ticker);
    });
  }

  /** start starts the lab (or answers the one running): the reader asked for it. */
  start(): Promise<Session> {
    if (this.session && !this.session.ended) return Promise.resolve(this.session);
    this.starting ??= this.create().finally(() => (this.starting = undefined));
    return this.starting;
  }

  /** end ends the lab's session. */
  async end() {
    this.endButton.disabled = true;
    try {
      await this.session?.end();
    } catch (e) {
      this.fail(e);
    } finally {
      this.endButton.disabled = false;
    }
  }

  /** run types text into node's terminal (starting the lab first if it is not running). */
  async run(node: string, text: string) {
    await this.start();
    const term = this.terminalOf(node);
    if (!term) {
      this.msg.textContent = `This page has no terminal for ${node}.`;
      return;
    }
    await customElements.whenDefined("sandlot-terminal");
    term.type(text.replace(/\s+$/, "") + "\n");
    term.scrollIntoView({ block: "nearest" });
    term.focus();
  }

  /** openPort opens a node's port in a new tab through the lab proxy. */
  async openPort(node: string, port: number) {
    if (!this.session || this.session.ended) {
      this.msg.textContent = `Start the lab first: then ${node}:${port} opens here.`;
      return;
    }
    const tab = window.open("about:blank", "_blank"); // now, while the click still allows a new tab
    try {
      const link = await this.session.portLink(node, port);
      if (tab) {
        tab.opener = null;
        tab.location.href = link.url;
      } else window.open(link.url, "_blank", "noopener");
    } catch (e) {
      tab?.close();
      this.fail(e);
    }
  }

  private sandlot(): Sandlot {
    this.client ??= new Sandlot({
      server: this.getAttribute("server") || new URL(here).origin,
      loadTerminal: () => import(/* @vite-ignore */ new URL("sandlot-terminal.js", here).href),
    });
    return this.client;
  }

  private get storageKey(): string {
    const labs = Array.from(document.querySelectorAll("sandlot-lab"));
    return `sandlot-lab:${this.sandlot().server}:${location.pathname}:${this.id || labs.indexOf(this)}`;
  }

  private saved(): Saved | undefined {
    try {
      const s = JSON.parse(sessionStorage.getItem(this.storageKey) ?? "null") as Saved | null;
      return s?.id && s.token ? s : undefined;
    } catch {
      return undefined;
    }
  }

  private save(s: Saved | undefined) {
    try {
      if (s) sessionStorage.setItem(this.storageKey, JSON.stringify({ id: s.id, token: s.token }));
      else sessionStorage.removeItem(this.storageKey);
    } catch {
      // no storage: a reload starts afresh
    }
  }

  /** wanted is how many nodes the lab should have: the nodes attribute, else the terminals laid out, else 1. */
  private get wanted(): number {
    const n = Number(this.getAttribute("nodes"));
    if (Number.isInteger(n) && n > 0) return Math.min(n, 10);
    if (this.getAttribute("template")) return 0;
    return Math.max(1, new Set(Array.from(this.terminals(), (t) => t.getAttribute("instance"))).size);
  }

  private terminals(): NodeListOf<SandlotTerminal> {
    return this.querySelectorAll("sandlot-terminal");
  }

  private terminalOf(node: string): SandlotTerminal | null {
    return this.querySelector(`sandlot-terminal[instance="${CSS.escape(node)}"]`);
  }

  private defaultLayout() {
    const n = Math.max(1, Number(this.getAttribute("nodes")) || 1);
    const grid = el("div", "sl-lab-grid");
    grid.style.setProperty("--sl-cols", String(Math.min(n, 2)));
    for (let i = 1; i <= Math.min(n, 10); i++) {
      const cell = el("div", "sl-lab-node");
      const term = document.createElement("sandlot-terminal");
      term.setAttribute("instance", `node${i}`);
      cell.append(el("div", "sl-lab-name", `node${i}`), term);
      grid.append(cell);
    }
    this.append(grid);
  }

  private async create(): Promise<Session> {
    this.setState("starting");
    this.msg.textContent = "Starting the lab…";
    this.startButton.disabled = true;
    try {
      const client = this.sandlot();
      const terminal = client.defineTerminal();
      const launchToken = this.getAttribute("launch-token") || (await this.getLaunchToken?.()) || undefined;
      const s = await client.createSession({ template: this.getAttribute("template") ?? undefined,
        duration: this.getAttribute("duration") ?? undefined, launchToken });
      this.save(s);
      this.attach(s);
      this.msg.textContent = "Starting the nodes…";
      const missing = Math.max(0, this.wanted - s.nodes.length);
      const added = await Promise.allSettled(Array.from({ length: missing }, () => s.addNode()));
      await terminal;
      this.running();
      // The session runs with the nodes it got: say why the others are missing (a quota, capacity).
      const refused = added.find((r): r is PromiseRejectedResult => r.status === "rejected");
      if (refused) this.fail(refused.reason);
      return s;
    } catch (e) {
      this.fail(e);
      throw e;
    } finally {
      this.startButton.disabled = false;
    }
  }

  private async resume(saved: Saved) {
    this.setState("starting");
    this.msg.textContent = "Coming back to your lab…";
    try {
      const client = this.sandlot();
      const s = await client.session(saved.id, saved.token);
      this.attach(s);
      if (s.ended) return;
      await client.defineTerminal();
      this.running();
    } catch (e) {
      const err = e as SandlotError;
      if (err.status >= 400 && err.status < 500) {
        this.save(undefined); // gone, or no longer ours: start afresh
        this.setState("idle");
        this.msg.textContent = "Your earlier lab is gone. Start a new one.";
      } else this.fail(e);
    }
  }

  /** attach makes s the lab's session: terminals follow its nodes, the bar its time and end. */
  private attach(s: Session) {
    this.stopWatching.forEach((f) => f());
    this.session = s;
    const follow = () => {
      for (const n of s.nodes) {
        const t = this.terminalOf(n.name);
        if (t && n.status !== "creating" && t.getAttribute("session") !== s.id) s.configure(t, n.name);
      }
    };
    this.stopWatching = [
      s.on("change", () => {
        follow();
        this.tick();
      }),
      s.on("ended", () => this.ended()),
    ];
    follow();
    s.watch();
    clearInterval(this.ticker);
    this.ticker = setInterval(() => this.tick(), 1000);
    this.tick();
    if (s.ended) this.ended();
  }

  private running() {
    if (this.session?.ended) return;
    this.setState("running");
    this.msg.textContent = "Your lab is running.";
    this.startButton.hidden = true;
    this.endButton.hidden = false;
  }

  private ended() {
    const v = this.session?.view;
    clearInterval(this.ticker);
    this.terminals().forEach((t) => t.stop?.());
    this.save(undefined);
    this.setState("ended");
    const why = endReasons[v?.end_reason ?? ""] ?? v?.end_reason ?? "";
    this.msg.textContent = `The lab ended${why ? `: ${why}` : ""}.${v?.end_message ? ` ${v.end_message}` : ""}`;
    this.left.textContent = "";
    this.startButton.textContent = "Start a new lab";
    this.startButton.hidden = false;
    this.endButton.hidden = true;
  }

  private fail(e: unknown) {
    const err = e as SandlotError;
    if (!this.session || this.session.ended) this.setState("error");
    this.msg.textContent = err.message + (err.retryAfter ? ` Try again in ${err.retryAfter} s.` : "");
  }

  private tick() {
    const at = this.session?.expiresAt;
    if (!at || this.session?.ended) return;
    const s = Math.max(0, Math.round((at.getTime() - Date.now()) / 1000));
    const h = Math.floor(s / 3600);
    const m = Math.floor(s / 60) % 60;
    const mm = h ? `${h}:${String(m).padStart(2, "0")}` : String(m);
    this.left.textContent = `${mm}:${String(s % 60).padStart(2, "0")} left`;
    this.left.className = `sl-lab-left${s < 60 ? " out" : s < 300 ? " low" : ""}`;
  }

  private setState(state: LabState) {
    if (this.dataset.state === state) return;
    this.dataset.state = state;
    this.dispatchEvent(new CustomEvent("sandlot-lab-state", { detail: { state }, bubbles: true }));
  }

  /** mine says whether a block or link of the page belongs to this lab. */
  private mine(e: Element): boolean {
    const name = e.getAttribute("data-sandlot-lab");
    return name ? name === this.id : document.querySelector("sandlot-lab") === this;
  }

  /** decorate gives the page's click-to-run blocks their buttons and its port links their action. */
  private decorate() {
    for (const block of document.querySelectorAll<HTMLElement>("[data-sandlot-run]")) {
      if (!this.mine(block) || block.dataset.sandlotDecorated !== undefined) continue;
      block.dataset.sandlotDecorated = "";
      const text = block.textContent ?? "";
      const node = block.dataset.sandlotRun || "node1";
      const wrap = el("div", "sandlot-run");
      const buttons = el("div", "sandlot-run-buttons");
      const run = el("button", "sandlot-run-button", "Run");
      run.title = `Type this into ${node}'s terminal`;
      run.onclick = () => void this.run(node, text).catch(() => {});
      const copy = el("button", "sandlot-copy-button", "Copy");
      copy.onclick = () =>
        void copyText(text.replace(/\s+$/, "")).then(() => {
          copy.textContent = "Copied";
          setTimeout(() => (copy.textContent = "Copy"), 1500);
        });
      buttons.append(run, copy);
      block.replaceWith(wrap);
      wrap.append(block, buttons);
    }
    for (const link of document.querySelectorAll<HTMLElement>("[data-sandlot-port]")) {
      if (!this.mine(link) || link.dataset.sandlotDecorated !== undefined) continue;
      link.dataset.sandlotDecorated = "";
      const [node, port] = (link.dataset.sandlotPort ?? "").split(":");
      link.addEventListener("click", (ev) => {
        ev.preventDefault();
        void this.openPort(node, Number(port));
      });
    }
  }
}

if (!customElements.get("sandlot-lab")) customElements.define("sandlot-lab", SandlotLab);

declare global {
  interface HTMLElementTagNameMap {
    "sandlot-lab": SandlotLab;
  }
}
