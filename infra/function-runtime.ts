/**
 * The function's memory and the V8 heap limit it runs with. The stack deploys these (the
 * memory can be raised with `functionMemoryMb`) and the benchmark runs the exporter under
 * the same heap limit, so its memory figures are the deployed function's.
 */
export const MEMORY_MB = 1024;

/**
 * The most the function may be given: Lambda's own limit. More memory brings more CPU
 * (a whole vCPU at 1,769 MB), which is what curating a large fleet of large briefs lacks.
 */
export const MAX_MEMORY_MB = 10_240;

/**
 * What stays outside the V8 heap: upload parts, gzip and zlib's buffers, sockets, code.
 * The pages' and uploads' budgets are fixed in bytes, so this does not grow with the memory.
 */
const OUTSIDE_HEAP_MB = 128;

/**
 * V8's old-generation limit for a function of `memoryMb`, set rather than left to the
 * runtime's default. V8 sizes how far a heap may grow past its live data before a full
 * collection from this limit: on a host with gigabytes to spare it lets the heap reach
 * about 4x the live data, under this limit about 1.5x. The exporter's live data is small
 * (a million devices: about 70 MB, of which 20 MB is the de-duplication set), so the limit
 * keeps resident memory near it.
 */
export function heapMbFor(memoryMb: number): number {
  return memoryMb - OUTSIDE_HEAP_MB;
}

export function nodeOptionsFor(memoryMb: number): string {
  return `--enable-source-maps --max-old-space-size=${heapMbFor(memoryMb)}`;
}

/** The default function's heap limit: what the benchmarks run under. */
export const HEAP_MB = heapMbFor(MEMORY_MB);
