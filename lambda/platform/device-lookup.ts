import { deviceKey } from '../common/device-key.ts';
import { DeviceIdError, MalformedPageError, PlatformError } from '../common/errors.ts';
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
 * What the single-device route takes as `{deviceUid}` (the spec's pattern, bounded): a ref
 * of decimal digits, or `e` and an upper-case EUI. Nothing else is sent: `.` or `..` would
 * make the URL another route's, called with the bearer token.
 */
const DEVICE_UID = /^(?:\d{1,32}|e[0-9A-F]{1,32})$/;

/**
 * Asks the platform for one device: `GET .../devices/{id}`, where `id` is the key a run
 * de-duplicates by (common/device-key.ts), a ref or `e` and the EUI, which is exactly how the
 * route addresses a device by its EUI. Resolves to the device as the platform sent it, or
 * undefined when the platform says it is not there. Through the same token, window, pacing,
 * retries and retry budget as every page.
 */
export function deviceFetcher(source: PageSource): (id: string, signal: AbortSignal) => Promise<Brief | undefined> {
  const root = devicesUrl(source);
  return (id, signal) => {
    if (!DEVICE_UID.test(id)) {
      return Promise.reject(
        new DeviceIdError(
          `Device ${JSON.stringify(id.slice(0, 64))} cannot be looked up: not a ref of digits nor "e" and an EUI in hex; nothing was requested.`,
        ),
      );
    }
    return source.retry(async (attemptSignal) => {
      const target = { priority: LOOKUP_PRIORITY, name: `device ${id}`, reads: notFound };
      const answer = await authorisedGet(source, `${root}/${id}`, target, attemptSignal);
      return answer.status === 200 ? checkedDevice(id, parseDevice(target.name, answer), answer) : undefined;
    }, signal);
  };
}

/** The device answered must be the one asked for: its EUI for `e` + EUI, its ref for a ref. */
function checkedDevice(id: string, brief: Brief, { body, contentType, token }: Answer): Brief {
  const { ref, EUI } = brief;
  const answered = id.startsWith('e') ? (typeof EUI === 'string' ? `e${EUI.toUpperCase()}` : undefined) : String(deviceKey({ ref }) ?? '');
  if (answered === id) return brief;
  const named = answered ? `device ${answered}` : 'no device id';
  throw new MalformedPageError(`the answer for device ${id}`, `it names ${named}, not the device asked for`, quote(body, contentType, token));
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
