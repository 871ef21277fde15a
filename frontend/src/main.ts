// The web page: the landing page at /, a session at /s/<id>, a workshop's join page at /w/<code> and its
// instructor's dashboard at /w/<id>/instructor. Navigation stays in the page (no reloads), and a reload of /s/<id>
// comes back to the same session, terminals and shells.

import { LitElement, html } from "lit";
import { keyed } from "lit/directives/keyed.js";
import "./sandlot-terminal";
import "./landing-page";
import "./session-page";
import "./join-page";
import "./instructor-page";
import { settings } from "./settings";
import { route, type Route } from "./routes";

class App extends LitElement {
  static properties = { route: { state: true } };

  route: Route = route(location.pathname);
  private template = ""; // handed from the landing page to the session page it opens

  createRenderRoot() {
    return this;
  }

  connectedCallback() {
    super.connectedCallback();
    settings.onChange(() => (this.querySelector("sl-session, sl-instructor, sl-join") as LitElement | null)?.requestUpdate());
    window.addEventListener("popstate", () => (this.route = route(location.pathname)));
    this.addEventListener("sandlot-navigate", (e) => {
      const { path, template, replace } = (e as CustomEvent<{ path: string; template?: string; replace?: boolean }>).detail;
      this.template = template ?? "";
      if (replace) history.replaceState(null, "", path); // a page that only passes on (the join page, to a session)
      else history.pushState(null, "", path);
      this.route = route(path);
    });
  }

  render() {
    if (this.route.join !== undefined) return keyed(this.route.join, html`<sl-join code=${this.route.join}></sl-join>`);
    if (this.route.instructor) {
      return keyed(this.route.instructor, html`<sl-instructor workshop-id=${this.route.instructor}></sl-instructor>`);
    }
    if (!this.route.session) return html`<sl-landing></sl-landing>`;
    const template = this.template;
    this.template = "";
    document.title = "Sandlot session";
    return keyed(this.route.session, html`<sl-session session-id=${this.route.session} .template=${template}></sl-session>`);
  }
}

customElements.define("sl-app", App);
