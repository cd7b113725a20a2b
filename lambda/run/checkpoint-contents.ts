import { EventError } from '../common/errors.ts';
import { checkpointKeys, isAttempt, parseDataKey, parseIndexKey } from '../storage/layout.ts';
import type { Checkpoint } from './checkpoint.ts';

/**
 * Refuses a checkpoint whose contents name anything but its own run's objects under this
 * function's prefix. Its SHA-256 only shows that the bytes are the ones a continuation was
 * given for: anyone who may write to `checkpoints/` can write another checkpoint and its
 * hash. So every key a resume or an abandon reads, refreshes or deletes is checked here
 * against layout.ts before it is used: the invocations' attempts, the data files (numbered
 * in order, each named by one of those attempts), the key sets (this attempt's) and the
 * previous run's key index.
 */
export function checkContents(checkpoint: Checkpoint, prefix: string): void {
  const problems = [...sliceProblems(checkpoint), ...fileProblems(checkpoint, prefix), ...keySetProblems(checkpoint, prefix)];
  if (problems.length > 0) {
    throw new EventError(`The checkpoint of run ${checkpoint.runId}, attempt ${checkpoint.attempt}, is not one this function saves: ${problems.join('; ')}.`);
  }
}

function sliceProblems({ slices, attempt, startedAt }: Checkpoint): string[] {
  if (!Array.isArray(slices) || slices.length === 0) return ['"slices" must list at least one invocation'];
  const problems: string[] = [];
  const bad = slices.findIndex((slice) => !isAttempt((slice as Partial<Checkpoint['slices'][number]> | null)?.attempt));
  if (bad >= 0) problems.push(`"slices[${bad}].attempt" must be 1 to 32 lower-case letters and digits`);
  if (slices.at(-1)?.attempt !== attempt) problems.push('the last of "slices" must be the attempt that saved it');
  if (typeof startedAt !== 'string' || Number.isNaN(Date.parse(startedAt))) problems.push('"startedAt" must be a time');
  return problems;
}

function fileProblems({ files, slices, runId }: Checkpoint, prefix: string): string[] {
  if (!Array.isArray(files)) return ['"files" must be a list'];
  const attempts = new Set(Array.isArray(slices) ? slices.map((slice) => slice?.attempt) : []);
  const bad = files.findIndex((file, index) => {
    const parsed = typeof file?.key === 'string' ? parseDataKey(prefix, runId, file.key) : undefined;
    return !parsed || parsed.fileIndex !== index || !attempts.has(parsed.attempt);
  });
  return bad < 0 ? [] : [`"files[${bad}].key" must be data file ${bad} of run ${runId} under "${prefix}", written by one of its invocations`];
}

function keySetProblems({ seen, lookups, previous, runId, attempt }: Checkpoint, prefix: string): string[] {
  const own = checkpointKeys(prefix, runId, attempt);
  const problems: string[] = [];
  if (seen?.key !== own.seen) problems.push(`"seen.key" must be "${own.seen}"`);
  if (lookups !== undefined && lookups?.key !== own.lookups) problems.push(`"lookups.key" must be "${own.lookups}"`);
  const indexKey = previous?.indexKey;
  if (indexKey !== undefined) {
    const parsed = typeof indexKey === 'string' ? parseIndexKey(prefix, indexKey) : undefined;
    if (!parsed || parsed.runId !== previous.runId) problems.push(`"previous.indexKey" must be a key index of run ${String(previous.runId)} under "${prefix}"`);
  }
  return problems;
}
