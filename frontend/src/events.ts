// Server-sent events with the page's manners: named events to one handler, and a stream the server closed (it
// restarted, or refused the token) opened again after a pause that grows, until the page stops listening.

/** listen opens the stream at url and calls on(type, data) for each event of the given types; trouble is told when
 * the stream is down (and again when it is back, with false). It returns the function that stops listening. */
export function listen(url: string, types: string[], on: (type: string, data: string) => void,
  trouble?: (down: boolean) => void): () => void {
  let es: EventSource | undefined;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let pause = 2000;
  let stopped = false;
  const open = () => {
    es = new EventSource(url);
    for (const t of types) es.addEventListener(t, (e) => on(t, (e as MessageEvent<string>).data));
    es.onopen = () => {
      pause = 2000;
      trouble?.(false);
    };
    es.onerror = () => {
      trouble?.(true);
      if (es?.readyState !== EventSource.CLOSED || stopped) return; // the browser tries again by itself
      timer = setTimeout(open, pause);
      pause = Math.min(pause * 2, 30_000);
    };
  };
  open();
  return () => {
    stopped = true;
    clearTimeout(timer);
    es?.close();
  };
}
