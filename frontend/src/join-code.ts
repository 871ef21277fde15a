// "Join a workshop": a field for an access code and a button that opens the workshop's join page (/w/<CODE>).

import { LitElement, html, nothing } from "lit";
import { codeLength, codeProblem, normalizeCode } from "./workshop";

export class JoinCode extends LitElement {
  static properties = { problem: { state: true }, label: {}, value: {} };

  label = "Join a workshop";
  value = "";
  problem = "";

  createRenderRoot() {
    return this;
  }

  private submit(e: Event) {
    e.preventDefault();
    const input = this.querySelector<HTMLInputElement>("input[name=code]");
    const code = normalizeCode(input?.value ?? "");
    this.problem = codeProblem(code);
    if (this.problem) {
      input?.focus();
      return;
    }
    this.dispatchEvent(new CustomEvent("sandlot-navigate", { bubbles: true, detail: { path: `/w/${code}` } }));
  }

  render() {
    return html`
      <form class="join-code" @submit=${this.submit} novalidate>
        <label for="join-code-input">${this.label}</label>
        <span class="join-code-row">
          <input id="join-code-input" name="code" .value=${this.value} autocomplete="off" autocapitalize="characters"
            spellcheck="false" placeholder="access code, e.g. K7M-2QX" maxlength=${codeLength + 6}
            aria-describedby="join-code-help" aria-invalid=${this.problem ? "true" : "false"}
            @input=${() => (this.problem = "")} />
          <button type="submit" id="join-code-go">Join</button>
        </span>
        <span id="join-code-help" class=${this.problem ? "error" : "muted"} role=${this.problem ? "alert" : nothing}>
          ${this.problem || "6 characters, from your instructor"}</span>
      </form>`;
  }
}

customElements.define("sl-join-code", JoinCode);
