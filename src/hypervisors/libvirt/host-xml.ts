/** What Zenith reads from a host's capabilities and from network and storage pool descriptions. */
import {
  attr,
  child,
  childText,
  children,
  parseXml,
  sizeBytes,
  wholeNumber,
  xmlInvalid,
} from './xml-reader.js';

export interface HostCapabilities {
  uuid: string | null;
  arch: string | null;
  cpuModel: string | null;
  cpuVendor: string | null;
  /** Domain types the host can run for its own architecture: kvm, qemu, test, lxc … */
  domainTypes: string[];
  /** Guest OS types: hvm, xen, exe … */
  osTypes: string[];
}

export function parseCapabilitiesXml(xml: string): HostCapabilities {
  const capabilities = parseXml(xml, 'capabilities', 'the host capabilities');
  const host = child(capabilities, 'host');
  const cpu = child(host, 'cpu');
  const arch = childText(cpu, 'arch') ?? null;
  const guests = children(capabilities, 'guest');
  const domainTypes = new Set<string>();
  const osTypes = new Set<string>();
  for (const guest of guests) {
    const osType = childText(guest, 'os_type');
    if (osType) osTypes.add(osType);
    for (const guestArch of children(guest, 'arch')) {
      // Types for the host's own architecture are what a new VM gets; others are emulation only.
      if (arch && attr(guestArch, 'name') !== arch) continue;
      for (const domain of children(guestArch, 'domain')) {
        const type = attr(domain, 'type');
        if (type) domainTypes.add(type);
      }
    }
  }
  const uuid = childText(host, 'uuid');
  return {
    uuid: uuid && /^[0-9a-f-]{32,36}$/i.test(uuid) ? uuid.toLowerCase() : null,
    arch,
    cpuModel: childText(cpu, 'model') ?? null,
    cpuVendor: childText(cpu, 'vendor') ?? null,
    domainTypes: [...domainTypes].sort(),
    osTypes: [...osTypes].sort(),
  };
}

export interface NetworkDescription {
  name: string;
  uuid: string;
  forwardMode: string | null;
  bridge: string | null;
  /** address/prefix of each IPv4 or IPv6 range, e.g. 192.168.122.1/24 */
  addresses: string[];
}

function prefixOfNetmask(netmask: string): number | undefined {
  const parts = netmask.split('.').map(Number);
  if (parts.length !== 4 || parts.some((p) => !Number.isInteger(p) || p < 0 || p > 255))
    return undefined;
  return parts.reduce((bits, p) => bits + p.toString(2).replaceAll('0', '').length, 0);
}

export function parseNetworkXml(xml: string): NetworkDescription {
  const network = parseXml(xml, 'network', 'a network description');
  const name = childText(network, 'name');
  const uuid = childText(network, 'uuid');
  if (!name || !uuid) throw xmlInvalid('a network description', 'no <name> or <uuid>');
  const addresses: string[] = [];
  for (const ip of children(network, 'ip')) {
    const address = attr(ip, 'address');
    if (!address) continue;
    const prefix = wholeNumber(attr(ip, 'prefix')) ?? prefixOfNetmask(attr(ip, 'netmask') ?? '');
    addresses.push(prefix === undefined ? address : `${address}/${prefix}`);
  }
  return {
    name,
    uuid: uuid.toLowerCase(),
    forwardMode: attr(child(network, 'forward'), 'mode') ?? null,
    bridge: attr(child(network, 'bridge'), 'name') ?? null,
    addresses,
  };
}

export interface PoolDescription {
  name: string;
  uuid: string;
  /** dir, fs, logical, iscsi, rbd … */
  type: string;
  targetPath: string | null;
  capacityBytes: number | null;
  allocationBytes: number | null;
  availableBytes: number | null;
}

export function parsePoolXml(xml: string): PoolDescription {
  const pool = parseXml(xml, 'pool', 'a storage pool description');
  const name = childText(pool, 'name');
  const uuid = childText(pool, 'uuid');
  if (!name || !uuid) throw xmlInvalid('a storage pool description', 'no <name> or <uuid>');
  return {
    name,
    uuid: uuid.toLowerCase(),
    type: attr(pool, 'type') ?? 'unknown',
    targetPath: childText(child(pool, 'target'), 'path') ?? null,
    capacityBytes: sizeBytes(child(pool, 'capacity'), 'bytes') ?? null,
    allocationBytes: sizeBytes(child(pool, 'allocation'), 'bytes') ?? null,
    availableBytes: sizeBytes(child(pool, 'available'), 'bytes') ?? null,
  };
}

export interface SnapshotDescription {
  name: string;
  /** running, paused, shutoff, disk-snapshot … : the state the domain was in. */
  state: string | null;
  creationTimeSeconds: number | null;
}

export function parseSnapshotXml(xml: string): SnapshotDescription {
  const snapshot = parseXml(xml, 'domainsnapshot', 'a snapshot description');
  const name = childText(snapshot, 'name');
  if (!name) throw xmlInvalid('a snapshot description', 'no <name>');
  return {
    name,
    state: childText(snapshot, 'state') ?? null,
    creationTimeSeconds: wholeNumber(childText(snapshot, 'creationTime')) ?? null,
  };
}
