/**
 * Credentials across config nodes: PSK and raw-public-key accounts a bootstrap configuration hands out are put in the
 * security store of the lwm2m-server node (of this Node-RED) whose DTLS port the account's
 * coaps:// URI names, so they are typed once. Keys stay in the stores: nothing here logs them.
 */
import type { Lwm2mServer } from '../../lwm2m/server';
import { DeviceAccount, serverCredentialOf } from '../../lwm2m/server/bootstrap-config';

const running = new Set<Lwm2mServer>();

export function serverStarted(server: Lwm2mServer): void {
  running.add(server);
}

export function serverStopped(server: Lwm2mServer): void {
  running.delete(server);
}

/** Puts a bootstrapped device's server credentials where that server looks for them; false when no server here takes them. */
export function acceptBootstrapCredentials(endpoint: string, account: DeviceAccount): boolean {
  const m = /^coaps:\/\/(?:\[[^\]]+\]|[^:/]+)(?::(\d+))?/.exec(account.uri);
  const entry = serverCredentialOf(endpoint, account);
  if (!m || !entry) return false;
  const port = m[1] ? Number(m[1]) : 5684;
  let taken = false;
  for (const server of running) {
    if (!server.secureTransport?.listening || server.secureAddress().port !== port) continue;
    server.security.set(entry);
    taken = true;
  }
  return taken;
}
