// Which page an address shows: the landing page at /, a session at /s/<id>, a workshop's join page at /w/<code>,
// its instructor's dashboard at /w/<id>/instructor. Anything else is the landing page.

export interface Route {
  session?: string;
  join?: string; // an access code, as typed in the address
  instructor?: string; // a workshop's id
}

export function route(path: string): Route {
  let m = /^\/s\/([A-Za-z0-9_-]{1,64})\/?$/.exec(path);
  if (m) return { session: m[1] };
  m = /^\/w\/([A-Za-z0-9_-]{1,64})\/instructor\/?$/.exec(path);
  if (m) return { instructor: m[1] };
  m = /^\/w\/([^/]{1,64})\/?$/.exec(path);
  if (m) return { join: safeDecode(m[1]) };
  return {};
}

function safeDecode(s: string) {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}
