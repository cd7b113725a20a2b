import { afterAll, afterEach, beforeEach } from 'vitest';

/**
 * What a passing test writes to stdout and stderr is noise on a green run: the function's
 * log lines (Powertools writes them to process.stdout and process.stderr itself, past
 * vitest's console capture), CDK's "Bundling asset" and esbuild's lines while a synth
 * bundles the function, a stand-in's own lines. Each test's writes are held and printed
 * only if it fails; writes outside a test (a file's beforeAll or afterAll, an answer that
 * arrives after its test) only if a test of the file failed. A test about what is printed
 * captures it itself (captureOutput, runTool), before it reaches these streams.
 */
type Write = [stream: NodeJS.WriteStream, chunk: string | Uint8Array];

const streams: NodeJS.WriteStream[] = [process.stdout, process.stderr];
const writers = new Map(streams.map((stream) => [stream, stream.write.bind(stream)]));
const outsideTests: Write[] = [];
let held = outsideTests;
let failed = false;

for (const stream of streams) {
  stream.write = (chunk: string | Uint8Array, ...rest: unknown[]) => {
    held.push([stream, chunk]);
    (rest.find((arg) => typeof arg === 'function') as (() => void) | undefined)?.();
    return true;
  };
}

function print(writes: Write[]): void {
  for (const [stream, chunk] of writes.splice(0)) writers.get(stream)?.(chunk);
}

beforeEach(({ onTestFailed }) => {
  const mine: Write[] = [];
  held = mine;
  onTestFailed(() => {
    failed = true;
    print(mine);
  });
});

afterEach(() => {
  held = outsideTests;
});

afterAll(() => {
  if (failed) print(outsideTests);
  outsideTests.length = 0;
});
