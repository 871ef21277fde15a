// Stylesheets imported by scripts arrive as text (build.mjs), to be put where the element lives.
declare module "*.css" {
  const css: string;
  export default css;
}
