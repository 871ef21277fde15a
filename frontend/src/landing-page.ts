// The landing page: what Sandlot is, a template picker and a Start button, and the way into a workshop. Given
// ?stack=<url of a compose file> (at / as Play-with-Docker's buttons link it, or at /try), it tries that stack
// first: the server fetches and deploys it in a new session, which the page then opens; a refusal is shown here.

import { LitElement, html } from "lit";
import { api, ApiError, type Template } from "./api";
import "./join-code";

const empty: Template = { name: "", title: "Empty", description: "No nodes yet: add them yourself.", managers: 0,
  workers: 0, swarm: false };

export class LandingPage extends LitElement {
  static properties = {
    templates: { state: true },
    picked: { state: true },
    starting: { state: true },
    error: { state: true },
    stack: { state: true },
  };

  templates: Template[] = [];
  picked = "1-node";
  starting = false;
  error = "";
  stack = ""; // the compose file being tried, while it is

  createRenderRoot() {
    return this; // the page's stylesheet applies
  }

  connectedCallback() {
    super.connectedCallback();
    document.title = "Sandlot: a Docker playground";
    const stack = new URLSearchParams(location.search).get("stack");
    if (stack) void this.tryStack(stack);
    api.templates().then(
      (t) => (this.templates = [...t, empty]),
      (e: ApiError) => (this.error = e.message),
    );
  }

  private async start() {
    this.starting = true;
    this.error = "";
    try {
      const s = await api.createSession();
      this.dispatchEvent(new CustomEvent("sandlot-navigate", { bubbles: true,
        detail: { path: `/s/${s.id}`, template: this.picked } }));
    } catch (e) {
      const err = e as ApiError;
      this.error = err.message + (err.retryAfter ? ` Try again in ${err.retryAfter} s.` : "");
      this.starting = false;
    }
  }

  /** tryStack deploys the compose file at url in a new session and opens it (in place of this address: a reload
   * or Back must not deploy it again). */
  private async tryStack(url: string) {
    this.stack = url;
    this.starting = true;
    this.error = "";
    try {
      const s = await api.tryStack(url);
      this.dispatchEvent(new CustomEvent("sandlot-navigate", { bubbles: true,
        detail: { path: `/s/${s.id}`, replace: true } }));
    } catch (e) {
      const err = e as ApiError;
      this.error = `Could not try the stack at ${url}: ${err.message}` +
        (err.retryAfter ? ` Try again in ${err.retryAfter} s.` : "");
      this.starting = false;
      this.stack = "";
      history.replaceState(null, "", "/");
    }
  }

  render() {
    const nodes = (t: Template) => t.managers + t.workers;
    return html`
      <main class="landing">
        <h1><span class="logo" aria-hidden="true">▦</span> Sandlot</h1>
        <p class="pitch">A few Docker hosts of your own, in your browser, for a while: real shells, real engines, on a
          network private to you.<br />Try swarm, networks and compose without installing anything.</p>
        ${this.stack ? html`<p class="trying" role="status">Fetching and deploying <code>${this.stack}</code> in a
          one-node swarm…</p>` : ""}
        <fieldset class="templates" ?disabled=${this.starting}>
          <legend>Start with</legend>
          ${this.templates.map((t) => html`
            <label class="template ${this.picked === t.name ? "picked" : ""}" data-template=${t.name || "empty"}>
              <input type="radio" name="template" .value=${t.name} .checked=${this.picked === t.name}
                @change=${() => (this.picked = t.name)} />
              <span class="title">${t.title}</span>
              <span class="what">${t.description}</span>
              <span class="nodes" aria-hidden="true">${"●".repeat(t.managers)}${"○".repeat(t.workers)}</span>
              <span class="count">${nodes(t) === 1 ? "1 node" : `${nodes(t)} nodes`}</span>
            </label>`)}
        </fieldset>
        <button id="start" class="primary big" @click=${this.start} ?disabled=${this.starting || !this.templates.length}>
          ${this.starting ? "Starting…" : "Start"}
        </button>
        ${this.error ? html`<p class="error" role="alert">${this.error}</p>` : ""}
        <sl-join-code class="landing-join"></sl-join-code>
        <p class="small">Sessions end on their own after a while; nothing you do here is kept.
          <a href="/api/v1/openapi.json">API</a></p>
      </main>`;
  }
}

customElements.define("sl-landing", LandingPage);
