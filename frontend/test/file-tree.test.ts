// The files dialog's tree against the server's own vocabulary: the entry types and the example listing come from
// the OpenAPI document (session/api/openapi.json), which the Go test keeps true to what the server sends.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { FileTree, kindOf, type Row } from "../src/file-tree";
import type { FileEntry, Tree } from "../src/api-types";

// From dist-test/ (where the tests run) or test/: both are one level below frontend/.
const doc = JSON.parse(readFileSync(new URL("../../session/api/openapi.json", import.meta.url), "utf8"));
const types: FileEntry["type"][] = doc.components.schemas.FileEntry.properties.type.enum;
const example: Tree = doc.components.schemas.Tree.example;

const entry = (path: string, type: FileEntry["type"]): FileEntry => ({ path, type, size: 1, mtime: "2025-01-02T10:00:00Z" });
const shown = (rows: Row[]) => rows.map((r) => `${"  ".repeat(r.depth)}${r.name}${r.kind === "dir" ? (r.open ? "/ -" : "/ +") : ""}`);

/** server answers listings from a fixed set of entries, as GET .../tree does (depth levels down), and counts them. */
function server(all: FileEntry[], limit = Infinity) {
  const calls: string[] = [];
  const list = async (path: string, depth: number): Promise<Tree> => {
    calls.push(path);
    const level = (p: string) => p.slice(path.length + 1).split("/").length;
    const under = all.filter((e) => e.path.startsWith(path + "/") && level(e.path) <= depth);
    const kept = [...under].sort((a, b) => level(a.path) - level(b.path)).slice(0, limit); // shallowest first
    return { path, truncated: kept.length < under.length, entries: under.filter((e) => kept.includes(e)) };
  };
  return { calls, list };
}

test("every entry type the API documents has its place, and a directory is one to open", () => {
  assert.ok(types.length > 0, "the document lists the entry types");
  for (const t of types) assert.ok(["dir", "file", "other"].includes(kindOf(t)), `entry type ${t}`);
  assert.deepEqual(types.filter((t) => kindOf(t) === "dir"), ["dir"]);
  assert.equal(kindOf("file"), "file");
});

test("the documented listing shows folded, and its directories open", async () => {
  const { calls, list } = server(example.entries);
  const tree = new FileTree(example.path, list);
  await tree.load();
  assert.deepEqual(shown(tree.rows()), ["app/ +", "latest", "notes.txt"]);
  await tree.toggle("/root/app");
  assert.deepEqual(shown(tree.rows()), ["app/ -", "  compose.yaml", "  src/ +", "latest", "notes.txt"]);
  await tree.toggle("/root/app/src");
  assert.deepEqual(shown(tree.rows()), ["app/ -", "  compose.yaml", "  src/ -", "    web/ +", "latest", "notes.txt"]);
  assert.deepEqual(calls, ["/root"], "what the first listing reached needs no other");
  await tree.toggle("/root/app");
  assert.deepEqual(shown(tree.rows()), ["app/ +", "latest", "notes.txt"], "folding hides everything below");
  await tree.toggle("/root/app");
  assert.equal(shown(tree.rows()).length, 6, "reopening shows what was open inside");
});

test("a directory deeper than the listing went is listed when it is opened", async () => {
  const all = [entry("/root/a", "dir"), entry("/root/a/b", "dir"), entry("/root/a/b/c", "dir"),
    entry("/root/a/b/c/d", "dir"), entry("/root/a/b/c/d/deep.txt", "file")];
  const { calls, list } = server(all);
  const tree = new FileTree("/root", list);
  await tree.load();
  for (const dir of ["/root/a", "/root/a/b", "/root/a/b/c"]) await tree.toggle(dir);
  assert.deepEqual(calls, ["/root", "/root/a/b/c"]);
  await tree.toggle("/root/a/b/c/d");
  assert.deepEqual(calls, ["/root", "/root/a/b/c"], "c's listing reached d's entries");
  assert.deepEqual(shown(tree.rows()), ["a/ -", "  b/ -", "    c/ -", "      d/ -", "        deep.txt"]);
});

test("a truncated listing: the directories it cut into are listed when opened", async () => {
  const all = [entry("/root/x", "dir"), entry("/root/y", "dir"), entry("/root/x/1", "file"), entry("/root/x/2", "file"),
    entry("/root/y/1", "file"), entry("/root/y/2", "file")];
  const { calls, list } = server(all, 3); // /root/x, /root/y and one of the second level
  const tree = new FileTree("/root", list);
  await tree.load();
  assert.equal(tree.truncated, true);
  await tree.toggle("/root/y");
  assert.deepEqual(calls, ["/root", "/root/y"]);
  assert.deepEqual(shown(tree.rows()), ["x/ +", "y/ -", "  1", "  2"]);
  assert.equal(tree.truncated, false);
});

test("a listing that fails leaves the directory folded", async () => {
  const tree = new FileTree("/root", async (path) => {
    if (path !== "/root") throw new Error("gone");
    return { path, truncated: false, entries: [entry("/root/a", "dir"), entry("/root/a/b", "dir"), entry("/root/a/b/c", "dir")] };
  });
  await tree.load();
  await tree.toggle("/root/a");
  await tree.toggle("/root/a/b");
  await assert.rejects(tree.toggle("/root/a/b/c"), /gone/);
  assert.deepEqual(shown(tree.rows()), ["a/ -", "  b/ -", "    c/ +"]);
});

test("the tree of / names its entries plainly", async () => {
  const tree = new FileTree("/", async (path) => ({ path, truncated: false, entries: [entry("/etc", "dir"), entry("/etc/hosts", "file")] }));
  await tree.load();
  await tree.toggle("/etc");
  assert.deepEqual(shown(tree.rows()), ["etc/ -", "  hosts"]);
});
