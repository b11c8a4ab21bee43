/**
 * Which physical machine a hypervisor host runs on, found by what both report
 * (the SMBIOS UUID first, then the serial number, then a NIC MAC address) or
 * said by an operator. Pure: given the hosts, it answers the link a machine
 * should have; the machine service stores and shows it.
 */
import type { ManagedObject } from '../inventory/model.js';

export type LinkHow = 'smbiosUuid' | 'serial' | 'mac' | 'manual';

/** A host a BMC connection discovered (a physical machine as its BMC sees it). */
export function isMachine(object: ManagedObject): boolean {
  return object.kind === 'host' && typeof object.facts['bmc.protocol'] === 'string';
}

function text(object: ManagedObject, key: string): string | null {
  const value = object.facts[key];
  return typeof value === 'string' && value.trim() !== '' ? value.trim().toLowerCase() : null;
}

function macs(object: ManagedObject): string[] {
  const value = object.facts['hardware.nicMacs'];
  return Array.isArray(value) ? value.map((mac) => mac.toLowerCase()) : [];
}

/** The SMBIOS UUID a hypervisor host reports (libvirt calls it the host UUID). */
function smbiosUuid(host: ManagedObject): string | null {
  return text(host, 'hardware.smbiosUuid') ?? text(host, 'host.uuid');
}

/** Whether the two report one identity key in common (cheap: before a full match). */
export function sharesIdentity(machine: ManagedObject, host: ManagedObject): boolean {
  const uuid = text(machine, 'hardware.smbiosUuid');
  if (uuid && smbiosUuid(host) === uuid) return true;
  const serial = text(machine, 'hardware.serial');
  if (serial && text(host, 'hardware.serial') === serial) return true;
  const hostMacs = new Set(macs(host));
  return macs(machine).some((mac) => hostMacs.has(mac));
}

/**
 * The one hypervisor host among `hosts` that matches the machine, and by what; undefined when none
 * does, or when two do by the same (strongest) key: an ambiguous match links nothing.
 */
export function matchMachine(
  machine: ManagedObject,
  hosts: Iterable<ManagedObject>,
): { host: ManagedObject; how: Exclude<LinkHow, 'manual'> } | undefined {
  const uuid = text(machine, 'hardware.smbiosUuid');
  const serial = text(machine, 'hardware.serial');
  const machineMacs = new Set(macs(machine));
  const found: Record<'smbiosUuid' | 'serial' | 'mac', ManagedObject[]> = {
    smbiosUuid: [],
    serial: [],
    mac: [],
  };
  for (const host of hosts) {
    if (host.kind !== 'host' || isMachine(host) || host.status !== 'present') continue;
    if (uuid && smbiosUuid(host) === uuid) found.smbiosUuid.push(host);
    else if (serial && text(host, 'hardware.serial') === serial) found.serial.push(host);
    else if (macs(host).some((mac) => machineMacs.has(mac))) found.mac.push(host);
  }
  for (const how of ['smbiosUuid', 'serial', 'mac'] as const) {
    const matches = found[how];
    if (matches.length === 1) return { host: matches[0]!, how };
    if (matches.length > 1) return undefined;
  }
  return undefined;
}
