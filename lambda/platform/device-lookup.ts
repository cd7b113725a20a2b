import { PlatformError } from '../common/errors.ts';
import { authorisedGet, devicesUrl, quote, type Answer, type Brief, type PageSource } from './devices-api.ts';

/**
 * Lookups wait behind every page in the window's queue: they only run once a sweep is
 * over, or during a second sweep that they must not hold up.
 */
const LOOKUP_PRIORITY = Number.MAX_SAFE_INTEGER;

/**
 * How the single-device route says a device is not there. Undocumented (see
 * docs/thingpark-api.md): 404 is expected, and a 400 "Device not found" is what a device of
 * another subscription gets, so it is read the same way. Any other 400 is still an error.
 */
function notFound(status: number, body: string): boolean {
  return status === 404 || (status === 400 && /device not found/i.test(body));
}

/**
 * Asks the platform for one device: `GET .../devices/{id}`, where `id` is the key a run
 * de-duplicates by (common/device-key.ts), a ref or `e` and the EUI, which is exactly how the
 * route addresses a device by its EUI. Resolves to the device as the platform sent it, or
 * undefined when the platform says it is not there. Through the same token, window, pacing,
 * retries and retry budget as every page.
 */
export function deviceFetcher(source: PageSource): (id: string, signal: AbortSignal) => Promise<Brief | undefined> {
  const root = devicesUrl(source);
  return (id, signal) =>
    source.retry(async (attemptSignal) => {
      const target = { priority: LOOKUP_PRIORITY, name: `device ${id}`, reads: notFound };
      const answer = await authorisedGet(source, `${root}/${encodeURIComponent(id)}`, target, attemptSignal);
      return answer.status === 200 ? parseDevice(target.name, answer) : undefined;
    }, signal);
}

/** A 200 must carry one JSON object; anything else is an error, never taken for "not found". */
function parseDevice(name: string, { body, contentType, token }: Answer): Brief {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    parsed = undefined;
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new PlatformError(`The device API answered ${name} with HTTP 200 but no device object: ${quote(body, contentType, token)}`);
  }
  return parsed as Brief;
}
