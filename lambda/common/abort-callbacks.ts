/**
 * Many waits on one signal behind a single abort listener. A run's signal lives as long as
 * a sweep, and every request queued in the window (tens at once in cursor mode, one per
 * range) and every retry's wait listens to it: one listener each made Node warn at eleven
 * ("MaxListenersExceededWarning: 11 abort listeners added to [AbortSignal]"), and the
 * count grew with the ranges. Here the signal has one listener while anything waits on it,
 * and none once nothing does.
 */

interface Waits {
  callbacks: Set<() => void>;
  listener: () => void;
}

const waitsBySignal = new WeakMap<AbortSignal, Waits>();

/**
 * Calls `callback` once when `signal` aborts (the caller checks `signal.aborted` first);
 * the function returned stops that, and with the signal's last wait removes its listener.
 */
export function whenAborted(signal: AbortSignal, callback: () => void): () => void {
  let waits = waitsBySignal.get(signal);
  if (waits === undefined) {
    const callbacks = new Set<() => void>();
    const listener = () => {
      waitsBySignal.delete(signal);
      for (const call of callbacks) call();
      callbacks.clear();
    };
    waits = { callbacks, listener };
    waitsBySignal.set(signal, waits);
    signal.addEventListener('abort', listener, { once: true });
  }
  // A wrapper of its own, so that the same callback given twice is two waits.
  const call = () => callback();
  const { callbacks, listener } = waits;
  callbacks.add(call);
  return () => {
    if (!callbacks.delete(call) || callbacks.size > 0) return;
    signal.removeEventListener('abort', listener);
    if (waitsBySignal.get(signal) === waits) waitsBySignal.delete(signal);
  };
}
