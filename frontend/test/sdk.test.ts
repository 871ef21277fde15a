// The SDK against the API's own description (session/api/openapi.json), and its session events against a
// stand-in server (a fetch that answers from a script).
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { Sandlot, SandlotError, endpoints } from "../src/sdk/index";
import type { Instance, SessionView } from "../src/api-types";

const doc = JSON.parse(readFileSync(new URL("../../session/api/openapi.json", import.meta.url), "utf8"));

const ref = (schema: { $ref?: string } | undefined) => schema?.$ref?.replace("#/components/schemas/", "");

test("every call of the SDK is in the OpenAPI document, with the request and answer schemas the SDK's types are", () => {
  for (const [name, e] of Object.entries(endpoints)) {
    const op = doc.paths[e.path]?.[e.method.toLowerCase()];
    assert.ok(op, `${name}: ${e.method} ${e.path} is not in the document`);
    const body = op.requestBody?.content ?? {};
    if (e.request === "multipart") assert.ok(body["multipart/form-data"], `${name}: the document takes no multipart body`);
    else if (e.request === "binary") assert.ok(body["application/octet-stream"], `${name}: the document takes no raw body`);
    else if (e.request === "") assert.equal(ref(body["application/json"]?.schema), undefined, `${name}: the document takes a body`);
    else {
      assert.equal(ref(body["application/json"]?.schema), e.request, `${name}: request schema`);
      assert.ok(doc.components.schemas[e.request], `${name}: no schema ${e.request}`);
    }
    const ok = op.responses?.[String(e.status)];
    assert.ok(ok, `${name}: the document has no ${e.status} answer (it has ${Object.keys(op.responses ?? {})})`);
    const successes = Object.keys(op.responses).filter((s) => s.startsWith("2"));
    assert.deepEqual(successes, [String(e.status)], `${name}: success statuses`);
    const answer = ref(ok.content?.["application/json"]?.schema);
    assert.equal(answer ?? "", e.answer, `${name}: answer schema`);
  }
});

test("the document's parameters of each path are the ones the SDK fills in", () => {
  for (const [name, e] of Object.entries(endpoints)) {
    const inPath = [...e.path.matchAll(/\{(\w+)\}/g)].map((m) => m[1]);
    for (const p of inPath) assert.ok(["id", "name", "port"].includes(p), `${name}: the SDK does not fill {${p}}`);
  }
});

const node = (name: string, status = "running", ports: number[] = []): Instance =>
  ({ name, hostname: name, status, ports, created_at: "2026-01-01T00:00:00Z", ip: "198.18.0.2" });

const view = (instances: Instance[], extra: Partial<SessionView> = {}): SessionView => ({
  id: "s1", state: "active", created_at: "2026-01-01T00:00:00Z", expires_at: "2026-01-01T01:00:00Z",
  max_expires_at: "2026-01-01T04:00:00Z", max_instances: 5, instances,
  limits: {} as SessionView["limits"], ...extra,
});

/** server answers each call from answers (by "METHOD path"), recording what was asked. */
function server(answers: Record<string, () => { status: number; body?: unknown }>) {
  const asked: { method: string; url: string; auth: string | null; body: unknown }[] = [];
  const fetcher = (async (input: URL, init: RequestInit) => {
    const u = new URL(input);
    const key = `${init.method} ${u.pathname}`;
    asked.push({ method: init.method!, url: u.toString(), auth: new Headers(init.headers).get("Authorization"),
      body: typeof init.body === "string" ? JSON.parse(init.body) : init.body });
    const a = answers[key]?.() ?? { status: 404, body: { error: { code: "not_found", message: "no " + key } } };
    return new Response(a.body === undefined ? null : JSON.stringify(a.body), { status: a.status,
      headers: { "Content-Type": "application/json" } });
  }) as unknown as typeof fetch;
  return { asked, fetcher };
}

test("a session is made with the launch token as Bearer and then called with its own token", async () => {
  const srv = server({
    "POST /api/v1/sessions": () => ({ status: 201, body: { ...view([]), token: "own" } }),
    "POST /api/v1/sessions/s1/instances/node1/exec": () => ({ status: 200,
      body: { exit_code: 0, stdout: "hi\n", stderr: "", encoding: "text", truncated: false } }),
  });
  const sandlot = new Sandlot({ server: "http://sandlot.test:8080", fetch: srv.fetcher });
  const s = await sandlot.createSession({ template: "1-node", launchToken: "launch" });
  assert.equal(s.token, "own");
  const r = await s.exec("node1", "echo hi");
  assert.equal(r.stdout, "hi\n");
  assert.deepEqual(srv.asked.map((a) => [a.method, a.url, a.auth]), [
    ["POST", "http://sandlot.test:8080/api/v1/sessions", "Bearer launch"],
    ["POST", "http://sandlot.test:8080/api/v1/sessions/s1/instances/node1/exec", "Bearer own"],
  ]);
  assert.deepEqual(srv.asked[0].body, { template: "1-node" });
  assert.deepEqual(srv.asked[1].body, { cmd: ["sh", "-c", "echo hi"] });
});

test("a refusal is a SandlotError with the API's code and status", async () => {
  const srv = server({ "POST /api/v1/sessions": () => ({ status: 429,
    body: { error: { code: "too_many_sessions", message: "You hold too many sessions." } } }) });
  const sandlot = new Sandlot({ server: "http://sandlot.test", fetch: srv.fetcher });
  await assert.rejects(sandlot.createSession(), (e: SandlotError) =>
    e instanceof SandlotError && e.status === 429 && e.code === "too_many_sessions" && /too many/.test(e.message));
});

test("watching a session fires node-added, node-changed, node-removed and ended, then stops reading", async (t) => {
  t.mock.timers.enable({ apis: ["setTimeout"] });
  const states = [
    view([node("node1", "creating")]),
    view([node("node1"), node("node2")]),
    view([node("node1", "running", [8080]), node("node2")]),
    view([node("node2")]),
    view([], { state: "ended", end_reason: "expired" }),
  ];
  let reads = 0;
  const srv = server({ "GET /api/v1/sessions/s1": () => ({ status: 200, body: states[Math.min(reads++, states.length - 1)] }) });
  const s = new Sandlot({ server: "http://sandlot.test", fetch: srv.fetcher }).session("s1", "own");
  const lab = await s;
  const seen: string[] = [];
  for (const type of ["node-added", "node-changed", "node-removed"] as const) lab.on(type, (e) => seen.push(`${type} ${e.detail.name}`));
  lab.on("ended", (e) => seen.push(`ended ${e.detail.end_reason}`));
  lab.watch({ interval: 1000 });
  for (let i = 0; i < 6; i++) {
    t.mock.timers.tick(1000);
    await new Promise((r) => setImmediate(r));
    await new Promise((r) => setImmediate(r));
  }
  assert.deepEqual(seen, ["node-changed node1", "node-added node2", "node-changed node1", "node-removed node1",
    "node-removed node2", "ended expired"]);
  const after = srv.asked.length;
  t.mock.timers.tick(10_000);
  await new Promise((r) => setImmediate(r));
  assert.equal(srv.asked.length, after, "an ended session is still read");
  assert.ok(srv.asked.every((a) => a.auth === "Bearer own"));
});

test("reads that fail are tried again later each time, up to the longest wait", async (t) => {
  t.mock.timers.enable({ apis: ["setTimeout"] });
  const srv = server({ "GET /api/v1/sessions/s1": () => ({ status: 503, body: { error: { code: "not_ready", message: "x" } } }) });
  const sandlot = new Sandlot({ server: "http://sandlot.test", fetch: srv.fetcher });
  const { Session } = await import("../src/sdk/index");
  const s = new Session(sandlot, "s1", "own");
  const errors: number[] = [];
  s.on("error", (e) => errors.push(e.detail.status));
  s.watch({ interval: 1000, maxInterval: 4000 });
  const at: number[] = [];
  for (let ms = 0; ms <= 16_000; ms += 500) {
    t.mock.timers.tick(ms === 0 ? 0 : 500);
    await new Promise((r) => setImmediate(r));
    await new Promise((r) => setImmediate(r));
    while (at.length < srv.asked.length) at.push(ms);
  }
  s.unwatch();
  // Reads at 0, then waits of 2, 4, 4, 4 s (doubling from the interval, capped).
  assert.deepEqual(at, [0, 2000, 6000, 10000, 14000]);
  assert.ok(errors.every((c) => c === 503));
});
