import { beforeAll, describe, expect, it } from 'vitest';
import type { Fault } from '../../tools/stand-ins/simulator.ts';
import { exporter, freshPrefix, invokeFailing, invokeOk, objects, reset, useHarness } from './harness.ts';

const h = useHarness();
let prefix: string;
let before: Record<string, string>;
let deliveries = 0;

beforeAll(async () => {
  // One committed run; every malformed run below must leave it exactly as it is.
  prefix = freshPrefix();
  await reset(h);
  await invokeOk(h, await exporter(h, prefix), { scheduledTime: '2024-01-01T00:00:00Z' });
  before = await objects(h, prefix);
});

/** A later schedule each time, so each failed run would have moved the pointer had it committed. */
function nextSchedule() {
  deliveries += 1;
  return { scheduledTime: new Date(Date.UTC(2024, 1, deliveries)).toISOString() };
}

const proxyPage = `<!DOCTYPE html><html><head><title>Service unavailable</title></head><body>${'<p>The upstream server is not responding. Please try again later.</p>'.repeat(150)}</body></html>`;

describe('malformed answers', () => {
  const cases: [string, Fault, RegExp][] = [
    ['a body that is not JSON', { status: 200, body: 'garbage{"briefs":' }, /not JSON \(content-type "application\/json"\)/],
    ['an empty body', { status: 200, body: '' }, /not JSON/],
    ['an object without "briefs"', { status: 200, body: '{"more":false,"now":1790000000000}' }, /"briefs" is missing or not an array/],
    ['"briefs" of the wrong type', { status: 200, body: '{"briefs":{"0":{"ref":"1"}},"more":true}' }, /"briefs" is missing or not an array/],
    ['a brief that is not an object', { status: 200, body: '{"briefs":[{"ref":"1"},42],"more":true}' }, /a brief is not an object/],
    ['"more" of the wrong type', { status: 200, body: '{"briefs":[],"more":"no"}' }, /"more" is not a boolean/],
    ['a bare array (the legacy DX API shape)', { status: 200, body: '[{"ref":"1"}]' }, /expected an object with "briefs"/],
    ['JSON null', { status: 200, body: 'null' }, /expected an object with "briefs"/],
    [
      'an HTML error page from a proxy with status 200',
      { status: 200, headers: { 'content-type': 'text/html; charset=utf-8' }, body: proxyPage },
      /not JSON \(content-type "text\/html; charset=utf-8"\)/,
    ],
  ];

  it.each(cases)('%s: MalformedPageError naming the page with a short excerpt; not retried; nothing published', async (_name, fault, problem) => {
    const sim = await reset(h, { fleet: 500, fault: ({ pageIndex }) => (pageIndex === 2 ? fault : undefined) });
    const handler = await exporter(h, prefix);
    const error = await invokeFailing(h, handler, nextSchedule());
    expect(error).toMatchObject({ name: 'MalformedPageError', code: 'PAGE_MALFORMED', pageIndex: 2 });
    expect(error.message).toMatch(/^Page 2 is malformed: /);
    expect(error.message).toMatch(problem);
    const excerpt = JSON.parse(/Body starts with: (".*")$/.exec(error.message)?.[1] ?? 'null') as string;
    expect(excerpt.length).toBeLessThanOrEqual(120);
    expect((fault.body ?? '').replace(/\s+/g, ' ').slice(0, excerpt.length)).toBe(excerpt);
    expect(error.message.length).toBeLessThan(400);
    expect(sim.stats.byPage.get(2)).toBe(1);
    expect(await objects(h, prefix)).toEqual(before);
  });

  it('an HTML error page from a proxy with status 502: retried, then PlatformError naming the page and describing the body; nothing published', async () => {
    const sim = await reset(h, {
      fleet: 500,
      fault: ({ pageIndex }) => (pageIndex === 2 ? { status: 502, headers: { 'content-type': 'text/html' }, body: proxyPage } : undefined),
    });
    const handler = await exporter(h, prefix, { THINGPARK_MAX_RETRIES: '1' });
    const error = await invokeFailing(h, handler, nextSchedule());
    expect(error).toMatchObject({ name: 'PlatformError', status: 502 });
    // An HTML page is described, never quoted: a proxy's page may echo the request's headers.
    expect(error.message).toContain(`page 2: HTTP 502 (text/html, ${proxyPage.length} characters, not quoted)`);
    expect(error.message).not.toContain('<');
    expect(error.message.length).toBeLessThan(400);
    expect(sim.stats.byPage.get(2)).toBe(2);
    expect(await objects(h, prefix)).toEqual(before);
  });

  it('a JSON error body with status 200 ({code, message}) is malformed, not an empty page', async () => {
    await reset(h, {
      fleet: 500,
      fault: ({ pageIndex }) => (pageIndex === 2 ? { status: 200, body: '{"code":500,"message":"Internal error","errorId":"abc"}' } : undefined),
    });
    const handler = await exporter(h, prefix);
    const error = await invokeFailing(h, handler, nextSchedule());
    expect(error.name).toBe('MalformedPageError');
    expect(error.message).toContain('"errorId');
    expect(await objects(h, prefix)).toEqual(before);
  });
});
