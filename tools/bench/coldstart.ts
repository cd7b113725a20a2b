import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { gzipSync } from 'node:zlib';
import { readFile } from 'node:fs/promises';
import { build } from 'esbuild';

const run = promisify(execFile);

export interface ColdStart {
  variant: string;
  bytes: number;
  gzipBytes: number;
  /** Median of `runs` fresh processes: time of `await import(bundle)`. */
  importMs: number;
  importRuns: number[];
  /** Peak RSS of the process that imported the bundle. */
  rssMb: number;
}

// What NodejsFunction's ESM output needs: CommonJS dependencies call require().
const BANNER = "import { createRequire as __createRequire } from 'node:module'; const require = __createRequire(import.meta.url);";

/**
 * Bundles lambda/handler.ts as a deployment would (esbuild, node, ESM, node22, minified,
 * with the createRequire banner) and times its module load in fresh processes. Two
 * variants: everything bundled (bundleAwsSDK: true), and @aws-sdk/* left to the runtime
 * (CDK's default on Node 18+). The second lives under the repository so that the SDK
 * resolves from node_modules as it would from the runtime's own copy.
 */
export async function coldStart(runs = 5): Promise<ColdStart[]> {
  const results: ColdStart[] = [];
  const outside = await mkdtemp(join(tmpdir(), 'bench-bundle-'));
  await mkdir(resolve('.bench'), { recursive: true });
  const inside = await mkdtemp(resolve('.bench', 'bundle-'));
  try {
    for (const [variant, directory, external] of [
      ['all bundled', outside, [] as string[]],
      ['@aws-sdk/* external', inside, ['@aws-sdk/*']],
    ] as const) {
      const outfile = join(directory, 'handler.mjs');
      await build({
        entryPoints: [resolve('lambda/handler.ts')],
        outfile,
        bundle: true,
        minify: true,
        platform: 'node',
        format: 'esm',
        target: 'node22',
        external: [...external],
        banner: { js: BANNER },
        logLevel: 'error',
      });
      const bytes = (await stat(outfile)).size;
      const gzipBytes = gzipSync(await readFile(outfile)).length;
      const importRuns: number[] = [];
      let rssMb = 0;
      for (let i = 0; i < runs; i += 1) {
        const script =
          'const t = performance.now(); await import(process.argv[1]); const ms = performance.now() - t;' +
          'console.log(JSON.stringify({ ms, rss: process.resourceUsage().maxRSS / 1024 }));';
        const { stdout } = await run(process.execPath, ['--input-type=module', '-e', script, outfile], {
          env: { ...process.env, POWERTOOLS_METRICS_DISABLED: 'true', NODE_OPTIONS: '' },
        });
        const { ms, rss } = JSON.parse(stdout.trim().split('\n').pop() as string) as { ms: number; rss: number };
        importRuns.push(ms);
        rssMb = Math.max(rssMb, rss);
      }
      const sorted = [...importRuns].sort((a, b) => a - b);
      results.push({ variant, bytes, gzipBytes, importMs: sorted[Math.floor(sorted.length / 2)] as number, importRuns, rssMb });
    }
  } finally {
    await rm(outside, { recursive: true, force: true });
    await rm(inside, { recursive: true, force: true });
  }
  return results;
}
