import { spawn } from 'node:child_process';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { VARIABLE_FAMILIES } from '../../lambda/common/env.ts';

export const ROOT = resolve(fileURLToPath(import.meta.url), '../../..');
export const TSX = join(ROOT, 'node_modules', '.bin', 'tsx');

/** Name families a user's shell might hold that would change what a tool does: the exporter's own, and those of the libraries and tools. */
const SCRUBBED = [...VARIABLE_FAMILIES.map((family) => new RegExp(`^${family}`, 'i')), /^POWERTOOLS_/, /^AWS_/, /^DEMO_/];

export interface ToolRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * A tool run as a user runs it, in a process of its own: the test process's environment
 * without anything of ours or of AWS (including the variable the tests set to silence the
 * SDK's Node notice, so that the tool is seen to silence it itself), plus `env`.
 */
export function runTool(command: string, args: string[], options: { cwd: string; env: Record<string, string>; timeoutMs?: number }): Promise<ToolRun> {
  const env: Record<string, string> = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (value !== undefined && !SCRUBBED.some((pattern) => pattern.test(name))) env[name] = value;
  }
  return new Promise((resolvePromise, reject) => {
    const child = spawn(command, args, { cwd: options.cwd, env: { ...env, ...options.env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 50_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolvePromise({ code, stdout, stderr });
    });
  });
}
