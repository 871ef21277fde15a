// Whether terminals draw with WebGL: not where WebGL itself is drawn by the CPU (SwiftShader, llvmpipe and the
// like, on machines and VMs without a GPU, as in many training rooms): there xterm's DOM renderer costs far less,
// and a page, or a room of pages on one machine, stays responsive.

/** softwareRenderer says whether a WebGL renderer's name (UNMASKED_RENDERER_WEBGL) is one that runs on the CPU. */
export function softwareRenderer(name: string): boolean {
  return /swiftshader|llvmpipe|softpipe|lavapipe|software|basic render driver/i.test(name);
}

let fast: boolean | undefined;

/** fastWebGL says whether this browser draws WebGL 2 on a GPU; it asks once per page. */
export function fastWebGL(): boolean {
  if (fast === undefined) {
    const gl = document.createElement("canvas").getContext("webgl2");
    const info = gl?.getExtension("WEBGL_debug_renderer_info");
    fast = !!gl && !softwareRenderer(String(gl.getParameter(info ? info.UNMASKED_RENDERER_WEBGL : gl.RENDERER)));
    gl?.getExtension("WEBGL_lose_context")?.loseContext();
  }
  return fast;
}
