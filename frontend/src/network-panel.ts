// The Network panel of the session page: the session's network faults between its nodes (PUT/GET/DELETE
// /api/v1/sessions/{id}/network), a form to add a link's fault, one click to cut a node off from the others, and
// removal of each fault or all. The server applies a picture whole or not at all, so every change here sends the
// whole picture; a refusal (400 naming the field, 422 naming the kernel feature) is shown as the server said it.
// It tells the page which nodes a fault touches ("network-change"), for the marks on their tiles.

import { LitElement, html, nothing } from "lit";
import { api, ApiError } from "./api";
import type { Network, NetworkAnswer, NetworkLink } from "./api-types";
import { describeLink, healsIn, touchedNodes } from "./network";

export class NetworkPanel extends LitElement {
  static properties = {
    session: {},
    nodes: { attribute: false },
    ended: { type: Boolean },
    net: { state: true },
    error: { state: true },
    busy: { state: true },
    now: { state: true },
  };

  session = "";
  nodes: string[] = [];
  ended = false;
  net?: NetworkAnswer;
  error = "";
  busy = false;
  now = Date.now();

  private clock?: number;
  private healTimer?: number;

  createRenderRoot() {
    return this;
  }

  connectedCallback() {
    super.connectedCallback();
    void this.load();
    this.clock = window.setInterval(() => (this.now = Date.now()), 1000);
  }

  disconnectedCallback() {
    super.disconnectedCallback();
    window.clearInterval(this.clock);
    window.clearTimeout(this.healTimer);
  }

  updated(changed: Map<string, unknown>) {
    // A node added or removed changes the picture on the server ("*" takes in a new node; a removed node's
    // faults go): read it again.
    if (changed.has("nodes") && changed.get("nodes") !== undefined &&
        (changed.get("nodes") as string[]).join() !== this.nodes.join()) void this.load();
  }

  /** load reads the picture, and again when its next fault heals. */
  async load(): Promise<void> {
    if (!this.session || this.ended) return;
    try {
      this.show(await api.network(this.session));
    } catch (e) {
      if (e instanceof ApiError && (e.status === 410 || e.status === 404)) return;
      this.error = e instanceof Error ? e.message : String(e);
    }
  }

  private show(net: NetworkAnswer) {
    this.net = net;
    this.dispatchEvent(new CustomEvent("network-change", { detail: touchedNodes(net, this.nodes), bubbles: true }));
    window.clearTimeout(this.healTimer);
    const ends = [...net.links.map((l) => l.expires_at), net.partitions_expire_at]
      .filter((t): t is string => !!t).map((t) => Date.parse(t));
    if (ends.length) this.healTimer = window.setTimeout(() => void this.load(), Math.max(0, Math.min(...ends) - Date.now()) + 500);
  }

  /** put sends the whole picture doc. */
  private async put(doc: Network): Promise<boolean> {
    this.busy = true;
    this.error = "";
    try {
      this.show(await api.setNetwork(this.session, doc));
      return true;
    } catch (e) {
      this.error = e instanceof Error ? e.message : String(e);
      return false;
    } finally {
      this.busy = false;
    }
  }

  private current(): Network {
    const n = this.net;
    return { links: [...(n?.links ?? [])], partitions: [...(n?.partitions ?? [])],
      partitions_duration: n?.partitions_duration, partitions_expire_at: n?.partitions_expire_at };
  }

  private async addLink(e: Event) {
    e.preventDefault();
    const form = e.target as HTMLFormElement;
    const data = new FormData(form);
    const link: NetworkLink = { from: String(data.get("from")), to: String(data.get("to")) };
    for (const f of ["loss", "rate", "latency", "duration"] as const) {
      let v = String(data.get(f) ?? "").trim();
      if (!v) continue;
      if (f === "loss" && /^[0-9.]+$/.test(v)) v += "%";
      link[f] = v;
    }
    const doc = this.current();
    doc.links = [...(doc.links ?? []), link];
    if (await this.put(doc)) form.reset();
  }

  private async removeLink(i: number) {
    const doc = this.current();
    doc.links = (doc.links ?? []).filter((_, j) => j !== i);
    await this.put(doc);
  }

  /** isolate partitions node from the others, in one click. */
  private async isolate(node: string) {
    const doc = this.current();
    doc.partitions = [[node], this.nodes.filter((n) => n !== node)];
    doc.partitions_duration = doc.partitions_expire_at = undefined;
    await this.put(doc);
  }

  private async removePartitions() {
    const doc = this.current();
    doc.partitions = [];
    doc.partitions_duration = doc.partitions_expire_at = undefined;
    await this.put(doc);
  }

  private async clearAll() {
    this.busy = true;
    this.error = "";
    try {
      await api.clearNetwork(this.session);
      await this.load();
    } catch (e) {
      this.error = e instanceof Error ? e.message : String(e);
    } finally {
      this.busy = false;
    }
  }

  render() {
    if (this.nodes.length < 2) return nothing;
    const net = this.net;
    const sup = net?.supported;
    const off = this.busy || this.ended;
    const empty = !net || (!net.links.length && !net.partitions.length);
    return html`<section class="network" id="network" aria-label="network faults between nodes">
      <h3>Network</h3>
      ${this.error ? html`<p class="network-error" role="alert">${this.error}</p>` : nothing}
      <ul class="faults">
        ${empty ? html`<li class="hint">No faults: every node reaches every other.</li>` : nothing}
        ${(net?.links ?? []).map((l, i) => html`<li class="fault" data-from=${l.from} data-to=${l.to}>
          <span class="pair">${l.from} → ${l.to === "*" ? "all" : l.to}</span>
          <span class="what">${describeLink(l)}</span>
          ${l.expires_at ? html`<span class="heals">${healsIn(l.expires_at, this.now)}</span>` : nothing}
          <button class="icon remove-fault" title="remove this fault" aria-label="remove the fault from ${l.from} to ${l.to}"
            ?disabled=${off} @click=${() => void this.removeLink(i)}>✕</button></li>`)}
        ${net?.partitions.length ? html`<li class="fault partition">
          <span class="pair">partition</span>
          <span class="what">${net.partitions.map((g) => g.join(", ")).join(" | ")}</span>
          ${net.partitions_expire_at ? html`<span class="heals">${healsIn(net.partitions_expire_at, this.now)}</span>` : nothing}
          <button class="icon remove-fault" title="heal the partition" aria-label="heal the partition" ?disabled=${off}
            @click=${() => void this.removePartitions()}>✕</button></li>` : nothing}
      </ul>
      <div class="isolate">${this.nodes.map((n) => html`<button class="isolate-node" data-node=${n} ?disabled=${off}
        title="partition ${n} from the others" @click=${() => void this.isolate(n)}>cut ${n} off</button>`)}</div>
      <form class="add-fault" @submit=${this.addLink}>
        <label>from <select name="from">${this.nodes.map((n) => html`<option>${n}</option>`)}</select></label>
        <label>to <select name="to">${this.nodes.map((n, i) => html`<option ?selected=${i === 1}>${n}</option>`)}
          <option value="*">all others</option></select></label>
        <label>loss <input name="loss" placeholder="20%" size="5" ?disabled=${sup && !sup.loss} /></label>
        <label>rate <input name="rate" placeholder="1mbit" size="6" ?disabled=${sup && !sup.rate} /></label>
        <label title=${sup && !sup.latency ? "this host's kernel has no sch_netem" : "one way, added to each packet"}>latency
          <input name="latency" placeholder="100ms" size="6" ?disabled=${sup && !sup.latency} /></label>
        <label>for <input name="duration" placeholder="60s" size="5" /></label>
        <button type="submit" class="add" ?disabled=${off}>Add fault</button>
      </form>
      ${empty ? nothing : html`<button class="link clear-faults" ?disabled=${off} @click=${() => void this.clearAll()}>remove all faults</button>`}
    </section>`;
  }
}

customElements.define("sl-network", NetworkPanel);
