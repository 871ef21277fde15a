// <sandlot-terminal>: one shell of one node, in xterm.js, over the terminal protocol (terminal/PROTOCOL.md).
// It stands alone so that any page can place a terminal:
//
//   <sandlot-terminal session="…" instance="node1" token="…"></sandlot-terminal>
//
// Attributes: session, instance (node name), token (optional: without it the session cookie is used), tab
// (which shell of the node, 1-8, default 1), server (origin of the Sandlot server, default this page's), viewer
// (read only), theme ("dark" or "light"), font-size (pixels).
// An element without a session waits (no connection) until it is given one: <sandlot-lab> lays terminals out
// before its session exists.
// Events: "sandlot-status" with detail {state, code?}: connecting, open, reconnecting, replaced, exited, closed.
//
// The element never loses a keystroke it accepted: input typed while the connection is down waits (up to 64 KiB)
// and goes out when it is back. Reconnection is silent and resumes the output at the byte where it stopped.

import { Terminal, type ITheme } from "@xterm/xterm";
import { FitAddon } from "@xterm/addon-fit";
import { SearchAddon } from "@xterm/addon-search";
import { Unicode11Addon } from "@xterm/addon-unicode11";
import { WebLinksAddon } from "@xterm/addon-web-links";
import { WebglAddon } from "@xterm/addon-webgl";
import xtermCSS from "@xterm/xterm/css/xterm.css";
import * as proto from "./protocol";
import { copyText, readClipboard } from "./clipboard";
import { fastWebGL } from "./gl";

export type TerminalState = "connecting" | "open" | "reconnecting" | "replaced" | "exited" | "closed";

const themes: Record<string, ITheme> = {
  dark: { background: "#14171c", foreground: "#d8dee9", cursor: "#d8dee9", selectionBackground: "#4c566a" },
  light: { background: "#fbfbf8", foreground: "#1f2328", cursor: "#1f2328", selectionBackground: "#b6d4fe",
    black: "#1f2328", white: "#6e7781", brightWhite: "#8c959f", yellow: "#9a6700", brightYellow: "#7d4e00" },
};

const maxPendingInput = 64 * 1024;
const pingEvery = 15_000;
const silenceLimit = 45_000; // nothing heard for this long (pings included): the connection is dead
const encoder = new TextEncoder();

const elementCSS = `
sandlot-terminal { display: block; position: relative; min-height: 120px; overflow: hidden; }
sandlot-terminal > .sl-term { position: absolute; inset: 4px 0 0 6px; }
sandlot-terminal .sl-menu { position: fixed; z-index: 1000; min-width: 150px; padding: 4px 0; font: 13px system-ui, sans-serif;
  background: #fff; color: #1f2328; border: 1px solid #c8ccd1; border-radius: 6px; box-shadow: 0 4px 16px #0003; }
sandlot-terminal .sl-menu button { display: block; width: 100%; padding: 5px 14px; border: 0; background: none;
  color: inherit; font: inherit; text-align: left; cursor: pointer; }
sandlot-terminal .sl-menu button:hover, sandlot-terminal .sl-menu button:focus { background: #e8eef7; outline: none; }
sandlot-terminal .sl-menu kbd { float: right; color: #6e7781; font: 11px system-ui, sans-serif; }
sandlot-terminal .sl-notice { position: absolute; inset: auto 12px 12px auto; padding: 8px 12px; border-radius: 6px;
  font: 13px system-ui, sans-serif; background: #fff; color: #1f2328; box-shadow: 0 2px 10px #0004; }
sandlot-terminal .sl-notice button { margin-left: 8px; }
`;

/** Install xterm's and the element's styles once into the document or shadow root the element lives in. */
function adoptStyles(root: Node) {
  const host = root instanceof ShadowRoot ? root : document.head;
  if (host.querySelector?.("style[data-sandlot-terminal]")) return;
  const style = document.createElement("style");
  style.dataset.sandlotTerminal = "";
  style.textContent = xtermCSS + elementCSS;
  host.appendChild(style);
}

export class SandlotTerminal extends HTMLElement {
  static observedAttributes = ["theme", "font-size", "session", "instance", "token", "server"];

  private term?: Terminal;
  private fitter = new FitAddon();
  private searcher = new SearchAddon();
  private ws?: WebSocket;
  private target = ""; // the URL ws was opened to
  private box?: HTMLDivElement;
  private observer?: ResizeObserver;
  private next = 0; // offset of the next output byte we need
  private consumed = 0; // output offset xterm has parsed
  private acked = 0;
  private pending: Uint8Array<ArrayBuffer>[] = [];
  private pendingBytes = 0;
  private retry = 0;
  private retryTimer?: number;
  private pingTimer?: number;
  private heard = 0;
  private stopped = false;
  private _state: TerminalState = "connecting";
  private exitCode?: number;
  private menu?: HTMLElement;
  private copyTimer?: number;

  /** cwd is the shell's current directory, as it last said (OSC 7); "" until it has. */
  cwd = "";

  get state(): TerminalState {
    return this._state;
  }

  private get mode(): proto.Role {
    return this.hasAttribute("viewer") ? "viewer" : "driver";
  }

  connectedCallback() {
    if (this.term) return;
    adoptStyles(this.getRootNode());
    this.stopped = false;
    this.box = document.createElement("div");
    this.box.className = "sl-term";
    this.replaceChildren(this.box);
    const term = new Terminal({
      allowProposedApi: true,
      cursorBlink: true,
      disableStdin: this.mode === "viewer",
      fontFamily: '"DejaVu Sans Mono", "Menlo", "Consolas", "Liberation Mono", monospace',
      fontSize: this.fontSize(),
      scrollback: 10_000,
      theme: themes[this.getAttribute("theme") ?? "dark"] ?? themes.dark,
    });
    this.term = term;
    term.loadAddon(this.fitter);
    term.loadAddon(this.searcher);
    term.loadAddon(new Unicode11Addon());
    term.unicode.activeVersion = "11";
    term.loadAddon(new WebLinksAddon());
    term.open(this.box);
    // The shell says where it is (OSC 7, set up by the node's profile): files dropped on the terminal go there.
    term.parser.registerOscHandler(7, (data) => {
      try {
        this.cwd = decodeURIComponent(new URL(data).pathname) || this.cwd;
      } catch {
        // not a file:// URL: keep what we had
      }
      return true;
    });
    this.useWebGL();
    term.onData((d) => this.send(encoder.encode(d)));
    term.onBinary((d) => this.send(Uint8Array.from(d, (c) => c.charCodeAt(0))));
    term.onResize(({ cols, rows }) => this.mode === "driver" && this.sendNow(proto.resize(cols, rows)));
    term.onSelectionChange(() => this.copySoon());
    term.attachCustomKeyEventHandler((e) => this.key(e));
    this.addEventListener("contextmenu", (e) => this.openMenu(e));
    this.observer = new ResizeObserver(() => this.fit());
    this.observer.observe(this);
    this.fit();
    this.connect();
    window.addEventListener("online", this.wake);
    document.addEventListener("visibilitychange", this.wake);
  }

  disconnectedCallback() {
    // Moved within the page: connectedCallback runs again and finds everything in place.
    queueMicrotask(() => {
      if (!this.isConnected) this.dispose();
    });
  }

  attributeChangedCallback(name: string) {
    if (!this.term) return;
    if (name === "theme") this.term.options.theme = themes[this.getAttribute("theme") ?? "dark"] ?? themes.dark;
    if (name === "font-size") {
      this.term.options.fontSize = this.fontSize();
      this.fit();
    }
    if (name === "session" || name === "instance" || name === "token" || name === "server") this.retarget();
  }

  /**
   * retarget connects to the shell the attributes now name: a terminal given its session late, or another one (a
   * terminal stopped because its session ended comes back to life for a new session). The same shell again is
   * nothing to do.
   */
  private retarget() {
    if (!this.getAttribute("session") || (this.target === this.url() && (this.stopped || this.ws))) return;
    this.stopped = false;
    if (this.term) this.term.options.disableStdin = this.mode === "viewer";
    const ws = this.ws;
    this.ws = undefined; // its close is not ours to handle
    ws?.close(proto.close.normal);
    clearInterval(this.pingTimer);
    this.next = this.consumed = this.acked = 0;
    this.exitCode = undefined;
    this.term?.reset();
    this.setState("connecting");
    queueMicrotask(() => !this.ws && this.connect()); // several attributes set in a row connect once
  }

  /** dispose closes the connection and frees the terminal; the shell on the node stays. */
  dispose() {
    this.stop();
    window.removeEventListener("online", this.wake);
    document.removeEventListener("visibilitychange", this.wake);
    this.observer?.disconnect();
    this.term?.dispose();
    this.term = undefined;
  }

  /** stop closes the connection for good (the session ended) and keeps what the terminal shows. */
  stop() {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    clearInterval(this.pingTimer);
    this.ws?.close(proto.close.normal);
    if (this.term) this.term.options.disableStdin = true;
  }

  override focus() {
    this.term?.focus();
  }

  /** text is everything the terminal shows and keeps in its scrollback; rows wrapped from a long line are one line. */
  text(): string {
    const buf = this.term?.buffer.active;
    if (!buf) return "";
    const lines: string[] = [];
    for (let i = 0; i < buf.length; i++) {
      const line = buf.getLine(i);
      const s = line?.translateToString(true) ?? "";
      if (line?.isWrapped && lines.length) lines[lines.length - 1] += s;
      else lines.push(s);
    }
    return lines.join("\n");
  }

  /** locate scrolls to the last line containing s and returns where its first cell is on screen. */
  locate(s: string): { x: number; y: number; cellWidth: number; cellHeight: number } | null {
    const term = this.term;
    const screen = this.querySelector(".xterm-screen");
    if (!term || !screen) return null;
    const buf = term.buffer.active;
    for (let i = buf.length - 1; i >= 0; i--) {
      if (!buf.getLine(i)?.translateToString(true).includes(s)) continue;
      if (i < buf.viewportY || i >= buf.viewportY + term.rows) term.scrollToLine(Math.max(0, i - 1));
      const r = screen.getBoundingClientRect();
      const cellWidth = r.width / term.cols;
      const cellHeight = r.height / term.rows;
      const row = i - term.buffer.active.viewportY;
      return { x: r.left + cellWidth / 2, y: r.top + cellHeight * (row + 0.5), cellWidth, cellHeight };
    }
    return null;
  }

  /** type sends text to the shell as if typed, each newline as Enter (sent once connected, if it is not yet). */
  type(text: string) {
    this.send(encoder.encode(text.replace(/\r?\n/g, "\r")));
  }

  /** paste types text into the shell as a paste (bracketed when the shell asks for that). */
  paste(text: string) {
    if (this.mode === "driver") this.term?.paste(text);
  }

  findNext(q: string): boolean {
    return this.searcher.findNext(q);
  }

  findPrevious(q: string): boolean {
    return this.searcher.findPrevious(q);
  }

  /** takeOver reconnects as the driver after another window took this terminal. */
  takeOver() {
    this.notice();
    this.stopped = false;
    this.connect();
  }

  private fontSize(): number {
    const n = Number(this.getAttribute("font-size"));
    return n >= 8 && n <= 40 ? n : 14;
  }

  private useWebGL() {
    if (!fastWebGL()) return; // drawn by the CPU: the DOM renderer costs less
    try {
      const gl = new WebglAddon();
      gl.onContextLoss(() => gl.dispose()); // xterm falls back to its DOM renderer
      this.term!.loadAddon(gl);
    } catch {
      // No WebGL2 here: the DOM renderer stays.
    }
  }

  fit() {
    if (!this.term || this.offsetWidth === 0 || this.offsetHeight === 0) return;
    const d = this.fitter.proposeDimensions();
    if (!d || !Number.isFinite(d.cols) || !Number.isFinite(d.rows)) return;
    const cols = Math.min(Math.max(d.cols, 2), proto.maxCols);
    const rows = Math.min(Math.max(d.rows, 1), proto.maxRows);
    if (this.mode === "driver" && (cols !== this.term.cols || rows !== this.term.rows)) this.term.resize(cols, rows);
  }

  private url(): string {
    const server = this.getAttribute("server") || location.origin;
    const u = new URL(
      `/api/v1/sessions/${encodeURIComponent(this.getAttribute("session") ?? "")}/instances/` +
        `${encodeURIComponent(this.getAttribute("instance") ?? "")}/terminal`,
      server,
    );
    u.protocol = u.protocol === "https:" ? "wss:" : "ws:";
    u.searchParams.set("t", this.getAttribute("tab") || "1");
    const token = this.getAttribute("token");
    if (token) u.searchParams.set("token", token);
    return u.toString();
  }

  private setState(state: TerminalState, code?: number) {
    if (this._state === state) return;
    this._state = state;
    this.dispatchEvent(new CustomEvent("sandlot-status", { detail: { state, code }, bubbles: true }));
  }

  private connect() {
    if (this.stopped || !this.term || !this.getAttribute("session")) return;
    clearTimeout(this.retryTimer);
    this.target = this.url();
    const ws = new WebSocket(this.target);
    ws.binaryType = "arraybuffer";
    this.ws = ws;
    ws.onopen = () => {
      this.heard = Date.now();
      ws.send(proto.hello(this.mode, this.term!.cols, this.term!.rows, this.next));
      clearInterval(this.pingTimer);
      this.pingTimer = window.setInterval(() => this.keepAlive(ws), pingEvery);
    };
    ws.onmessage = (ev) => {
      this.heard = Date.now();
      try {
        this.receive(proto.decode(new Uint8Array(ev.data as ArrayBuffer)));
      } catch (err) {
        console.error("sandlot-terminal:", err);
        ws.close(proto.close.protocol);
      }
    };
    ws.onclose = (ev) => this.closed(ws, ev.code);
  }

  private keepAlive(ws: WebSocket) {
    if (Date.now() - this.heard > silenceLimit) {
      ws.close(); // onclose reconnects
      return;
    }
    if (ws.readyState === WebSocket.OPEN) ws.send(proto.ping(new Uint8Array(0)));
  }

  private receive(m: proto.ServerMessage) {
    const term = this.term!;
    switch (m.type) {
      case "welcome":
        if (m.first < this.next) term.write("\r\n\x1b[2m[a new shell: the previous one is gone]\x1b[0m\r\n");
        else if (m.lost) term.write("\r\n\x1b[2m[earlier output was dropped]\x1b[0m\r\n");
        this.next = this.consumed = this.acked = m.first;
        this.retry = 0;
        this.setState("open");
        if (this.mode === "viewer") term.resize(m.cols, m.rows);
        else if (m.cols !== term.cols || m.rows !== term.rows) this.sendNow(proto.resize(term.cols, term.rows));
        this.flush();
        break;
      case "output": {
        let data = m.data;
        if (m.offset < this.next) data = data.subarray(this.next - m.offset); // already have the start
        const end = m.offset + m.data.length;
        this.next = Math.max(this.next, end);
        if (data.length > 0) term.write(data, () => this.consume(end));
        break;
      }
      case "lost":
        term.write("\r\n\x1b[2m[output skipped: this view fell behind]\x1b[0m\r\n");
        this.next = this.consumed = this.acked = m.offset;
        break;
      case "size":
        if (this.mode === "viewer") term.resize(m.cols, m.rows);
        break;
      case "exit":
        this.exitCode = m.code;
        break;
      case "pong":
        break;
    }
  }

  private consume(end: number) {
    this.consumed = Math.max(this.consumed, end);
    if (this.consumed - this.acked >= proto.ackEvery) {
      this.acked = this.consumed;
      this.sendNow(proto.ack(this.consumed));
    }
  }

  private closed(ws: WebSocket, code: number) {
    if (ws !== this.ws) return;
    clearInterval(this.pingTimer);
    if (this.stopped) return;
    if (this.exitCode !== undefined) {
      // The shell ended. The next key (or a click) opens a fresh one on the same tab.
      this.term?.write(`\r\n\x1b[2m[the shell exited (${this.exitCode}); press any key for a new one]\x1b[0m\r\n`);
      this.exitCode = undefined;
      this.next = this.consumed = this.acked = 0;
      this.setState("exited", code);
      return;
    }
    if (code === proto.close.replaced) {
      this.setState("replaced", code);
      this.notice("This terminal was opened in another window.", "Use it here", () => this.takeOver());
      return;
    }
    if (code === proto.close.viewerWrote || code === proto.close.protocol || code === proto.close.badSize) {
      this.setState("closed", code);
      return;
    }
    // A network blip, a server restart, a slow socket: try again, quietly, sooner at first.
    this.setState("reconnecting", code);
    // A server that restarts (1012) comes back within seconds, with the shell: try every second at most.
    const delay = Math.min(250 * 2 ** this.retry, code === proto.close.restarting ? 1000 : 5000);
    this.retry++;
    this.retryTimer = window.setTimeout(() => this.connect(), delay);
  }

  private wake = () => {
    if (this._state === "reconnecting" && document.visibilityState === "visible") {
      this.retry = 0;
      this.connect();
    }
  };

  /** send sends input now, or keeps it until the connection is back. */
  private send(data: Uint8Array<ArrayBuffer>) {
    if (this.mode === "viewer") return;
    if (this._state === "exited") {
      this.term?.reset();
      this.setState("connecting");
      this.connect();
      return; // the key that asked for a new shell is not typed into it
    }
    if (this._state !== "open" || this.ws?.readyState !== WebSocket.OPEN) {
      if (this.pendingBytes + data.length > maxPendingInput) {
        this.term?.write("\x07"); // bell: refuse rather than lose silently
        return;
      }
      this.pending.push(data);
      this.pendingBytes += data.length;
      return;
    }
    this.ws.send(proto.input(data));
  }

  private flush() {
    const pending = this.pending;
    this.pending = [];
    this.pendingBytes = 0;
    for (const p of pending) this.send(p);
  }

  private sendNow(msg: Uint8Array<ArrayBuffer>) {
    if (this._state === "open" && this.ws?.readyState === WebSocket.OPEN) this.ws.send(msg);
  }

  /** Copy on select: what you select is on the clipboard. */
  private copySoon() {
    clearTimeout(this.copyTimer);
    this.copyTimer = window.setTimeout(() => {
      if (this.term?.hasSelection()) void copyText(this.term.getSelection());
    }, 120);
  }

  /**
   * Keys the browser should have rather than the shell: Ctrl+V / Cmd+V and Shift+Insert paste (the browser's own
   * paste reaches xterm, which types it), Ctrl+Shift+C / Cmd+C copy the selection. Everything else goes to xterm.
   */
  private key(e: KeyboardEvent): boolean {
    if (e.type !== "keydown") return true;
    const mod = e.ctrlKey || e.metaKey;
    const k = e.key.toLowerCase();
    if ((mod && k === "v") || (e.shiftKey && e.key === "Insert")) return false;
    if (((e.ctrlKey && e.shiftKey) || e.metaKey) && k === "c" && this.term?.hasSelection()) {
      void copyText(this.term.getSelection());
      return false;
    }
    return true;
  }

  private openMenu(e: MouseEvent) {
    e.preventDefault();
    this.closeMenu();
    const term = this.term;
    if (!term) return;
    const menu = document.createElement("div");
    menu.className = "sl-menu";
    menu.setAttribute("role", "menu");
    const item = (label: string, keys: string, run: () => void, enabled = true) => {
      const b = document.createElement("button");
      b.setAttribute("role", "menuitem");
      b.dataset.action = label.toLowerCase().replace(/\W+/g, "-");
      b.innerHTML = `${label}<kbd>${keys}</kbd>`;
      b.disabled = !enabled;
      b.onclick = () => {
        this.closeMenu();
        run();
        term.focus();
      };
      menu.appendChild(b);
    };
    item("Copy", "select", () => void copyText(term.getSelection()), term.hasSelection());
    item("Paste", "Ctrl+V", () => void readClipboard().then((t) => t && this.paste(t)), this.mode === "driver");
    item("Select all", "", () => term.selectAll());
    item("Clear", "", () => term.clear());
    menu.style.left = `${Math.min(e.clientX, window.innerWidth - 170)}px`;
    menu.style.top = `${Math.min(e.clientY, window.innerHeight - 150)}px`;
    this.appendChild(menu);
    this.menu = menu;
    (menu.querySelector("button:not(:disabled)") as HTMLButtonElement | null)?.focus();
    menu.addEventListener("keydown", (k) => k.key === "Escape" && this.closeMenu());
    setTimeout(() => document.addEventListener("pointerdown", this.outside, { once: true }));
  }

  private outside = (e: Event) => {
    if (!this.menu?.contains(e.target as Node)) this.closeMenu();
    else document.addEventListener("pointerdown", this.outside, { once: true });
  };

  private closeMenu() {
    this.menu?.remove();
    this.menu = undefined;
  }

  private notice(text?: string, action?: string, run?: () => void) {
    this.querySelector(".sl-notice")?.remove();
    if (!text) return;
    const n = document.createElement("div");
    n.className = "sl-notice";
    n.textContent = text;
    if (action && run) {
      const b = document.createElement("button");
      b.textContent = action;
      b.onclick = run;
      n.appendChild(b);
    }
    this.appendChild(n);
  }
}

if (!customElements.get("sandlot-terminal")) customElements.define("sandlot-terminal", SandlotTerminal);

declare global {
  interface HTMLElementTagNameMap {
    "sandlot-terminal": SandlotTerminal;
  }
}
