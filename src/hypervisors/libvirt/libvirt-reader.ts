/**
 * Reading a libvirt host's inventory through the client: the host itself,
 * domains (XML, state, stats), networks and storage pools. A domain whose XML
 * cannot be used is still reported (name, UUID, state from the RPC layer) with
 * the reason as a fact: one broken definition must not hide the host.
 */
import type { LibvirtClient } from '../../protocols/libvirt/libvirt-client.js';
import {
  connectGetCapabilities,
  connectGetHostname,
  connectGetLibVersion,
  connectGetType,
  connectGetVersion,
  nodeGetInfo,
} from '../../protocols/libvirt/procedures/connect.js';
import {
  DOMAIN_STATS,
  connectGetAllDomainStats,
  connectListAllDomains,
  domainGetState,
  domainGetXmlDesc,
} from '../../protocols/libvirt/procedures/domain.js';
import {
  LIST_NETWORKS,
  connectListAllNetworks,
  networkGetXmlDesc,
} from '../../protocols/libvirt/procedures/network.js';
import {
  POOL_STATE,
  connectListAllStoragePools,
  storagePoolGetInfo,
  storagePoolGetXmlDesc,
} from '../../protocols/libvirt/procedures/storage.js';
import type { DomainRef, TypedParam } from '../../protocols/libvirt/remote-types.js';
import { ZenithError } from '../../core/errors.js';
import type { DiscoveredObject, DiscoveredVm } from '../driver.js';
import { isNoDomainError } from '../../protocols/libvirt/remote-error.js';
import { parseDomainXml } from './domain-xml.js';
import { domainPower } from './domain-state.js';
import { parseCapabilitiesXml, parseNetworkXml, parsePoolXml } from './host-xml.js';
import { xmlInvalid } from './xml-reader.js';
import {
  datastoreObject,
  networkObject,
  versionText,
  vmObject,
  type DomainReading,
  type LibvirtHost,
} from './libvirt-inventory.js';

export async function readHost(
  client: LibvirtClient,
  options: { uri: string; hostName?: string },
): Promise<LibvirtHost> {
  const [type, version, libVersion, hostname, node, caps] = await Promise.all([
    client.call(connectGetType, undefined),
    client.call(connectGetVersion, undefined),
    client.call(connectGetLibVersion, undefined),
    client.call(connectGetHostname, undefined),
    client.call(nodeGetInfo, undefined),
    client.call(connectGetCapabilities, undefined),
  ]);
  const capabilities = parseCapabilitiesXml(caps.capabilities);
  const name = options.hostName ?? hostname.hostname;
  return {
    // The host UUID when the daemon has one (libvirt's test driver has none).
    externalId: capabilities.uuid ?? `host:${hostname.hostname}`,
    name,
    driver: type.type.toLowerCase(),
    uri: options.uri,
    hypervisorVersion: versionText(version.hv_ver),
    libvirtVersion: versionText(libVersion.lib_ver),
    node: {
      model: node.model,
      memoryKiB: node.memory,
      cpus: node.cpus,
      mhz: node.mhz,
      nodes: node.nodes,
      sockets: node.sockets,
      cores: node.cores,
      threads: node.threads,
    },
    capabilities,
  };
}

/** Balloon and block statistics by domain UUID (all domains when `doms` is empty); none where unsupported. */
export async function readDomainStats(
  client: LibvirtClient,
  doms: DomainRef[],
): Promise<Map<string, readonly TypedParam[]>> {
  const byUuid = new Map<string, readonly TypedParam[]>();
  try {
    const { retStats } = await client.call(connectGetAllDomainStats, {
      doms,
      stats: DOMAIN_STATS.balloon | DOMAIN_STATS.block,
      flags: 0,
    });
    for (const entry of retStats) byUuid.set(entry.dom.uuid, entry.params);
  } catch {
    // Statistics are a bonus: a driver without them still reports its domains.
  }
  return byUuid;
}

export async function readDomain(
  client: LibvirtClient,
  dom: DomainRef,
  stats: readonly TypedParam[] = [],
): Promise<DomainReading> {
  const [{ xml }, state] = await Promise.all([
    client.call(domainGetXmlDesc, { dom, flags: 0 }),
    client.call(domainGetState, { dom, flags: 0 }),
  ]);
  let description: DomainReading['description'] = null;
  let descriptionError: string | null = null;
  try {
    const parsed = parseDomainXml(xml);
    if (parsed.uuid !== dom.uuid)
      throw xmlInvalid('a domain description', 'its <uuid> is not the UUID of the domain');
    description = parsed;
  } catch (error) {
    descriptionError = error instanceof ZenithError ? error.message : String(error);
  }
  return {
    description,
    descriptionError,
    name: dom.name,
    uuid: dom.uuid,
    id: dom.id,
    power: domainPower(state.state, state.reason),
    stats,
  };
}

/** Runs `work` over `items` with at most `limit` at a time (libvirtd serves a few calls per client at once). */
export async function mapLimit<T, R>(
  items: readonly T[],
  limit: number,
  work: (item: T) => Promise<R>,
): Promise<R[]> {
  const results: R[] = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const index = next++;
      results[index] = await work(items[index]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

/** Every domain as a VM, but those `skip` names (held back during a migration). */
export async function readVms(
  client: LibvirtClient,
  host: LibvirtHost,
  skip: (uuid: string) => boolean,
): Promise<DiscoveredVm[]> {
  const { domains } = await client.call(connectListAllDomains, { need_results: 1, flags: 0 });
  const stats = await readDomainStats(client, []);
  const vms = await mapLimit(
    domains.filter((dom) => !skip(dom.uuid)),
    8,
    async (dom) => {
      try {
        return vmObject(host, await readDomain(client, dom, stats.get(dom.uuid)));
      } catch (error) {
        if (isNoDomainError(error)) return null; // gone between the list and the read
        throw error;
      }
    },
  );
  return vms.filter((vm): vm is DiscoveredVm => vm !== null);
}

export async function readNetworks(
  client: LibvirtClient,
  host: LibvirtHost,
): Promise<DiscoveredObject[]> {
  const [all, active] = await Promise.all([
    client.call(connectListAllNetworks, { need_results: 1, flags: 0 }),
    client.call(connectListAllNetworks, { need_results: 1, flags: LIST_NETWORKS.active }),
  ]);
  const activeUuids = new Set(active.nets.map((n) => n.uuid));
  const objects = await mapLimit(all.nets, 4, async (net) => {
    const { xml } = await client.call(networkGetXmlDesc, { net, flags: 0 });
    return skipInvalid(() => networkObject(host, parseNetworkXml(xml), activeUuids.has(net.uuid)));
  });
  return objects.filter((o): o is DiscoveredObject => o !== null);
}

export async function readPools(
  client: LibvirtClient,
  host: LibvirtHost,
): Promise<DiscoveredObject[]> {
  const { pools } = await client.call(connectListAllStoragePools, { need_results: 1, flags: 0 });
  const objects = await mapLimit(pools, 4, async (pool) => {
    const [{ xml }, info] = await Promise.all([
      client.call(storagePoolGetXmlDesc, { pool, flags: 0 }),
      client.call(storagePoolGetInfo, { pool }),
    ]);
    const active = info.state === POOL_STATE.running || info.state === POOL_STATE.degraded;
    // Live figures from the pool itself; the XML's are those of its last refresh.
    return skipInvalid(() =>
      datastoreObject(
        host,
        {
          ...parsePoolXml(xml),
          capacityBytes: info.capacity,
          allocationBytes: info.allocation,
          availableBytes: info.available,
        },
        active,
      ),
    );
  });
  return objects.filter((o): o is DiscoveredObject => o !== null);
}

/** A network or pool whose description cannot be used is left out (it has no state to lose). */
function skipInvalid(build: () => DiscoveredObject): DiscoveredObject | null {
  try {
    return build();
  } catch (error) {
    if (error instanceof ZenithError && error.code === 'LIBVIRT_XML_INVALID') return null;
    throw error;
  }
}
