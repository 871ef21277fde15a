// A workshop's instructor dashboard (/w/<id>/instructor): the join code large enough for a projector, who is
// there and how their nodes are, and what an instructor does to everyone or one: broadcast, extend, end, lock,
// add seats, download the attendance, and watch an attendee's terminal (read only). The instructor's token comes
// as #token= (or ?token=) once, and is kept for this tab only.

import { LitElement, html, nothing } from "lit";
import { keyed } from "lit/directives/keyed.js";
import { api, ApiError, serverOffset, workshopEventsURL } from "./api";
import { copyText } from "./clipboard";
import { listen } from "./events";
import { saveBlob } from "./save";
import { settings } from "./settings";
import { settingsControl } from "./settings-control";
import {
  applyWorkshopEvent, attendanceFilename, countStates, formatAgo, formatCountdown, spokenCountdown, warnFor,
  workshopEvent,
} from "./workshop";
import { instructorToken, keepInstructorToken, takeLinkParam } from "./workshop-store";
import type { Attendee, Workshop } from "./workshop-types";

const pollEvery = 10_000; // besides the stream: node status moves without events
const extendBy = "30m";

/** The attendee whose terminal is watched, and which node. */
interface Watch {
  attendee: string;
  node: string;
}

export class InstructorPage extends LitElement {
  static properties = {
    workshopId: { attribute: "workshop-id" },
    workshop: { state: true },
    now: { state: true },
    error: { state: true },
    busy: { state: true },
    confirm: { state: true },
    toast: { state: true },
    watch: { state: true },
    down: { state: true },
    demo: { state: true },
  };

  workshopId = "";
  workshop?: Workshop;
  now = Date.now();
  error = "";
  busy = "";
  confirm = ""; // the button waiting for a second click
  toast = "";
  watch?: Watch;
  down = false;
  demo = ""; // the link to the instructor's demo session, once started from this page

  private token = "";
  private clock?: number;
  private poller?: number;
  private stopStream?: () => void;
  private confirmTimer?: number;
  private toastTimer?: number;
  private watchButton?: HTMLElement;

  createRenderRoot() {
    return this;
  }

  connectedCallback() {
    super.connectedCallback();
    document.title = "Workshop · Sandlot";
    const given = takeLinkParam("token");
    if (given) keepInstructorToken(this.workshopId, given);
    this.token = given ?? instructorToken(this.workshopId) ?? "";
    this.clock = window.setInterval(() => (this.now = Date.now()), 1000);
    this.addEventListener("keydown", this.escape);
    if (this.token) void this.refresh();
  }

  disconnectedCallback() {
    super.disconnectedCallback();
    clearInterval(this.clock);
    clearTimeout(this.poller);
    this.stopStream?.();
  }

  private async refresh() {
    clearTimeout(this.poller);
    try {
      this.workshop = await api.workshop(this.workshopId, this.token);
      document.title = `${this.workshop.title} · instructor · Sandlot`;
      if (this.error.startsWith("Loading")) this.error = "";
      this.listen();
    } catch (e) {
      const err = e as ApiError;
      if (err.status === 401 || err.status === 403 || err.status === 404) {
        this.error = err.status === 404 ? "There is no such workshop." :
          "This tab does not hold this workshop's instructor key: open the instructor link again.";
        this.workshop = undefined;
        this.stopStream?.();
        return;
      }
      this.error = err.message;
    }
    this.poller = window.setTimeout(() => void this.refresh(), pollEvery);
  }

  private listen() {
    if (this.stopStream) return;
    this.stopStream = listen(workshopEventsURL(this.workshopId, this.token), ["attendee", "workshop"], (type, data) => {
      const ev = workshopEvent(type, data);
      if (ev) this.workshop = applyWorkshopEvent(this.workshop, ev);
    }, (down) => (this.down = down));
  }

  private async act(what: string, run: () => Promise<unknown>, done?: string) {
    this.busy = what;
    this.error = "";
    try {
      await run();
      if (done) this.say(done);
    } catch (e) {
      this.error = retryText(e as ApiError);
    } finally {
      this.busy = "";
      await this.refresh();
    }
  }

  /** twice runs a destructive action on its second click (within 3 s), as on the session page. */
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

  private say(text: string) {
    this.toast = text;
    clearTimeout(this.toastTimer);
    this.toastTimer = window.setTimeout(() => (this.toast = ""), 6000);
  }

  private broadcast(e: Event) {
    e.preventDefault();
    const input = this.querySelector<HTMLInputElement>("#broadcast-text");
    const text = input?.value.trim() ?? "";
    if (!text) {
      input?.focus();
      return;
    }
    void this.act("broadcast", async () => {
      await api.broadcast(this.workshopId, this.token, text);
      if (input) input.value = "";
    }, "Sent to everyone.");
  }

  private addSeats(e: Event) {
    e.preventDefault();
    const w = this.workshop;
    const input = this.querySelector<HTMLInputElement>("#seats-add");
    const n = Math.floor(Number(input?.value));
    if (!w || !(n >= 1)) {
      input?.focus();
      return;
    }
    void this.act("seats", () => api.setSeats(this.workshopId, this.token, w.seats + n),
      `${n} more ${n === 1 ? "seat" : "seats"}: ${w.seats + n} in all.`);
  }

  /** download fetches the attendance list with the instructor's header and saves it as a file. */
  private download() {
    const w = this.workshop;
    if (!w) return;
    void this.act("attendance", async () => {
      const { csv, disposition } = await api.attendance(this.workshopId, this.token);
      saveBlob(csv, attendanceFilename(disposition, w.code, new Date()));
    });
  }

  private confirmDialog() {
    return this.querySelector<HTMLDialogElement>("#end-all-confirm");
  }

  private endAllClosed = () => {
    const d = this.confirmDialog();
    if (d?.returnValue !== "end") return;
    d.returnValue = "";
    void this.act("end", () => api.endWorkshop(this.workshopId, this.token), "The workshop has ended.");
  };

  private openWatch(a: Attendee, node: string, e: Event) {
    this.watchButton = e.currentTarget as HTMLElement;
    this.watch = { attendee: a.id, node };
    void this.updateComplete.then(() => this.querySelector<HTMLElement>("#watch-close")?.focus());
  }

  private closeWatch = () => {
    this.watch = undefined;
    void this.updateComplete.then(() => this.watchButton?.focus());
  };

  private escape = (e: KeyboardEvent) => {
    if (e.key === "Escape" && this.watch) this.closeWatch();
  };

  render() {
    const w = this.workshop;
    if (!this.token) {
      return html`<div class="ended"><div class="card"><h2>This page needs the instructor's link</h2>
        <p>Open the link you got when the workshop was made (it ends in <code>#token=…</code>).</p></div></div>`;
    }
    if (!w) {
      return html`<div class="ended" role=${this.error ? "alert" : nothing}><div class="card">
        <h2>${this.error || "Loading…"}</h2></div></div>`;
    }
    const watched = this.watch && w.attendees.find((a) => a.id === this.watch!.attendee);
    return html`
      <header class="bar">
        <a class="brand" href="/"><span class="logo" aria-hidden="true">▦</span> Sandlot</a>
        <h1 class="workshop-title">${w.title}</h1>
        ${this.renderClock(w)}
        <span class="spacer"></span>
        ${this.down ? html`<span class="muted" role="status">live updates reconnecting…</span>` : nothing}
        ${settingsControl()}
      </header>
      ${this.error ? html`<p class="banner error" role="alert">${this.error}
        <button class="link" @click=${() => (this.error = "")}>dismiss</button></p>` : nothing}
      <div class="dashboard ${watched ? "watching" : ""}">
        <main class="dash-main">
          ${this.renderCode(w)}
          ${this.renderActions(w)}
          ${this.renderTable(w)}
          ${this.renderMessages(w)}
        </main>
        ${watched ? this.renderWatch(watched) : nothing}
      </div>
      ${this.toast ? html`<p class="toast" role="status">${this.toast}</p>` : nothing}`;
  }

  private renderClock(w: Workshop) {
    if (!w.ends_at) return nothing;
    const left = Date.parse(w.ends_at) - (this.now + serverOffset);
    const warn = warnFor(left);
    return html`<span class="time ${warn === "soon" ? "low" : warn === "over" ? "critical" : ""}" role="timer"
      title="time until the workshop ends"><span aria-hidden="true">${warn === "over" ? "ended" : `${formatCountdown(left)} left`}</span>
      <span class="sr-only" aria-live="polite">${warn === "over" ? "the workshop's time is over" : `${spokenCountdown(left)} left`}</span></span>`;
  }

  private renderCode(w: Workshop) {
    const counts = countStates(w.attendees);
    const taken = counts.active;
    return html`
      <section class="projector" aria-label="how to join">
        <div>
          <p class="muted">Join at <strong>${new URL(w.join_url, location.origin).host}</strong> with the code</p>
          <p class="big-code" aria-label="access code ${[...w.code].join(" ")}">${w.code.slice(0, 3)}<span aria-hidden="true">-</span>${w.code.slice(3)}</p>
          <p class="join-url"><a href=${w.join_url}>${w.join_url}</a>
            <button @click=${() => void copyText(w.join_url).then(() => this.say("The join link is on your clipboard."))}>Copy link</button></p>
        </div>
        <dl class="counts" aria-live="polite">
          ${(["waiting", "queued", "active", "ended"] as const).map((s) => html`
            <div class="count-${s}"><dt>${s}</dt><dd>${counts[s]}</dd></div>`)}
          <div><dt>seats</dt><dd>${taken} / ${w.seats}</dd></div>
        </dl>
        ${w.locked ? html`<p class="locked-note" role="status">Joining is locked.</p>` : nothing}
      </section>`;
  }

  private renderActions(w: Workshop) {
    const busy = !!this.busy;
    return html`
      <section class="dash-actions" aria-label="actions for everyone">
        <form class="broadcast" @submit=${this.broadcast}>
          <label for="broadcast-text">Message to everyone</label>
          <input id="broadcast-text" maxlength="500" autocomplete="off" placeholder="e.g. 10 minutes left for this exercise" />
          <button type="submit" class="primary" ?disabled=${busy}>Send</button>
        </form>
        <span class="action-row">
          <button id="extend-all" ?disabled=${busy}
            @click=${() => this.act("extend", () => api.extendWorkshop(this.workshopId, this.token, extendBy), "Everyone has 30 more minutes.")}>
            +30 min for everyone</button>
          <button id="lock" aria-pressed=${w.locked ? "true" : "false"} ?disabled=${busy}
            @click=${() => this.act("lock", () => api.lockWorkshop(this.workshopId, this.token, !w.locked),
              w.locked ? "Joining is open again." : "Joining is locked.")}>
            ${w.locked ? "Unlock joining" : "Lock joining"}</button>
          <form class="seats-form" @submit=${this.addSeats}>
            <label for="seats-add">Add seats</label>
            <input id="seats-add" type="number" min="1" max="500" value="5" />
            <button type="submit" ?disabled=${busy}>Add</button>
          </form>
          <button id="attendance" ?disabled=${busy} @click=${this.download}>Download attendance</button>
          ${this.demo ? html`<a id="demo-link" class="button" href=${this.demo} target="_blank" rel="noopener"
              title="your own session, which every attendee may watch from their page">Open my demo session</a>`
            : html`<button id="demo" ?disabled=${busy} title="a session of your own that every attendee may watch"
              @click=${() => this.act("demo", async () => {
                const d = await api.startDemo(this.workshopId, this.token);
                this.demo = `/s/${d.session_id}#token=${encodeURIComponent(d.token)}`;
              }, "Your demo session is ready: attendees can watch it from their pages.")}>Start a demo session</button>`}
          <button id="end-all" class="danger" ?disabled=${busy} @click=${() => this.confirmDialog()?.showModal()}>
            End workshop</button>
        </span>
        <dialog class="confirm" id="end-all-confirm" aria-labelledby="end-all-title" @close=${this.endAllClosed}>
          <form method="dialog">
            <h2 id="end-all-title">End the workshop for everyone?</h2>
            <p>Every attendee's session ends now, with everything on their nodes; nobody can join any more.</p>
            <span class="action-row">
              <button value="cancel" autofocus>Keep it going</button>
              <button value="end" class="danger" id="end-all-yes">End for everyone</button>
            </span>
          </form>
        </dialog>
      </section>`;
  }

  private renderTable(w: Workshop) {
    const now = this.now + serverOffset;
    return html`
      <table class="attendees">
        <caption class="sr-only">Attendees</caption>
        <thead><tr><th scope="col">Name</th><th scope="col">State</th><th scope="col">Nodes</th>
          <th scope="col">Time left</th><th scope="col" title="their last keystroke in a terminal">Last activity</th><th scope="col"><span class="sr-only">Actions</span></th></tr></thead>
        <tbody>
          ${w.attendees.length ? nothing : html`<tr><td colspan="6" class="muted">Nobody has joined yet.</td></tr>`}
          ${w.attendees.map((a) => html`
            <tr data-attendee=${a.id} class="state-${a.state}">
              <th scope="row">${a.name}</th>
              <td>${a.state}${a.state === "queued" && a.position ? html` <span class="muted">#${a.position}</span>` : nothing}</td>
              <td><span class="node-cells">${(a.nodes ?? []).map((n) => html`
                <button class="node-chip" title="watch ${a.name}'s ${n.name} (${n.status})" ?disabled=${!a.session_id || a.state !== "active"}
                  aria-label="watch ${a.name}'s ${n.name}, ${n.status}"
                  aria-pressed=${this.watch?.attendee === a.id && this.watch.node === n.name ? "true" : "false"}
                  @click=${(e: Event) => this.openWatch(a, n.name, e)}>
                  <span class="dot ${n.status}"></span>${n.name}</button>`)}</span></td>
              <td class="num">${a.expires_at && a.state === "active" ? formatCountdown(Date.parse(a.expires_at) - now) : ""}</td>
              <td class="num">${a.last_activity ? formatAgo(now - Date.parse(a.last_activity)) : ""}</td>
              <td class="row-actions">
                ${a.state === "active" ? html`
                  <button title="30 more minutes for ${a.name}" aria-label="30 more minutes for ${a.name}" ?disabled=${!!this.busy}
                    @click=${() => this.act("extend", () => api.extendWorkshop(this.workshopId, this.token, extendBy, a.id),
                      `${a.name} has 30 more minutes.`)}>+30 min</button>` : nothing}
                ${a.state !== "ended" ? html`
                  <button class="danger" aria-label="end ${a.name}'s session" ?disabled=${!!this.busy}
                    @click=${() => this.twice(`end:${a.id}`, () => void this.act("end", () =>
                      api.endWorkshop(this.workshopId, this.token, a.id), `${a.name}'s session has ended.`))}>
                    ${this.confirm === `end:${a.id}` ? "Really end?" : "End"}</button>` : nothing}
              </td>
            </tr>`)}
        </tbody>
      </table>`;
  }

  private renderMessages(w: Workshop) {
    if (!w.messages?.length) return nothing;
    const sorted = [...w.messages].sort((x, y) => Date.parse(y.at) - Date.parse(x.at));
    return html`<section class="messages" aria-label="messages sent"><h2>Sent</h2><ul>
      ${sorted.map((m) => html`<li><time datetime=${m.at}>${new Date(m.at).toLocaleTimeString()}</time> ${m.text}</li>`)}
    </ul></section>`;
  }

  private renderWatch(a: Attendee) {
    const node = this.watch!.node;
    const nodes = a.nodes ?? [];
    return html`
      <aside class="watch" aria-label="${a.name}'s terminal, read only">
        <header>
          <strong>${a.name}</strong>
          <span class="muted">read only</span>
          <span role="tablist" aria-label="nodes">${nodes.map((n) => html`
            <button role="tab" aria-selected=${n.name === node ? "true" : "false"}
              @click=${() => (this.watch = { attendee: a.id, node: n.name })}>${n.name}</button>`)}</span>
          <span class="spacer"></span>
          <button id="watch-close" aria-label="stop watching" title="stop watching (Esc)" @click=${this.closeWatch}>✕</button>
        </header>
        ${a.session_id && a.state === "active" ? keyed(`${a.session_id}/${node}`, html`
          <sandlot-terminal class="watch-term" session=${a.session_id} instance=${node} token=${this.token} viewer
            theme=${settings.theme} font-size=${settings.fontSize}></sandlot-terminal>`)
          : html`<p class="muted watch-gone">${a.name} has no session now.</p>`}
      </aside>`;
  }
}

function retryText(e: ApiError) {
  return e.message + (e.retryAfter ? ` Try again in ${e.retryAfter} s.` : "");
}

customElements.define("sl-instructor", InstructorPage);
