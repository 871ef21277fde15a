// What this browser keeps of workshops: an attendee's token per access code (localStorage, so that the attendee
// comes back to the same seat after closing the tab), which attendee a session is for (so that its page can hear
// the workshop's broadcasts), and the instructor's token (sessionStorage: this tab only).

/** An attendee's key to their seat, and the link that brings it to another browser. */
export interface KeptAttendee {
  token: string;
  url?: string;
}

function read(store: Storage | undefined, key: string): string | null {
  try {
    return store?.getItem(key) ?? null;
  } catch {
    return null; // storage refused (private mode, a sandboxed frame): nothing kept
  }
}

function write(store: Storage | undefined, key: string, value: string | null) {
  try {
    if (value === null) store?.removeItem(key);
    else store?.setItem(key, value);
  } catch {
    // storage refused: this page still has it in memory
  }
}

const local = () => (typeof localStorage === "undefined" ? undefined : localStorage);
const tab = () => (typeof sessionStorage === "undefined" ? undefined : sessionStorage);

export function keptAttendee(code: string): KeptAttendee | undefined {
  try {
    const k = JSON.parse(read(local(), `sandlot:attendee:${code}`) ?? "null");
    return k && typeof k.token === "string" && k.token ? k : undefined;
  } catch {
    return undefined;
  }
}

export function keepAttendee(code: string, k: KeptAttendee) {
  write(local(), `sandlot:attendee:${code}`, JSON.stringify(k));
}

export function forgetAttendee(code: string) {
  write(local(), `sandlot:attendee:${code}`, null);
}

/** keepSessionAttendee remembers that session id is the seat of the attendee with this token. */
export function keepSessionAttendee(sessionId: string, token: string) {
  write(local(), `sandlot:session-attendee:${sessionId}`, token);
}

export function sessionAttendee(sessionId: string): string | undefined {
  return read(local(), `sandlot:session-attendee:${sessionId}`) ?? undefined;
}

export function instructorToken(workshopId: string): string | undefined {
  return read(tab(), `sandlot:instructor:${workshopId}`) ?? undefined;
}

export function keepInstructorToken(workshopId: string, token: string) {
  write(tab(), `sandlot:instructor:${workshopId}`, token);
}

/** takeLinkParam returns a parameter a link carries, in the fragment (#token=..., as the server makes its links, so
 * that tokens never reach a server's log) or the query, and removes it from the address bar (and history), so that a
 * token in a link does not stay on the screen or in the browser's history. */
export function takeLinkParam(name: string): string | null {
  const u = new URL(location.href);
  const hash = new URLSearchParams(u.hash.replace(/^#/, ""));
  const v = hash.get(name) ?? u.searchParams.get(name);
  if (v === null) return null;
  hash.delete(name);
  u.searchParams.delete(name);
  const rest = hash.toString();
  history.replaceState(history.state, "", u.pathname + u.search + (rest ? "#" + rest : ""));
  return v;
}
