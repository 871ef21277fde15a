// The reader's preferences, kept in this browser: the theme and the terminals' text size.

type Theme = "dark" | "light";
const listeners = new Set<() => void>();

function stored<T>(key: string, ok: (v: unknown) => v is T, fallback: T): T {
  try {
    const v = JSON.parse(localStorage.getItem(key) ?? "null");
    return ok(v) ? v : fallback;
  } catch {
    return fallback;
  }
}

const isTheme = (v: unknown): v is Theme => v === "dark" || v === "light";
const isSize = (v: unknown): v is number => typeof v === "number" && v >= 9 && v <= 32;
const preferred: Theme = matchMedia?.("(prefers-color-scheme: light)").matches ? "light" : "dark";

export const settings = {
  theme: stored("sandlot:theme", isTheme, preferred),
  fontSize: stored("sandlot:font-size", isSize, 14),

  setTheme(t: Theme) {
    this.theme = t;
    localStorage.setItem("sandlot:theme", JSON.stringify(t));
    apply();
  },
  setFontSize(n: number) {
    if (!isSize(n)) return;
    this.fontSize = n;
    localStorage.setItem("sandlot:font-size", JSON.stringify(n));
    apply();
  },
  /** onChange calls f after every change; it returns a function that stops that. */
  onChange(f: () => void): () => void {
    listeners.add(f);
    return () => listeners.delete(f);
  },
};

function apply() {
  document.documentElement.dataset.theme = settings.theme;
  listeners.forEach((f) => f());
}

apply();
