/**
 * The function's memory and the V8 heap limit it runs with. The stack deploys these and
 * the benchmark runs the exporter under the same heap limit, so its memory figures are
 * the deployed function's.
 */
export const MEMORY_MB = 1024;

/**
 * V8's old-generation limit, set rather than left to the runtime's default. V8 sizes how
 * far a heap may grow past its live data before a full collection from this limit: on a
 * host with gigabytes to spare it lets the heap reach about 4x the live data, under this
 * limit about 1.5x. The exporter's live data is small (a million devices: about 70 MB, of
 * which 20 MB is the de-duplication set), so the limit keeps resident memory near it,
 * and the 128 MB outside the heap holds upload parts, gzip and sockets.
 */
export const HEAP_MB = 896;

export const NODE_OPTIONS = `--enable-source-maps --max-old-space-size=${HEAP_MB}`;
