/**
 * How many abort listeners a run keeps on one signal: a run of `--pages` pages (10,000 by
 * default, one device each) against the stand-ins, in this process, with every
 * addEventListener('abort') and removeEventListener('abort') counted per signal. Prints the
 * most listeners any one signal held at once, and where the listeners of that signal were
 * added. `npx tsx tools/diagnose/abort-listeners.ts [--pages=N] [--paging=offset|auto]`.
 */
import { randomUUID } from 'node:crypto';
import { getEventListeners } from 'node:events';
import { parseArgs } from 'node:util';
import { LEGACY, SPEC_7_3 } from '../stand-ins/simulator.ts';
import { startStandIns } from '../stand-ins/standins.ts';
import { localContext, quietAwsSdk } from '../cli.ts';

const { values } = parseArgs({ options: { pages: { type: 'string', default: '10000' }, paging: { type: 'string', default: 'offset' } } });
const pages = Number(values.pages);
const paging = values.paging === 'auto' ? 'auto' : 'offset';

interface Held {
  signal: AbortSignal;
  max: number;
  sites: Map<string, number>;
}
const held = new WeakMap<AbortSignal, Held>();
let worst: Held | undefined;
// The original, called with each signal as `this`.
const add: (this: EventTarget, ...args: Parameters<EventTarget['addEventListener']>) => void = Reflect.get(EventTarget.prototype, 'addEventListener');

/** The first frame of ours that added the listener: where a fix would go. */
function site(): string {
  const frames = (new Error().stack ?? '').split('\n').slice(3);
  return (frames.find((frame) => frame.includes('/lambda/')) ?? frames[0] ?? '').trim();
}

// Counted by Node itself (getEventListeners), so listeners that fire once and go are not counted after.
EventTarget.prototype.addEventListener = function (this: EventTarget, ...args: Parameters<EventTarget['addEventListener']>) {
  add.apply(this, args);
  if (args[0] === 'abort' && this instanceof AbortSignal) {
    const count = held.get(this) ?? { signal: this, max: 0, sites: new Map<string, number>() };
    held.set(this, count);
    const at = site();
    count.sites.set(at, (count.sites.get(at) ?? 0) + 1);
    count.max = Math.max(count.max, getEventListeners(this, 'abort').length);
    if (count.max > (worst?.max ?? 0)) worst = count;
  }
};

quietAwsSdk();
const standIns = await startStandIns({ simulator: { ...(paging === 'auto' ? SPEC_7_3 : { ...LEGACY, cursorMode: false }), fleet: pages } });
try {
  Object.assign(process.env, standIns.env, {
    THINGPARK_PAGE_SIZE: '1',
    THINGPARK_PAGING: paging,
    ...(paging === 'offset' ? { THINGPARK_FIRST_PAGE_INDEX: '0' } : {}),
    CURATE_INLINE_MIN_REMAINING_SECONDS: '900',
    POWERTOOLS_LOG_LEVEL: 'ERROR',
    POWERTOOLS_METRICS_DISABLED: 'true',
  });
  const { handler } = await import('../../lambda/handler.ts');
  const started = Date.now();
  const summary = await handler({}, localContext(randomUUID(), 'abort-listeners'));
  if (summary.status !== 'committed') throw new Error(`The run ended ${summary.status}`);
  console.log(`${summary.pages} pages, ${summary.devices} devices, ${paging} paging, ${Date.now() - started} ms`);
  console.log(
    `most abort listeners on one signal at once: ${worst?.max ?? 0}; on it at the end: ${worst ? getEventListeners(worst.signal, 'abort').length : 0}`,
  );
  for (const [at, count] of [...(worst?.sites ?? [])].sort((a, b) => b[1] - a[1]).slice(0, 5)) console.log(`  ${count} added at ${at}`);
} finally {
  await standIns.stop();
}
