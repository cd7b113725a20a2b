import { describe, expect, it } from 'vitest';
import { TokenCache, type Grant } from '../../lambda/auth/token-cache.ts';

/** A grant function that issues numbered tokens with a given lifetime, on a fake clock. */
function setup(expiresIn: number | undefined, marginSeconds = 60) {
  const clock = { now: 0 };
  let issued = 0;
  const grant = async (): Promise<Grant> => ({ accessToken: `token-${++issued}`, expiresIn });
  const cache = new TokenCache(grant, marginSeconds, () => clock.now);
  return { cache, clock };
}

describe('TokenCache', () => {
  it('reuses a token until its remaining lifetime drops under the margin', async () => {
    const { cache, clock } = setup(300);
    expect(await cache.get()).toBe('token-1');
    clock.now = 238_000; // 299 s usable - 60 s margin = renew at 239 s
    expect(await cache.get()).toBe('token-1');
    clock.now = 239_000;
    expect(await cache.get()).toBe('token-2');
    expect(cache.grants).toBe(2);
  });

  it('uses a token that lives shorter than the margin for half its life', async () => {
    const { cache, clock } = setup(10);
    await cache.get();
    clock.now = 4_400; // 9 s usable, renewed at 4.5 s
    expect(await cache.get()).toBe('token-1');
    clock.now = 4_500;
    expect(await cache.get()).toBe('token-2');
  });

  it('shares one grant between concurrent callers', async () => {
    const { cache } = setup(300);
    const tokens = await Promise.all(Array.from({ length: 20 }, () => cache.get()));
    expect(new Set(tokens)).toEqual(new Set(['token-1']));
    expect(cache.grants).toBe(1);
  });

  it('drops a refused token once, not a newer one', async () => {
    const { cache } = setup(300);
    const refused = await cache.get();
    cache.invalidate(refused);
    const fresh = await cache.get();
    cache.invalidate(refused); // a late 401 for the old token must not cost another grant
    expect(await cache.get()).toBe(fresh);
    expect(cache.grants).toBe(2);
  });

  it('keeps a token with no stated lifetime until the platform refuses it', async () => {
    const { cache, clock } = setup(undefined);
    await cache.get();
    clock.now = 1e12;
    expect(await cache.get()).toBe('token-1');
  });

  it('lets a failed grant fail its callers and tries again on the next call', async () => {
    let calls = 0;
    const cache = new TokenCache(async () => {
      calls += 1;
      if (calls === 1) throw new Error('token endpoint down');
      return { accessToken: 'ok', expiresIn: 300 };
    }, 60);
    await expect(Promise.all([cache.get(), cache.get()])).rejects.toThrow('token endpoint down');
    expect(await cache.get()).toBe('ok');
    expect(calls).toBe(2);
  });
});
