import { LEGACY, type SimulatorOptions } from '../../tools/stand-ins/simulator.ts';

/**
 * A deployment without cursor mode, whose pages start at 0, and the exporter told so: the
 * offset path exactly, with no probe of the platform first. The fault, live-fleet,
 * concurrency and curation tests were written for offset paging, by page index (a fault
 * on page 3, a change after page 10); they keep testing that path, which is still how a
 * run reads such a platform. Cursor mode, the spec's, has tests of its own
 * (test/integration/paging-modes.test.ts, test/unit/cursor-sweep.test.ts).
 */
export const OFFSET_PLATFORM: Partial<SimulatorOptions> = { ...LEGACY, cursorMode: false };
export const OFFSET_ENV: Readonly<Record<string, string>> = { THINGPARK_PAGING: 'offset', THINGPARK_FIRST_PAGE_INDEX: '0' };
