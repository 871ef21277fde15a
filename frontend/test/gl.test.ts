// Which WebGL renderers run on the CPU: the terminals keep xterm's DOM renderer there.
import { test } from "node:test";
import assert from "node:assert/strict";
import { softwareRenderer } from "../src/gl";

test("software renderers are told from GPUs", () => {
  for (const name of [
    "ANGLE (Google, Vulkan 1.3.0 (SwiftShader Device (Subzero) (0x0000C0DE)), SwiftShader driver)",
    "Google SwiftShader",
    "llvmpipe (LLVM 15.0.6, 256 bits)",
    "ANGLE (Mesa, llvmpipe (LLVM 17.0.6 256 bits), OpenGL 4.5)",
    "ANGLE (Microsoft, Microsoft Basic Render Driver Direct3D11 vs_5_0 ps_5_0, D3D11)",
    "Mesa softpipe",
  ]) {
    assert.equal(softwareRenderer(name), true, name);
  }
  for (const name of [
    "ANGLE (NVIDIA, NVIDIA GeForce RTX 3060 (0x00002504) Direct3D11 vs_5_0 ps_5_0, D3D11)",
    "ANGLE (Intel, Mesa Intel(R) UHD Graphics 620 (KBL GT2), OpenGL 4.6)",
    "ANGLE (Apple, ANGLE Metal Renderer: Apple M2, Unspecified Version)",
    "AMD Radeon Pro 5500M OpenGL Engine",
    "WebKit WebGL",
    "",
  ]) {
    assert.equal(softwareRenderer(name), false, name);
  }
});
