/**
 * The benchmark's stand-ins (tools/stand-ins/standins.ts: the ThingPark simulator with its
 * token server, the SSM endpoint, s3rver) in a process of their own, driven over IPC by
 * the parent (main.ts) and reached by the approach under test over loopback, as before.
 *
 * Why a process of their own: in the parent they shared its event loop and, on a 2-core
 * machine, competed with the approach under test for CPU in ways the figures did not
 * show. Apart, their CPU is measured (`cpuMs`), and with the pages rendered once
 * (`prerender`) it is small and the same for every approach.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { resolve } from 'node:path';
import type { SimulatorOptions } from '../stand-ins/simulator.ts';
import { onCore } from './cores.ts';

/** What the stand-ins counted since the last `clear` or `reset`. */
export interface StandInCounts {
  /** Device API requests the simulator received, rejected ones included. */
  requests: number;
  rejected: number;
  grants: number;
  maxInFlight: number;
  /** TCP connections the simulator accepted (keep-alive reuses them). */
  connections: number;
  /** Times of the first and last device API request (ms since the epoch). */
  firstAt: number;
  lastAt: number;
  /** CPU the stand-ins' process spent (user + system). */
  cpuMs: number;
  /** Single-device requests (`GET .../devices/{id}`). */
  lookups: number;
  /** EUIs of the devices the fleet's changes deleted. */
  removed: string[];
}

/** Simulator options that cross a process boundary: no functions. */
export type BenchSimulatorOptions = Omit<Partial<SimulatorOptions>, 'fault' | 'lookupFault' | 'revise'>;

export interface BenchStandInsOptions {
  simulator: BenchSimulatorOptions;
  /** Renders every page of this size once, up front (the simulator's `prerender`). */
  prerender?: number;
}

export type Request = { op: 'reset'; options: BenchStandInsOptions } | { op: 'clear' } | { op: 'counts' } | { op: 'stop' };

export interface Ready {
  env: Record<string, string>;
  s3Url: string;
}

export interface BenchStandIns extends Ready {
  /** The simulator back to these options, counters cleared (pages rendered if asked). */
  reset(options: BenchStandInsOptions): Promise<void>;
  /** Counters cleared, nothing else changed. */
  clear(): Promise<void>;
  counts(): Promise<StandInCounts>;
  stop(): Promise<void>;
}

/** Starts the stand-ins' process (tools/bench/stand-ins-process.ts, run by tsx), on `core` if given, and waits until they listen. */
export async function startBenchStandIns(options: BenchStandInsOptions, core?: number): Promise<BenchStandIns> {
  const child = fork(resolve('tools/bench/stand-ins-process.ts'), [], {
    ...onCore(core, ['--import', 'tsx']),
    env: { ...process.env, BENCH_STAND_INS: JSON.stringify(options), NODE_NO_WARNINGS: '1' },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const ready = await new Promise<Ready>((resolveReady, reject) => {
    child.once('message', (message) => resolveReady(message as Ready));
    child.once('exit', (code) => reject(new Error(`the stand-ins' process exited with ${code} before it was ready`)));
  });
  const call = request(child);
  return {
    ...ready,
    reset: async (next) => void (await call({ op: 'reset', options: next })),
    clear: async () => void (await call({ op: 'clear' })),
    counts: async () => (await call({ op: 'counts' })) as StandInCounts,
    stop: async () => {
      const exited = new Promise((resolveExit) => child.once('exit', resolveExit));
      await call({ op: 'stop' });
      await exited;
    },
  };
}

/** One request at a time, answered in order: the parent waits for each. */
function request(child: ChildProcess): (message: Request) => Promise<unknown> {
  return (message) =>
    new Promise((resolveAnswer, reject) => {
      const onExit = (code: number | null) => reject(new Error(`the stand-ins' process exited with ${code}`));
      child.once('exit', onExit);
      child.once('message', (answer) => {
        child.off('exit', onExit);
        const { error, value } = answer as { error?: string; value?: unknown };
        if (error === undefined) resolveAnswer(value);
        else reject(new Error(error));
      });
      child.send(message);
    });
}
