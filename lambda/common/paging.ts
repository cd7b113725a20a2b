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
