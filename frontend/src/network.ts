// What the Network panel decides about a session's fault picture, apart from the page (tested with node --test).

import type { Network, NetworkLink } from "./api-types";

/** touchedNodes are the nodes of nodes that a fault of doc touches. */
export function touchedNodes(doc: Network, nodes: string[]): string[] {
  const seen = new Set<string>();
  for (const l of doc.links ?? []) {
    for (const end of [l.from, l.to]) {
      if (end === "*") nodes.forEach((n) => seen.add(n));
      else seen.add(end);
    }
  }
  if (doc.partitions?.length) nodes.forEach((n) => seen.add(n)); // every node is on one side or another
  return nodes.filter((n) => seen.has(n));
}

/** describeLink says in a few words what a link's fault does. */
export function describeLink(l: NetworkLink): string {
  const parts: string[] = [];
  if (l.loss) parts.push(`loss ${l.loss}`);
  if (l.rate) parts.push(`rate ${l.rate}`);
  if (l.latency) parts.push(`latency ${l.latency}${l.jitter ? ` ± ${l.jitter}` : ""}`);
  if (l.duplicate) parts.push(`duplicate ${l.duplicate}`);
  if (l.corrupt) parts.push(`corrupt ${l.corrupt}`);
  return parts.join(" · ");
}

/** healsIn says when a fault that ends at at heals, seen from now. */
export function healsIn(at: string | undefined, now: number): string {
  if (!at) return "";
  const s = Math.max(0, Math.ceil((Date.parse(at) - now) / 1000));
  return s >= 120 ? `heals in ${Math.ceil(s / 60)} min` : `heals in ${s} s`;
}
