/**
 * The process that hosts the benchmark's stand-ins (see stand-ins.ts): started by the
 * parent with BENCH_STAND_INS set, it says it is ready with the stand-ins' environment,
 * then answers the parent's requests one by one.
 */
import diagnostics from 'node:diagnostics_channel';
import type { Socket } from 'node:net';
import { startStandIns } from '../stand-ins/standins.ts';
import type { BenchStandInsOptions, Ready, Request, StandInCounts } from './stand-ins.ts';

const options = JSON.parse(process.env.BENCH_STAND_INS ?? '{}') as BenchStandInsOptions;
const standIns = await startStandIns({ simulator: options.simulator });
const { platform } = standIns;
if (options.prerender) platform.prerender(options.prerender);
const port = Number(new URL(platform.url).port);

// Connections the simulator accepted, to check that clients keep them alive.
let connections = 0;
diagnostics.subscribe('net.server.socket', (message) => {
  if ((message as { socket: Socket }).socket.localPort === port) connections += 1;
});
let cpuFrom = process.cpuUsage();

function clear(): void {
  const { stats, tokens } = platform;
  Object.assign(stats, { requests: 0, rejected: 0, unauthorized: 0, maxInFlight: 0, firstAt: 0, lastAt: 0, lookups: 0, removed: [] });
  stats.byPage.clear();
  tokens.grants = 0;
  connections = 0;
  cpuFrom = process.cpuUsage();
}

function counts(): StandInCounts {
  const { stats, tokens } = platform;
  const cpu = process.cpuUsage(cpuFrom);
  return {
    requests: stats.requests,
    rejected: stats.rejected,
    grants: tokens.grants,
    maxInFlight: stats.maxInFlight,
    connections,
    firstAt: stats.firstAt,
    lastAt: stats.lastAt,
    cpuMs: (cpu.user + cpu.system) / 1000,
    lookups: stats.lookups,
    removed: stats.removed.map((brief) => String(brief.EUI)),
  };
}

process.on('message', (message: Request) => {
  const answer = (value?: unknown) => process.send?.({ value });
  try {
    if (message.op === 'reset') {
      platform.reset(message.options.simulator);
      if (message.options.prerender) platform.prerender(message.options.prerender);
      clear();
      answer();
    } else if (message.op === 'clear') {
      clear();
      answer();
    } else if (message.op === 'counts') {
      answer(counts());
    } else {
      void standIns.stop().then(() => process.send?.({ value: undefined }, () => process.exit(0)));
    }
  } catch (error) {
    process.send?.({ error: error instanceof Error ? error.message : String(error) });
  }
});

const ready: Ready = { env: standIns.env, s3Url: standIns.s3Url };
process.send?.(ready);
