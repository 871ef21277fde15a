// The clipboard, as far as the browser lets a page use it. Copy works everywhere (the async API, or the older
// execCommand where that is refused); reading needs the async API and the user's permission, so the page keeps
// what it copied last and offers that when reading is refused: pasting between two terminals always works.

let last = "";

export async function copyText(text: string): Promise<void> {
  if (!text) return;
  last = text;
  try {
    await navigator.clipboard.writeText(text);
    return;
  } catch {
    // Not allowed (no focus, insecure origin): fall back to a hidden text area.
  }
  const ta = document.createElement("textarea");
  ta.value = text;
  ta.style.cssText = "position:fixed;opacity:0;left:-1000px";
  const focused = document.activeElement as HTMLElement | null;
  document.body.appendChild(ta);
  ta.select();
  try {
    document.execCommand("copy");
  } finally {
    ta.remove();
    focused?.focus();
  }
}

export async function readClipboard(): Promise<string> {
  try {
    return await navigator.clipboard.readText();
  } catch {
    return last;
  }
}
