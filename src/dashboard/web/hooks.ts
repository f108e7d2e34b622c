import { useCallback, useEffect, useRef, useState } from 'preact/hooks';

export interface Polled<T> {
  data: T | undefined;
  error: Error | undefined;
  reload(): void;
}

/**
 * Loads now and again every `intervalMs` (0: once), dropping answers that come
 * back after the page moved on. Lists have no push endpoint; the status
 * streams make the rows live in between.
 */
export function usePoll<T>(load: (signal: AbortSignal) => Promise<T>, intervalMs: number, deps: unknown[]): Polled<T> {
  const [data, setData] = useState<T>();
  const [error, setError] = useState<Error>();
  const [round, setRound] = useState(0);
  const loadRef = useRef(load);
  loadRef.current = load;

  useEffect(() => {
    const controller = new AbortController();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const run = async () => {
      try {
        const value = await loadRef.current(controller.signal);
        if (controller.signal.aborted) return;
        setData(value);
        setError(undefined);
      } catch (caught) {
        if (controller.signal.aborted) return;
        setError(caught instanceof Error ? caught : new Error(String(caught)));
      }
      if (intervalMs > 0 && !controller.signal.aborted) timer = setTimeout(() => void run(), intervalMs);
    };
    void run();
    return () => {
      controller.abort();
      clearTimeout(timer);
    };
    // The caller names what `load` depends on; the latest `load` is read through the ref.
  }, [...deps, intervalMs, round]);

  const reload = useCallback(() => setRound((n) => n + 1), []);
  return { data, error, reload };
}

/** The current time, renewed every `intervalMs`: ages and heartbeats count up on their own. */
export function useNow(intervalMs = 1000): number {
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    const timer = setInterval(() => setNow(Date.now()), intervalMs);
    return () => clearInterval(timer);
  }, [intervalMs]);
  return now;
}

export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
