import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { DEVICES_PATH, DeviceApi } from './device-api.ts';
import type { OffsetCap } from './device-list.ts';
import type { FleetChange } from './fleet-changes.ts';
import type { LiveFleet } from './fleet.ts';
import type { SimulatorOptions, SimulatorStats } from './simulator-options.ts';
import { TOKEN_PATH, TokenServer, type TokenServerOptions } from './token-server.ts';

export type { DeviceRequest, Fault, ListRequestRecord, LookupRequest, RateLimit, SimulatorOptions, SimulatorStats } from './simulator-options.ts';
export { LEGACY, RECENT_REQUESTS, SPEC_7_3 } from './simulator-options.ts';
export type { FleetChange, OffsetCap };
export { DEVICES_PATH, TOKEN_PATH };

export interface Platform {
  url: string;
  options: SimulatorOptions;
  stats: SimulatorStats;
  tokens: TokenServer;
  /** Back to the defaults overlaid with `options`, counters cleared, token faults off. */
  reset(options?: Partial<SimulatorOptions>): Platform;
  /** The fleet as it is now, to delete devices from or add devices to between runs. */
  fleet(): LiveFleet;
  /**
   * Renders every brief once, and builds the fleet's EUI order: from then on pages of any
   * mode, order or filter are put together from those bytes instead of rendered per request,
   * so the benchmark's platform costs next to nothing, and the same for every client.
   * Offset pages of `pageSize` in the default order are answered as if rendered now, once:
   * with the time of rendering as their `now`, while the fleet has not changed. Kept across
   * resets to the same fleet.
   */
  prerender(pageSize: number): void;
  close(): Promise<void>;
}

/**
 * The ThingPark platform on 127.0.0.1: the device list as docs/thingpark-api.md describes it
 * (offset and cursor paging, `sort`, the `devEUI` filter, Bearer tokens), the single-device
 * route (`.../devices/e{EUI}`, or `.../devices/{ref}` where briefs carry one) and the
 * Keycloak token endpoint on its documented path, on one host like the real thing. The fleet
 * can change while it is read (`changes`). Every behaviour a deployment may differ in is an
 * option; options can be changed while it runs.
 */
export async function startPlatform(options: Partial<SimulatorOptions> = {}, token: Partial<TokenServerOptions> = {}): Promise<Platform> {
  const server: Server = createServer();
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const tokens = new TokenServer(url, {
    clientId: 'demo-exporter',
    clientSecret: 'demo-secret-change-me',
    lifetimeSeconds: 300,
    ...token,
  });
  const devices = new DeviceApi(options, (bearer) => tokens.verify(bearer));
  // One host, like the real thing: the Keycloak token endpoint beside the device API.
  server.on('request', (req, res) => {
    if (req.url?.startsWith('/users-auth/')) tokens.handle(req, res);
    else devices.serve(req, res, url);
  });

  const platform: Platform = {
    url,
    options: devices.settings,
    stats: devices.stats,
    tokens,
    reset(overrides = {}) {
      devices.reset(overrides);
      Object.assign(tokens, { grants: 0, requests: 0, fault: undefined, lifetimeSeconds: token.lifetimeSeconds ?? 300 });
      return platform;
    },
    fleet: () => devices.live(),
    prerender: (pageSize) => devices.prerender(pageSize),
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
  return platform;
}
