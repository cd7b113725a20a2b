/**
 * Where a benchmark process runs: `taskset` (util-linux) pins a forked process, and every
 * thread it starts (gzip's, the garbage collector's), to one core, so the knob sweep can
 * say how much the stand-ins sharing the machine's cores explains. Linux only, as taskset.
 */
import { spawnSync } from 'node:child_process';
import type { ForkOptions } from 'node:child_process';

/** Throws, before anything is measured, unless every one of `cores` can be pinned to. */
export function checkCores(cores: Iterable<number>): void {
  for (const core of new Set(cores)) {
    if (spawnSync('taskset', ['-c', String(core), 'true']).status !== 0) {
      throw new Error(`Pinning a process to core ${core} needs taskset (util-linux) and that core: install util-linux, or leave the placement settings out.`);
    }
  }
}

/** Fork options that run the child's node on `core` (unpinned where undefined). */
export function onCore(core: number | undefined, execArgv: string[]): Pick<ForkOptions, 'execPath' | 'execArgv'> {
  if (core === undefined) return { execArgv };
  // fork runs execPath with execArgv before the module: taskset then execs node itself, which
  // keeps the process, and the IPC channel fork set up.
  return { execPath: 'taskset', execArgv: ['-c', String(core), process.execPath, ...execArgv] };
}
