// The web page: the landing page at /, a session at /s/<id>. Navigation stays in the page (no reloads), and a
// reload of /s/<id> comes back to the same session, terminals and shells.

import { LitElement, html } from "lit";
import { keyed } from "lit/directives/keyed.js";
import "./sandlot-terminal";
import "./landing-page";
import "./session-page";
import { settings } from "./settings";

interface Route {
  session?: string;
}

function route(path: string): Route {
  const m = /^\/s\/([A-Za-z0-9_-]{1,64})\/?$/.exec(path);
  return m ? { session: m[1] } : {};
}

class App extends LitElement {
  static properties = { route: { state: true } };

  route: Route = route(location.pathname);
  private template = ""; // handed from the landing page to the session page it opens

  createRenderRoot() {
    return this;
  }

  connectedCallback() {
    super.connectedCallback();
    settings.onChange(() => (this.querySelector("sl-session") as LitElement | null)?.requestUpdate());
    window.addEventListener("popstate", () => (this.route = route(location.pathname)));
    this.addEventListener("sandlot-navigate", (e) => {
      const { path, template } = (e as CustomEvent<{ path: string; template?: string }>).detail;
      this.template = template ?? "";
      history.pushState(null, "", path);
      this.route = route(path);
    });
  }

  render() {
    if (!this.route.session) return html`<sl-landing></sl-landing>`;
    const template = this.template;
    this.template = "";
    document.title = "Sandlot session";
    return keyed(this.route.session, html`<sl-session session-id=${this.route.session} .template=${template}></sl-session>`);
  }
}

customElements.define("sl-app", App);
