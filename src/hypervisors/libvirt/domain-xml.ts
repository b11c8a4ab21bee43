/** What Zenith reads from a domain's XML description: sizes, disks, NICs, boot and consoles. */
import {
  attr,
  child,
  childText,
  children,
  has,
  parseXml,
  sizeBytes,
  wholeNumber,
  xmlInvalid,
  type XmlNode,
} from './xml-reader.js';
import { readZenithMetadata, type ZenithMetadata } from './zenith-metadata.js';

export interface DomainDisk {
  /** disk, cdrom, floppy, lun */
  device: string;
  /** The guest's name for it: vda, sda, hdc … */
  target: string | null;
  /** A file or block device path, a pool/volume pair, or a network source name. */
  source: string | null;
  pool: string | null;
  volume: string | null;
  /** qcow2, raw … */
  format: string | null;
  /** file, block, volume, network, dir … */
  sourceType: string;
  /** virtio, scsi, sata, ide … */
  bus: string | null;
  readOnly: boolean;
}

export interface DomainInterface {
  /** network, bridge, direct, user … */
  type: string;
  mac: string | null;
  /** The network or bridge it is plugged into. */
  source: string | null;
  model: string | null;
}

export interface DomainDescription {
  name: string;
  uuid: string;
  /** The domain type: kvm, qemu (TCG), test, lxc, xen … */
  type: string;
  title: string | null;
  vcpus: number;
  memoryBytes: number;
  currentMemoryBytes: number | null;
  osType: string | null;
  arch: string | null;
  machine: string | null;
  bootKind: 'kernel' | 'disk' | 'network' | 'init' | 'unknown';
  /** Direct kernel boot: the files on the host and the command line. */
  kernel: { kernel: string; initrd: string | null; cmdline: string | null } | null;
  /** UEFI when the domain asks for it (firmware='efi' or a pflash loader); BIOS otherwise. */
  firmware: 'bios' | 'uefi';
  disks: DomainDisk[];
  interfaces: DomainInterface[];
  serialConsole: boolean;
  graphics: string[];
  /** Present on domains Zenith created. */
  zenith: ZenithMetadata | null;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

function diskSource(source: XmlNode | undefined): string | null {
  return (
    attr(source, 'file') ??
    attr(source, 'dev') ??
    attr(source, 'dir') ??
    attr(source, 'name') ??
    (attr(source, 'pool') && attr(source, 'volume')
      ? `${attr(source, 'pool')}/${attr(source, 'volume')}`
      : null)
  );
}

function bootKind(os: XmlNode | undefined): DomainDescription['bootKind'] {
  if (has(os, 'kernel')) return 'kernel';
  if (has(os, 'init')) return 'init';
  const devices = children(os, 'boot').map((boot) => attr(boot, 'dev'));
  if (devices[0] === 'network') return 'network';
  if (devices.length > 0 || children(os, 'type').length > 0) return 'disk';
  return 'unknown';
}

export function parseDomainXml(xml: string): DomainDescription {
  const domain = parseXml(xml, 'domain', 'a domain description');
  const name = childText(domain, 'name');
  const uuid = childText(domain, 'uuid');
  if (!name) throw xmlInvalid('a domain description', 'no <name>');
  if (!uuid || !UUID.test(uuid)) throw xmlInvalid('a domain description', 'no valid <uuid>');
  const memoryBytes = sizeBytes(child(domain, 'memory'), 'KiB');
  if (memoryBytes === undefined) throw xmlInvalid('a domain description', 'no valid <memory>');
  const vcpu = child(domain, 'vcpu');
  const vcpus = wholeNumber(attr(vcpu, 'current') ?? childText(domain, 'vcpu')) ?? 1;
  const os = child(domain, 'os');
  const osTypeNode = child(os, 'type');
  const devices = child(domain, 'devices');
  const disks = children(devices, 'disk').map((disk): DomainDisk => {
    const source = child(disk, 'source');
    return {
      device: attr(disk, 'device') ?? 'disk',
      target: attr(child(disk, 'target'), 'dev') ?? null,
      source: diskSource(source),
      pool: attr(source, 'pool') ?? null,
      volume: attr(source, 'volume') ?? null,
      format: attr(child(disk, 'driver'), 'type') ?? null,
      sourceType: attr(disk, 'type') ?? 'file',
      bus: attr(child(disk, 'target'), 'bus') ?? null,
      readOnly: has(disk, 'readonly'),
    };
  });
  const interfaces = children(devices, 'interface').map((nic): DomainInterface => {
    const source = child(nic, 'source');
    return {
      type: attr(nic, 'type') ?? 'unknown',
      mac: attr(child(nic, 'mac'), 'address') ?? null,
      source: attr(source, 'network') ?? attr(source, 'bridge') ?? attr(source, 'dev') ?? null,
      model: attr(child(nic, 'model'), 'type') ?? null,
    };
  });
  return {
    name,
    uuid: uuid.toLowerCase(),
    type: attr(domain, 'type') ?? 'unknown',
    title: childText(domain, 'title') ?? null,
    vcpus,
    memoryBytes,
    currentMemoryBytes: sizeBytes(child(domain, 'currentMemory'), 'KiB') ?? null,
    osType: childText(os, 'type') ?? null,
    arch: attr(osTypeNode, 'arch') ?? null,
    machine: attr(osTypeNode, 'machine') ?? null,
    bootKind: bootKind(os),
    kernel: childText(os, 'kernel')
      ? {
          kernel: childText(os, 'kernel')!,
          initrd: childText(os, 'initrd') ?? null,
          cmdline: childText(os, 'cmdline') ?? null,
        }
      : null,
    firmware:
      attr(os, 'firmware') === 'efi' || attr(child(os, 'loader'), 'type') === 'pflash'
        ? 'uefi'
        : 'bios',
    disks,
    interfaces,
    serialConsole: has(devices, 'serial') || has(devices, 'console'),
    graphics: children(devices, 'graphics')
      .map((g) => attr(g, 'type'))
      .filter((t): t is string => t !== undefined),
    zenith: readZenithMetadata(child(domain, 'metadata')),
  };
}
