// The files dialog's tree: the server's listings of a node's directories (GET .../tree, a few levels at a time)
// merged into one and shown folded, a directory's entries under it once it is opened. Opening a directory the
// listings did not reach into (deeper than they went, or left out of a truncated one) lists it.

import type { FileEntry, Tree } from "./api-types";

/** Kind is what the dialog does with an entry: open a directory, edit or download a file, or only show it. */
export type Kind = "dir" | "file" | "other";

/** kindOf places each entry type of the API in the tree. */
export function kindOf(type: FileEntry["type"]): Kind {
  switch (type) {
    case "dir":
      return "dir";
    case "file":
    case "symlink": // reading one reads what it points at
      return "file";
    case "other": // a device, socket or pipe: nothing to read
      return "other";
  }
}

/** Row is an entry as the tree shows it. */
export interface Row {
  entry: FileEntry;
  kind: Kind;
  name: string;
  depth: number; // 0 for the entries of the root
  open: boolean;
}

/** Lister lists a directory of the node, depth levels down. */
export type Lister = (path: string, depth: number) => Promise<Tree>;

export class FileTree {
  /** truncated says the last listing left entries out. */
  truncated = false;
  private entries: FileEntry[] = [];
  private opened = new Set<string>();
  private complete = new Set<string>(); // directories whose entries are all in entries

  constructor(
    readonly root: string,
    private readonly list: Lister,
    private readonly depth = 3,
  ) {}

  /** load lists the root afresh, folded. */
  async load(): Promise<void> {
    this.entries = [];
    this.opened.clear();
    this.complete.clear();
    this.merge(await this.list(this.root, this.depth));
  }

  /** toggle opens a directory (listing it when its entries are not all known) or folds it. */
  async toggle(path: string): Promise<void> {
    if (this.opened.delete(path)) return;
    if (!this.complete.has(path)) this.merge(await this.list(path, this.depth));
    this.opened.add(path);
  }

  /** rows are the entries to show, in tree order: those of the root and of every open directory shown. */
  rows(): Row[] {
    const rows: Row[] = [];
    const shownOpen = new Set([this.root]);
    for (const entry of this.entries) {
      const parent = entry.path.slice(0, entry.path.lastIndexOf("/")) || "/";
      if (!shownOpen.has(parent)) continue;
      const kind = kindOf(entry.type), open = kind === "dir" && this.opened.has(entry.path);
      if (open) shownOpen.add(entry.path);
      rows.push({ entry, kind, open, name: entry.path.slice(parent.length + (parent === "/" ? 0 : 1)),
        depth: levels(this.root, entry.path) - 1 });
    }
    return rows;
  }

  // merge puts a listing in place of what was known under its directory, and notes which directories it lists
  // whole: the server keeps the shallowest entries when it leaves some out, so every level above the deepest one
  // it sent is whole.
  private merge(t: Tree) {
    const under = t.path === "/" ? "/" : t.path + "/";
    const levelsOf = t.entries.map((e) => levels(t.path, e.path));
    const whole = t.truncated ? Math.max(0, ...levelsOf) - 1 : this.depth; // levels below t.path listed whole
    this.entries = this.entries.filter((e) => !e.path.startsWith(under)).concat(t.entries).sort(treeOrder);
    for (const p of [...this.complete]) if (p.startsWith(under)) this.complete.delete(p);
    if (whole >= 1) this.complete.add(t.path);
    t.entries.forEach((e, i) => {
      if (kindOf(e.type) === "dir" && levelsOf[i] < whole) this.complete.add(e.path);
    });
    this.truncated = t.truncated;
  }
}

/** levels is how many levels below dir path is (1 for an entry of dir). */
function levels(dir: string, path: string): number {
  const rest = path.slice(dir === "/" ? 1 : dir.length + 1);
  return rest.split("/").length;
}

// treeOrder is the server's order: each directory followed by what it holds, siblings by name.
const treeOrder = (a: FileEntry, b: FileEntry) => {
  const x = a.path.replaceAll("/", "\0"), y = b.path.replaceAll("/", "\0");
  return x < y ? -1 : x > y ? 1 : 0;
};
