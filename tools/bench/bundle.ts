import { resolve } from 'node:path';
import { build } from 'esbuild';

/**
 * A benchmark child bundled by esbuild, as the Lambda runs its bundle: peak RSS then
 * measures the program, not tsx's TypeScript loader (~60 MB of its own).
 */
export async function bundleChild(entry: string, name: string): Promise<string> {
  const outfile = resolve('.bench', `${name}.mjs`);
  await build({
    entryPoints: [resolve(entry)],
    outfile,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    banner: { js: "import { createRequire as __createRequire } from 'node:module'; const require = __createRequire(import.meta.url);" },
    logLevel: 'error',
  });
  return outfile;
}
