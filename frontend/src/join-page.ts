// A workshop's join page (/w/<code>): the workshop's title and start, a name and Join; then the attendee's wait
// (a countdown to the start, or a place in the queue) until their session is ready, which opens it. The
// attendee's token is kept in this browser per code, and their personal link brings it to any other.

import { LitElement, html, nothing } from "lit";
import { api, ApiError, attendeeEventsURL, serverOffset, useSessionToken } from "./api";
import { copyText } from "./clipboard";
import { listen } from "./events";
import "./join-code";
import { settings } from "./settings";
import {
  applyAttendeeEvent, attendeeEvent, codeProblem, endedWhy, formatCountdown, formatEstimate, joinView, nameProblem,
  normalizeCode, observe, queueEstimate, spokenCountdown, type JoinState, type QueueSample,
} from "./workshop";
import { forgetAttendee, keepAttendee, keepSessionAttendee, keptAttendee, takeLinkParam } from "./workshop-store";
import type { AttendeeView, Broadcast } from "./workshop-types";

const pollEvery = 15_000; // besides the stream, in case a proxy in between holds events back

export class JoinPage extends LitElement {
  static properties = {
    code: {},
    state: { state: true },
    now: { state: true },
    busy: { state: true },
    problem: { state: true },
    notice: { state: true },
    copied: { state: true },
    down: { state: true },
  };

  code = ""; // as in the address
  state: JoinState = {};
  now = Date.now();
  busy = false;
  problem = ""; // what is wrong with the name, or why joining was refused
  notice = "";
  copied = false;
  down = false; // the live stream is down

  private token = "";
  private url = "";
  private samples: QueueSample[] = [];
  private stopStream?: () => void;
  private clock?: number;
  private poller?: number;
  private retryUntil = 0;
  private lastRefresh = 0;
  private entered = false;

  createRenderRoot() {
    return this;
  }

  private get normal() {
    return normalizeCode(this.code);
  }

  connectedCallback() {
    super.connectedCallback();
    document.title = "Join a workshop · Sandlot";
    this.clock = window.setInterval(() => this.tick(), 250);
    if (codeProblem(this.normal)) return;
    const fromLink = takeLinkParam("attendee");
    if (fromLink) keepAttendee(this.normal, { token: fromLink, url: personalURL(this.normal, fromLink) });
    if (this.normal !== this.code) history.replaceState(history.state, "", `/w/${this.normal}`);
    const kept = keptAttendee(this.normal);
    if (kept) {
      this.token = kept.token;
      this.url = kept.url ?? personalURL(this.normal, kept.token);
      void this.refreshAttendee();
    } else {
      void this.loadInfo();
    }
  }

  disconnectedCallback() {
    super.disconnectedCallback();
    clearInterval(this.clock);
    clearTimeout(this.poller);
    this.stopStream?.();
  }

  private async loadInfo() {
    try {
      const info = await api.joinInfo(this.normal);
      this.state = { info };
      document.title = `${info.title} · Sandlot`;
    } catch (e) {
      const err = e as ApiError;
      this.state = { failed: err.status || 1, message: retryText(err) };
    }
  }

  /** refreshAttendee reads the attendee's state; a token the server no longer knows is forgotten. */
  private async refreshAttendee() {
    clearTimeout(this.poller);
    this.lastRefresh = Date.now();
    try {
      this.setAttendee(await api.attendee(this.token));
      this.listen();
    } catch (e) {
      const err = e as ApiError;
      if (err.status === 401 || err.status === 403 || err.status === 404) {
        this.forget("This browser's seat in the workshop is no longer valid; join again.");
        return;
      }
      if (!this.state.attendee) this.state = { failed: err.status || 1, message: retryText(err) };
    }
    if (this.token) this.poller = window.setTimeout(() => void this.refreshAttendee(), pollEvery);
  }

  private forget(notice: string) {
    forgetAttendee(this.normal);
    this.stopStream?.();
    this.stopStream = undefined;
    this.token = "";
    this.notice = notice;
    this.state = {};
    void this.loadInfo();
  }

  private listen() {
    if (this.stopStream) return;
    this.stopStream = listen(attendeeEventsURL(this.token), ["state", "message"], (type, data) => {
      const ev = attendeeEvent(type, data);
      if (ev) this.setAttendee(applyAttendeeEvent(this.state.attendee, ev));
    }, (down) => (this.down = down));
  }

  private setAttendee(a: AttendeeView | undefined) {
    if (!a) return;
    this.state = { ...this.state, attendee: applyAttendeeEvent(this.state.attendee, { kind: "attendee", view: a }) };
    document.title = `${a.title} · Sandlot`;
    if (a.state === "queued" && a.position !== undefined) this.samples = observe(this.samples, a.position, Date.now());
    const v = joinView(this.state);
    if (v.kind === "enter") this.enter(v.sessionId, v.sessionToken);
    if (v.kind === "ended") {
      this.stopStream?.();
      clearTimeout(this.poller);
    }
  }

  /** enter opens the attendee's session, handing its token to the session page as the landing page does. */
  private enter(sessionId: string, sessionToken?: string) {
    if (this.entered) return;
    this.entered = true;
    if (sessionToken) useSessionToken(sessionId, sessionToken);
    keepSessionAttendee(sessionId, this.token);
    this.dispatchEvent(new CustomEvent("sandlot-navigate", { bubbles: true, detail: { path: `/s/${sessionId}`, replace: true } }));
  }

  private shown = "";

  /** updated moves the focus to the new view's heading when the view changes (the button pressed may be gone). */
  protected updated() {
    const kind = codeProblem(this.normal) ? "bad-code" : joinView(this.state).kind;
    if (kind === this.shown) return;
    const first = !this.shown;
    this.shown = kind;
    const h = this.querySelector<HTMLElement>(".card h1");
    if (!h) return;
    h.tabIndex = -1;
    if (kind === "form") this.querySelector<HTMLElement>("#join-name")?.focus();
    else if (!first || kind !== "loading") h.focus();
  }

  private tick() {
    this.now = Date.now();
    const a = this.state.attendee;
    // At the start, ask rather than wait for the stream: the start is when everyone looks.
    if (a?.state === "waiting" && a.starts_at && Date.parse(a.starts_at) <= this.now + serverOffset &&
      this.now - this.lastRefresh > 2000) void this.refreshAttendee();
  }

  private async join(e: Event) {
    e.preventDefault();
    const input = this.querySelector<HTMLInputElement>("#join-name");
    const name = (input?.value ?? "").trim();
    this.problem = nameProblem(name);
    if (this.problem || Date.now() < this.retryUntil) {
      input?.focus();
      return;
    }
    this.busy = true;
    try {
      const j = await api.join(this.normal, name);
      this.token = j.attendee_token;
      this.url = new URL(j.personal_url, location.origin).href;
      keepAttendee(this.normal, { token: this.token, url: this.url });
      this.notice = "";
      this.setAttendee({ state: j.state, position: j.position, starts_at: j.starts_at, session_id: j.session_id,
        session_token: j.session_token, title: this.state.info?.title ?? "", messages: [] });
      this.listen();
      clearTimeout(this.poller);
      this.poller = window.setTimeout(() => void this.refreshAttendee(), pollEvery);
    } catch (err) {
      const ae = err as ApiError;
      if (ae.code === "workshop_locked" || ae.code === "workshop_ended") {
        await this.loadInfo(); // shows the locked or ended view, whichever the server says now
        if (ae.code === "workshop_ended" && this.state.info) this.state = { info: { ...this.state.info, state: "ended" } };
        if (ae.code === "workshop_locked" && this.state.info) this.state = { info: { ...this.state.info, state: "locked" } };
        return;
      }
      if (ae.retryAfter) this.retryUntil = Date.now() + ae.retryAfter * 1000;
      this.problem = retryText(ae);
    } finally {
      this.busy = false;
    }
  }

  private async copyLink() {
    await copyText(this.url);
    this.copied = true;
    window.setTimeout(() => (this.copied = false), 3000);
  }

  render() {
    return html`
      <header class="bar">
        <a class="brand" href="/" @click=${this.home}><span class="logo" aria-hidden="true">▦</span> Sandlot</a>
        <span class="spacer"></span>
        <button id="theme" title="dark or light" @click=${() => settings.setTheme(settings.theme === "dark" ? "light" : "dark")}>
          ${settings.theme === "dark" ? "☀ Light" : "☾ Dark"}</button>
      </header>
      <main class="workshop-page">${this.renderView()}</main>`;
  }

  private renderView() {
    const problem = codeProblem(this.normal);
    if (problem) {
      return html`<div class="card"><h1>That is not an access code</h1><p class="error">${problem}</p>
        <sl-join-code label="Access code" .value=${this.code}></sl-join-code></div>`;
    }
    const v = joinView(this.state);
    const notice = this.notice ? html`<p class="notice" role="status">${this.notice}</p>` : nothing;
    switch (v.kind) {
      case "loading":
        return html`<div class="card"><p aria-busy="true">Loading…</p></div>`;
      case "unknown":
        return html`<div class="card"><h1>No workshop has the code ${this.normal}</h1>
          <p>Check the code with your instructor; it may also have been removed.</p>
          <sl-join-code label="Access code"></sl-join-code></div>`;
      case "error":
        return html`<div class="card"><h1>The workshop cannot be reached</h1><p class="error" role="alert">${v.message}</p>
          <button class="primary" @click=${() => { this.state = {}; void (this.token ? this.refreshAttendee() : this.loadInfo()); }}>
            Try again</button></div>`;
      case "locked":
        return html`<div class="card">${notice}<h1>${v.info.title}</h1>
          <p>This workshop is not taking attendees right now. Ask your instructor, then try again.</p>
          <button class="primary" @click=${() => void this.loadInfo()}>Try again</button></div>`;
      case "over":
        return html`<div class="card">${notice}<h1>${v.info.title}</h1><p>This workshop has ended.</p>
          <button class="primary" @click=${this.home}>Start a session of your own</button></div>`;
      case "form": {
        const i = v.info;
        return html`<div class="card">${notice}
          <h1>${i.title}</h1>
          ${this.renderWhen(i.starts_at, i.ends_at)}
          <p class="seats">${i.seats_left > 0 ? `${i.seats_left} ${i.seats_left === 1 ? "seat" : "seats"} left`
            : "Every seat is taken: you will wait in a queue for one."}</p>
          <form class="join-form" @submit=${this.join} novalidate>
            <label for="join-name">Your name <span class="muted">(others in the workshop see it)</span></label>
            <input id="join-name" name="name" maxlength="40" autocomplete="nickname" required
              aria-describedby="join-problem" aria-invalid=${this.problem ? "true" : "false"} ?disabled=${this.busy}
              @input=${() => (this.problem = "")} />
            <button type="submit" class="primary big" id="join" ?disabled=${this.busy}>${this.busy ? "Joining…" : "Join"}</button>
            <p id="join-problem" class="error" role="alert">${this.problem}</p>
          </form></div>`;
      }
      case "waiting": {
        const a = this.state.attendee!;
        const left = v.startsAt ? Date.parse(v.startsAt) - (this.now + serverOffset) : NaN;
        return html`<div class="card">
          <h1>${a.title}</h1>
          ${Number.isNaN(left) ? html`<p>You have a seat. The workshop starts when your instructor starts it.</p>` : html`
            <p>You have a seat. The workshop starts in</p>
            <p class="countdown" role="timer" aria-hidden="true">${formatCountdown(left)}</p>
            <p class="sr-only" aria-live="polite">Starts in ${spokenCountdown(left)}</p>
            <p class="muted">at ${new Date(v.startsAt!).toLocaleString()}; this page opens your session then.</p>`}
          ${this.renderLink()}${this.renderMessages(a.messages)}</div>`;
      }
      case "queued": {
        const a = this.state.attendee!;
        const est = queueEstimate(this.samples, this.now);
        return html`<div class="card">
          <h1>${a.title}</h1>
          <p>Every seat is taken; you are in the queue for the next one.</p>
          <p class="countdown" aria-live="polite">${v.position ? html`<span class="muted">position</span> ${v.position}` : "in the queue"}</p>
          <p class="muted">${est !== undefined ? `Your turn in ${formatEstimate(est)}, at the pace the queue moves.`
            : "A seat frees up when someone leaves or the instructor adds seats; this page opens your session then."}</p>
          ${this.renderLink()}${this.renderMessages(a.messages)}</div>`;
      }
      case "preparing":
        return html`<div class="card"><h1>${this.state.attendee!.title}</h1>
          <p aria-live="polite" aria-busy="true">Your session is being prepared…</p>${this.renderLink()}</div>`;
      case "enter":
        return html`<div class="card"><p aria-live="polite">Opening your session…</p></div>`;
      case "ended":
        return html`<div class="card"><h1>${this.state.attendee!.title}</h1>
          <p class="reason" data-reason=${v.reason}>${endedWhy(v.reason)}</p>
          ${this.renderMessages(this.state.attendee!.messages)}
          <button class="primary" @click=${this.home}>Start a session of your own</button></div>`;
    }
  }

  private renderWhen(startsAt?: string, endsAt?: string) {
    if (!startsAt && !endsAt) return nothing;
    const left = startsAt ? Date.parse(startsAt) - (this.now + serverOffset) : 0;
    return html`<p class="when">
      ${startsAt ? html`Starts ${new Date(startsAt).toLocaleString()}${left > 0 ? html`, in
        <span role="timer" aria-hidden="true">${formatCountdown(left)}</span>
        <span class="sr-only">${spokenCountdown(left)}</span>` : ""}` : nothing}
      ${endsAt ? html`<br />Ends ${new Date(endsAt).toLocaleString()}` : nothing}</p>`;
  }

  private renderLink() {
    if (!this.url) return nothing;
    return html`<div class="personal-link">
      <label for="personal-url">Your personal link: open it in any browser to come back to your seat.</label>
      <span class="join-code-row">
        <input id="personal-url" readonly .value=${this.url} @focus=${(e: FocusEvent) => (e.target as HTMLInputElement).select()} />
        <button id="copy-link" @click=${this.copyLink}>Copy</button>
      </span>
      <span class="muted" role="status">${this.copied ? "Copied." : ""}</span>
      ${this.down ? html`<span class="muted">Reconnecting…</span>` : nothing}
    </div>`;
  }

  private renderMessages(messages: Broadcast[]) {
    return html`<section class="messages" aria-label="messages from the instructor" aria-live="polite">
      ${messages.length ? html`<h2>From your instructor</h2><ul>${messages.map((m) => html`
        <li><time datetime=${m.at}>${new Date(m.at).toLocaleTimeString()}</time> ${m.text}</li>`)}</ul>` : nothing}
    </section>`;
  }

  private home = (e?: Event) => {
    e?.preventDefault();
    this.dispatchEvent(new CustomEvent("sandlot-navigate", { bubbles: true, detail: { path: "/" } }));
  };
}

/** personalURL is the link that brings an attendee's token to another browser. */
function personalURL(code: string, token: string) {
  return `${location.origin}/w/${code}#attendee=${encodeURIComponent(token)}`;
}

function retryText(e: ApiError) {
  return e.message + (e.retryAfter ? ` Try again in ${e.retryAfter} s.` : "");
}

customElements.define("sl-join", JoinPage);
