// Builds the page into dist/: index.html, and under assets/ the app's script and stylesheet (content-hashed
// names, cached for ever) and, under stable names for other pages: sandlot-terminal.js (a terminal),
// sandlot-lab.js (a whole lab; it loads sandlot-terminal.js beside it when a lab starts) and sandlot-sdk.js (the SDK).
// `node build.mjs --sdk` builds the SDK as an npm package into dist-sdk/ (ES modules and TypeScript declarations).
// `node build.mjs --tests` builds test/*.test.ts into dist-test/ for `node --test`. Both first write src/api-types.ts
// from the API's OpenAPI document (openapi-types.mjs), which tsc then checks the page against.
import * as esbuild from "esbuild";
import { copyFileSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { basename } from "node:path";
import { writeTypes } from "./openapi-types.mjs";

writeTypes("../session/api/openapi.json", "src/api-types.ts", "session/api/openapi.json");

const common = { bundle: true, minify: true, target: "es2022", legalComments: "none", logLevel: "warning" };

// Stable names, for pages elsewhere (frontend.go serves them revalidated and to any origin).
const embeds = { "sandlot-terminal": "src/sandlot-terminal.ts", "sandlot-lab": "src/sandlot-lab.ts", "sandlot-sdk": "src/sdk/index.ts" };

if (process.argv.includes("--sdk")) {
  // The npm package: the SDK, the elements, their types. xterm.js and its addons stay dependencies of the package.
  rmSync("dist-sdk", { recursive: true, force: true });
  await esbuild.build({ ...common, minify: false, format: "esm", outdir: "dist-sdk", entryPoints: embeds,
    loader: { ".css": "text" }, external: ["@xterm/*"] });
  const { execFileSync } = await import("node:child_process");
  execFileSync("npx", ["tsc", "-p", "tsconfig.sdk.json"], { stdio: "inherit" });
  const own = JSON.parse(readFileSync("package.json", "utf8"));
  const xterm = Object.fromEntries(Object.entries(own.dependencies).filter(([k]) => k.startsWith("@xterm/")));
  writeFileSync("dist-sdk/package.json", JSON.stringify({
    name: "@sandlot/sdk", version: own.version ?? "0.0.0", description: "Sessions, nodes, terminals and labs of a Sandlot server",
    type: "module", dependencies: xterm,
    exports: {
      ".": { types: "./types/sdk/index.d.ts", default: "./sandlot-sdk.js" },
      "./terminal": { types: "./types/sandlot-terminal.d.ts", default: "./sandlot-terminal.js" },
      "./lab": { types: "./types/sandlot-lab.d.ts", default: "./sandlot-lab.js" },
    },
    types: "./types/sdk/index.d.ts",
  }, null, 2) + "\n");
  console.log("built dist-sdk/ (npm pack dist-sdk)");
  process.exit(0);
}

if (process.argv.includes("--tests")) {
  rmSync("dist-test", { recursive: true, force: true });
  await esbuild.build({ ...common, minify: false, platform: "node", format: "esm", outdir: "dist-test",
    outExtension: { ".js": ".mjs" }, entryPoints: readdirSync("test").filter((f) => f.endsWith(".test.ts")).map((f) => `test/${f}`) });
  process.exit(0);
}

rmSync("dist/assets", { recursive: true, force: true });
rmSync("dist/index.html", { force: true });
mkdirSync("dist/assets", { recursive: true });
const names = {};
const record = (result) => {
  for (const out of Object.keys(result.metafile.outputs)) {
    const name = basename(out);
    names[name.replace(/-[A-Z0-9]{8}(\.\w+)$/, "$1")] = name;
  }
};
const js = { ...common, format: "esm", outdir: "dist/assets", metafile: true, loader: { ".css": "text" } };
record(await esbuild.build({ ...js, entryPoints: { app: "src/main.ts" }, entryNames: "[name]-[hash]" }));
await esbuild.build({ ...js, entryPoints: embeds });
copyFileSync("src/try-in-sandlot.svg", "dist/assets/try-in-sandlot.svg"); // the README button, for any page to link
record(await esbuild.build({ ...common, outdir: "dist/assets", metafile: true, entryPoints: { app: "src/app.css" },
  entryNames: "[name]-[hash]" }));
const page = readFileSync("src/index.html", "utf8").replace(/\{\{([\w.-]+)\}\}/g, (_, n) => {
  if (!names[n]) throw new Error(`index.html refers to ${n}, which the build did not make`);
  return names[n];
});
writeFileSync("dist/index.html", page);
console.log("built", Object.values(names).join(", "));
