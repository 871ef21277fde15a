// The text size (A−/A+) and theme buttons of the page's header, for every page that shows terminals.

import { html } from "lit";
import { settings } from "./settings";

/** settingsControl renders the controls; after runs after each change (to give the keyboard back, say). */
export function settingsControl(after: () => void = () => {}) {
  const set = (change: () => void) => {
    change();
    after();
  };
  return html`
    <span class="settings" role="group" aria-label="terminal text size and theme">
      <button title="smaller text" aria-label="smaller text" @click=${() => set(() => settings.setFontSize(settings.fontSize - 1))}>A−</button>
      <span class="font-size">${settings.fontSize}</span>
      <button title="larger text" aria-label="larger text" @click=${() => set(() => settings.setFontSize(settings.fontSize + 1))}>A+</button>
      <button id="theme" title="dark or light" @click=${() => set(() => settings.setTheme(settings.theme === "dark" ? "light" : "dark"))}>
        ${settings.theme === "dark" ? "☀ Light" : "☾ Dark"}</button>
    </span>`;
}
