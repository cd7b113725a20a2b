import { ErrorCode, RunLimitError } from './errors.ts';

/**
 * How a run read the device list, as its summary, manifest and metrics say it: the
 * platform reader decides, storage records it.
 *
 * - `cursor`: cursor mode (`sort=EUI` + `pageAfter`), which the spec says skips no device,
 *   over disjoint EUI ranges read at once;
 * - `offset`: numbered pages, on a platform without cursor mode or where THINGPARK_PAGING
 *   asks for it, verified against the previous run (offsets skip devices when the list
 *   changes under them).
 */
export type Paging = 'cursor' | 'offset';

/**
 * Why a cursor read gave up its ranges for one unfiltered sweep: a brief outside its
 * range's prefix (the platform ignored the filter), EUIs out of the order asked for, a
 * range that ended short of its count, or ranges that add up to less than the fleet's count.
 */
export type Fallback = 'filter-ignored' | 'order-broken' | 'range-short' | 'fleet-short';

/**
 * Fails the run (RUN_PAGE_LIMIT) when `page` is past the most pages a read of `count`
 * devices may take: the count's pages, and a margin for a list that grows while it is read
 * (the count is the largest the platform gave) and for a list whose first page is 1. A
 * platform that repeats its last page forever, or never says `more: false`, goes past it,
 * and the run fails instead of paging on until its time runs out. `sent` says which page
 * was sent while the platform counted how many devices where (given as "N devices").
 */
export function checkPageCeiling(page: number, count: number, pageSize: number, sent: (devices: string) => string): void {
  const pages = Math.ceil(count / Math.max(1, pageSize));
  const margin = Math.max(PAGE_MARGIN, Math.ceil(pages / 10));
  if (page <= pages + margin) return;
  throw new RunLimitError(
    ErrorCode.RUN_PAGE_LIMIT,
    `${sent(`${count} devices`)} (${pages} pages of ${pageSize}, and a margin of ${margin}): ` +
      'the platform is not ending its list (a page repeated, or `more` always true), and the run is not committed.',
  );
}

/** Pages past the count's a read may take at least, for a fleet that grows while it is read. */
const PAGE_MARGIN = 10;
