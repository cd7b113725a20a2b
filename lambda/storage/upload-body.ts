import { once } from 'node:events';
import type { Writable } from 'node:stream';

/**
 * Resolves once `body` (an upload's body) drains; rejects with the upload's error should
 * the upload fail first. A part S3 refused makes lib-storage stop reading and destroy the
 * body, whose own error ("The operation was aborted") comes first and says nothing of why:
 * the upload's error is the one thrown.
 */
export async function drained(body: Writable, done: Promise<unknown>): Promise<void> {
  try {
    await Promise.race([once(body, 'drain'), done.then(() => undefined)]);
  } catch (error) {
    await done;
    throw error;
  }
}
