/**
 * Domain XML for VMs created through Zenith, built with an XML builder (names
 * and paths are escaped, never pasted into markup). Kept small and real:
 * - the test driver: name, UUID, memory, vCPUs;
 * - QEMU: kvm or TCG, an optional qcow2 disk (a volume in the connection's
 *   storage pool), an optional direct kernel boot, a NIC on a libvirt
 *   network, a serial console on a pty, optionally VNC on localhost.
 */
import { XMLBuilder } from 'fast-xml-parser';
import { ZenithError } from '../../core/errors.js';
import type { VmSpec } from '../driver.js';
import { metadataElement, type OwnedVolume } from './zenith-metadata.js';
import type { XmlNode } from './xml-reader.js';

const builder = new XMLBuilder({
  ignoreAttributes: false,
  attributeNamePrefix: '@',
  textNodeName: '#text',
  format: true,
  suppressEmptyNode: true,
});

export interface LibvirtCreateOptions {
  kernel?: string;
  initrd?: string;
  cmdline?: string;
  /** A libvirt network to plug the NIC into; no NIC when absent. */
  network?: string;
  vnc?: boolean;
  accelerator?: 'kvm' | 'tcg';
}

const knownOptions = ['kernel', 'initrd', 'cmdline', 'network', 'vnc', 'accelerator'];

function bad(message: string, details: Record<string, unknown> = {}): ZenithError {
  return new ZenithError('ZEN_BAD_REQUEST', message, details);
}

export function validateCreateOptions(options: Record<string, unknown> = {}): LibvirtCreateOptions {
  const unknown = Object.keys(options).filter((k) => !knownOptions.includes(k));
  if (unknown.length > 0)
    throw bad(
      `unknown libvirt VM option(s): ${unknown.join(', ')} (known: ${knownOptions.join(', ')})`,
      {
        unknown,
      },
    );
  const out: LibvirtCreateOptions = {};
  for (const key of ['kernel', 'initrd'] as const) {
    const value = options[key];
    if (value === undefined) continue;
    // A path on the libvirt host, not here: it can only be checked for form; libvirt checks the rest.
    if (
      typeof value !== 'string' ||
      !value.startsWith('/') ||
      value.length > 4096 ||
      value.includes('\0')
    )
      throw bad(`option '${key}' is an absolute path on the libvirt host`, { key });
    out[key] = value;
  }
  if (options.cmdline !== undefined) {
    if (
      typeof options.cmdline !== 'string' ||
      options.cmdline.length > 2048 ||
      [...options.cmdline].some((c) => c.charCodeAt(0) < 0x20)
    )
      throw bad("option 'cmdline' is a kernel command line of at most 2048 printable characters");
    out.cmdline = options.cmdline;
  }
  if ((out.initrd || out.cmdline) && !out.kernel)
    throw bad("options 'initrd' and 'cmdline' need 'kernel'");
  if (options.network !== undefined) {
    if (
      typeof options.network !== 'string' ||
      !/^[a-zA-Z0-9][a-zA-Z0-9._-]{0,63}$/.test(options.network)
    )
      throw bad("option 'network' is the name of a libvirt network");
    out.network = options.network;
  }
  if (options.vnc !== undefined) {
    if (typeof options.vnc !== 'boolean') throw bad("option 'vnc' is true or false");
    out.vnc = options.vnc;
  }
  if (options.accelerator !== undefined) {
    if (options.accelerator !== 'kvm' && options.accelerator !== 'tcg')
      throw bad("option 'accelerator' is kvm or tcg");
    out.accelerator = options.accelerator;
  }
  return out;
}

export interface DomainPlan {
  /** test, kvm or qemu */
  domainType: string;
  uuid: string;
  arch: string | null;
  disk: OwnedVolume | null;
}

const KiB = 1024;

function memory(bytes: number): { '@unit': string; '#text': string } {
  return { '@unit': 'KiB', '#text': String(Math.ceil(bytes / KiB)) };
}

/** A direct kernel boot when a kernel is named, else from the first disk. */
function setBoot(os: XmlNode, boot: { kernel?: string; initrd?: string; cmdline?: string }): void {
  if (boot.kernel) {
    os.kernel = boot.kernel;
    if (boot.initrd) os.initrd = boot.initrd;
    if (boot.cmdline) os.cmdline = boot.cmdline;
  } else os.boot = { '@dev': 'hd' };
}

/** The serial port on a pty, and the guest's console on that port. */
function serialConsoleDevices(): XmlNode {
  return {
    serial: { '@type': 'pty', target: { '@port': '0' } },
    console: { '@type': 'pty', target: { '@type': 'serial', '@port': '0' } },
  };
}

/** VNC on the host's loopback address only, on a port libvirt chooses. */
function vncGraphics(): XmlNode {
  return { '@type': 'vnc', '@autoport': 'yes', '@listen': '127.0.0.1' };
}

/**
 * A QEMU domain: its identity and size, how it boots and its devices; ended when the guest powers
 * off or crashes, restarted when it reboots.
 */
function qemuDomain(domain: {
  domainType: string;
  name: string;
  uuid: string;
  ownedVolumes: OwnedVolume[];
  memoryBytes: number;
  cpus: number;
  os: XmlNode;
  devices: XmlNode;
}): string {
  return builder.build({
    domain: {
      '@type': domain.domainType,
      name: domain.name,
      uuid: domain.uuid,
      metadata: metadataElement({ ownedVolumes: domain.ownedVolumes }),
      memory: memory(domain.memoryBytes),
      vcpu: String(domain.cpus),
      os: domain.os,
      on_poweroff: 'destroy',
      on_reboot: 'restart',
      on_crash: 'destroy',
      devices: domain.devices,
    },
  });
}

export function testDomainXml(spec: VmSpec, plan: DomainPlan): string {
  return builder.build({
    domain: {
      '@type': 'test',
      name: spec.name,
      uuid: plan.uuid,
      metadata: metadataElement({ ownedVolumes: [] }),
      memory: memory(spec.memoryBytes),
      vcpu: String(spec.cpus),
      os: { type: 'hvm' },
    },
  });
}

export function qemuDomainXml(
  spec: VmSpec,
  options: LibvirtCreateOptions,
  plan: DomainPlan,
): string {
  const os: XmlNode = {
    type: { ...(plan.arch ? { '@arch': plan.arch } : {}), '#text': 'hvm' },
  };
  setBoot(os, options);
  const devices = serialConsoleDevices();
  if (plan.disk)
    devices.disk = {
      '@type': 'volume',
      '@device': 'disk',
      driver: { '@name': 'qemu', '@type': 'qcow2' },
      source: { '@pool': plan.disk.pool, '@volume': plan.disk.name },
      target: { '@dev': 'vda', '@bus': 'virtio' },
    };
  if (options.network)
    devices.interface = {
      '@type': 'network',
      source: { '@network': options.network },
      model: { '@type': 'virtio' },
    };
  if (options.vnc) devices.graphics = vncGraphics();
  return qemuDomain({
    domainType: plan.domainType,
    name: spec.name,
    uuid: plan.uuid,
    ownedVolumes: plan.disk ? [plan.disk] : [],
    memoryBytes: spec.memoryBytes,
    cpus: spec.cpus,
    os,
    devices,
  });
}

export function volumeXml(name: string, capacityBytes: number): string {
  return builder.build({
    volume: {
      name,
      capacity: { '@unit': 'bytes', '#text': String(capacityBytes) },
      // Version 3 (compat 1.1), not libvirt's default 0.10: only it keeps the persistent dirty
      // bitmaps a backup's checkpoint is.
      target: { format: { '@type': 'qcow2' }, compat: '1.1' },
    },
  });
}

/** A disk of a portable VM as this host finds it. */
export interface PortableDomainDisk {
  path: string;
  format: 'qcow2' | 'raw' | 'vmdk';
  bus: 'virtio' | 'scsi' | 'sata' | 'ide';
  readOnly: boolean;
}

export interface PortableDomainPlan {
  domainType: string;
  arch: string | null;
  name: string;
  uuid: string;
  cpus: number;
  memoryBytes: number;
  firmware: 'bios' | 'uefi';
  machine: 'pc' | 'q35';
  kernel: { kernel: string; initrd?: string; cmdline?: string } | null;
  disks: PortableDomainDisk[];
  /** `source`: the network's or the bridge's name (none for user-mode networking). */
  nics: Array<{ type: 'network' | 'bridge' | 'user'; mac: string; model: string; source: string }>;
  serialConsole: boolean;
  graphics: boolean;
  ownedVolumes: OwnedVolume[];
}

/** The guest's name for the n-th disk on a bus (vda, sdb, hdc …). */
function diskTarget(bus: PortableDomainDisk['bus'], index: number): string {
  const prefix = bus === 'virtio' ? 'vd' : bus === 'ide' ? 'hd' : 'sd';
  return `${prefix}${String.fromCharCode(97 + index)}`;
}

/** The domain of a VM run here from its portable description, with the disks it has (files). */
export function portableDomainXml(plan: PortableDomainPlan): string {
  const os: XmlNode = {
    ...(plan.firmware === 'uefi' ? { '@firmware': 'efi' } : {}),
    type: {
      ...(plan.arch ? { '@arch': plan.arch } : {}),
      '@machine': plan.machine,
      '#text': 'hvm',
    },
  };
  setBoot(os, plan.kernel ?? {});
  const perBus = new Map<string, number>();
  const devices: XmlNode = {
    disk: plan.disks.map((disk) => {
      const prefix = diskTarget(disk.bus, 0).slice(0, 2);
      const index = perBus.get(prefix) ?? 0;
      perBus.set(prefix, index + 1);
      return {
        '@type': 'file',
        '@device': 'disk',
        driver: { '@name': 'qemu', '@type': disk.format },
        source: { '@file': disk.path },
        target: { '@dev': diskTarget(disk.bus, index), '@bus': disk.bus },
        ...(disk.readOnly ? { readonly: '' } : {}),
      };
    }),
    interface: plan.nics.map((nic) => ({
      '@type': nic.type,
      mac: { '@address': nic.mac },
      ...(nic.type === 'user' ? {} : { source: { [`@${nic.type}`]: nic.source } }),
      model: { '@type': nic.model },
    })),
  };
  if (plan.serialConsole) Object.assign(devices, serialConsoleDevices());
  if (plan.graphics) devices.graphics = vncGraphics();
  return qemuDomain({
    domainType: plan.domainType,
    name: plan.name,
    uuid: plan.uuid,
    ownedVolumes: plan.ownedVolumes,
    memoryBytes: plan.memoryBytes,
    cpus: plan.cpus,
    os,
    devices,
  });
}
