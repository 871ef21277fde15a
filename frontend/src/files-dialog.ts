// The file editor: the node's home directory as a tree (file-tree.ts); open a directory, open a file, change it,
// save it. Files go through the server's files API (the Docker engine's archive API), never through host paths.

import { LitElement, html, nothing } from "lit";
import { api, fileURL, sessionToken, type ApiError, type FileEntry } from "./api";
import { saveBlob } from "./save";
import { FileTree } from "./file-tree";

const maxEditable = 1024 * 1024; // larger files are offered for download only

export class FilesDialog extends LitElement {
  static properties = {
    session: {},
    node: {},
    root: {},
    tree: { state: true },
    path: { state: true },
    content: { state: true },
    saved: { state: true },
    message: { state: true },
  };

  session = "";
  node = "";
  root = "/root";
  tree?: FileTree;
  path = "";
  content = "";
  saved = "";
  message = "";

  createRenderRoot() {
    return this;
  }

  connectedCallback() {
    super.connectedCallback();
    void this.load();
  }

  async load() {
    const tree = new FileTree(this.root, (path, depth) => api.tree(this.session, this.node, path, depth));
    await this.listing(tree, () => tree.load());
    this.tree = tree;
  }

  /** listing runs a listing of tree, then shows what it found (or why not). */
  private async listing(tree: FileTree, list: () => Promise<void>) {
    try {
      await list();
      this.message = tree.truncated ? "Only the first entries are shown." : "";
    } catch (e) {
      this.message = (e as ApiError).message;
    }
    this.requestUpdate();
  }

  /** download goes through the page when the session's token is not in a cookie (a workshop's session). */
  private download(ev: Event, path: string) {
    if (!sessionToken(this.session)) return; // the link works by the cookie
    ev.preventDefault();
    api.download(this.session, this.node, path).then(
      (blob) => saveBlob(blob, path.slice(path.lastIndexOf("/") + 1) || "download"),
      (e: ApiError) => (this.message = e.message),
    );
  }

  private toggle(e: FileEntry) {
    const tree = this.tree;
    if (tree) void this.listing(tree, () => tree.toggle(e.path));
  }

  private async open(e: FileEntry) {
    if (this.dirty() && !window.confirm(`Drop your changes to ${this.path}?`)) return;
    if (e.size > maxEditable) {
      this.message = `${e.path} has ${e.size} bytes: too large to edit here; download it instead.`;
      return;
    }
    try {
      this.content = this.saved = await api.readFile(this.session, this.node, e.path);
      this.path = e.path;
      this.message = "";
    } catch (err) {
      this.message = (err as ApiError).message;
    }
  }

  private dirty() {
    return this.path !== "" && this.content !== this.saved;
  }

  private async save() {
    try {
      await api.writeFile(this.session, this.node, this.path, this.content);
      this.saved = this.content;
      this.message = `Saved ${this.path}.`;
    } catch (e) {
      this.message = (e as ApiError).message;
    }
  }

  private close() {
    if (this.dirty() && !window.confirm(`Close without saving ${this.path}?`)) return;
    this.dispatchEvent(new CustomEvent("close", { bubbles: true }));
  }

  private key(e: KeyboardEvent) {
    if ((e.ctrlKey || e.metaKey) && e.key.toLowerCase() === "s") {
      e.preventDefault();
      if (this.path) void this.save();
    }
    if (e.key === "Escape") this.close();
  }

  render() {
    return html`
      <div class="modal" role="dialog" aria-label="files of ${this.node}" @keydown=${this.key}>
        <div class="files">
          <header>
            <strong>Files of ${this.node}</strong> <span class="muted">${this.root}</span>
            <span class="spacer"></span>
            <button id="files-close" @click=${this.close}>Close</button>
          </header>
          <div class="files-body">
            <ul class="tree">
              ${(this.tree?.rows() ?? []).map(({ entry: e, kind, name, depth, open }) => html`
                <li class=${kind} style="padding-left:${depth * 14 + 6}px">
                  ${kind === "dir"
                    ? html`<button class="link" data-path=${e.path} aria-expanded=${open}
                        @click=${() => this.toggle(e)}>${open ? "▾" : "▸"} ${name}/</button>`
                    : kind === "file"
                    ? html`<button class="link ${e.path === this.path ? "open" : ""}" data-path=${e.path}
                        @click=${() => this.open(e)}>${name}</button>
                      <a class="download" href=${fileURL(this.session, this.node, e.path, true)} title="download"
                        @click=${(ev: Event) => this.download(ev, e.path)}>⤓</a>`
                    : html`<span title="not a file to read">${name}</span>`}
                </li>`)}
            </ul>
            <div class="editor">
              ${this.path ? html`
                <div class="editor-bar"><code>${this.path}</code>${this.dirty() ? html` <span class="muted">(changed)</span>` : nothing}
                  <span class="spacer"></span>
                  <button id="files-save" class="primary" ?disabled=${!this.dirty()} @click=${this.save}>Save</button></div>
                <textarea spellcheck="false" .value=${this.content}
                  @input=${(e: Event) => (this.content = (e.target as HTMLTextAreaElement).value)}></textarea>`
                : html`<p class="muted">Pick a file on the left. Drop files on a terminal to upload them.</p>`}
            </div>
          </div>
          ${this.message ? html`<p class="files-message" role="status">${this.message}</p>` : nothing}
        </div>
      </div>`;
  }
}

customElements.define("sl-files", FilesDialog);
