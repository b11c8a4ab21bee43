/**
 * The names of a VM's NICs, derived instead of stored, so the command line,
 * the tap set-up, the clean-up after a crash and the metrics all compute the
 * same ones. Pure: no processes, no files.
 *
 * - The guest's MAC comes from the VM's id: stable across restarts and live
 *   migrations (the id travels with the VM), different for every VM on a
 *   bridge (QEMU's default, 52:54:00:12:34:56, would be the same for all);
 *   a NIC that names its MAC (a VM run from a portable description) keeps it.
 * - A bridged NIC's tap comes from the VM's id and the driver's key (a hash
 *   of its state directory): two drivers on one machine, such as the two ends
 *   of a migration within one host, never reach for the same tap. Linux
 *   limits interface names to 15 bytes: `zt` + 10 hex digits + the NIC index
 *   (at most 15, see vm-spec.ts) is at most 14.
 */
import { createHash } from 'node:crypto';
import type { QemuVmSpec } from './vm-spec.js';

/** A bridged NIC's tap on the host. */
export interface TapNic {
  name: string;
  bridge: string;
  /** The tap's own MAC address (not the guest's). */
  mac: string;
}

/** What the command line needs for one NIC. */
export interface NicWiring {
  /** The MAC address the guest sees. */
  mac: string;
  /** Present for a bridged NIC. */
  tap?: TapNic;
}

const hex = (input: string, length: number) =>
  createHash('sha256').update(input).digest('hex').slice(0, length);

/** 52:54:00 is the prefix QEMU's own default MACs use (locally administered by convention). */
export function guestMac(vmId: string, nicIndex: number): string {
  const bytes = hex(`${vmId}/nic${nicIndex}`, 6).match(/../g)!;
  return ['52', '54', '00', ...bytes].join(':');
}

/**
 * The tap's MAC is the guest's with the first byte fe, as libvirt does: a
 * bridge without a MAC of its own takes its ports' lowest, and fe… is never
 * the lowest, so starting a VM does not change the bridge's address.
 */
export function tapMac(mac: string): string {
  return `fe${mac.slice(2)}`;
}

export function tapName(hostKey: string, vmId: string, nicIndex: number): string {
  return `zt${hex(`${hostKey}/${vmId}`, 10)}${nicIndex}`;
}

/** Every NIC of the VM, in order, with its MAC and (when bridged) its tap. */
export function nicWiring(spec: QemuVmSpec, vmId: string, hostKey: string): NicWiring[] {
  return spec.nics.map((nic, index) => {
    const mac = nic.mac ?? guestMac(vmId, index);
    return nic.mode === 'bridge'
      ? {
          mac,
          tap: { name: tapName(hostKey, vmId, index), bridge: nic.bridge, mac: tapMac(mac) },
        }
      : { mac };
  });
}

/** The taps of the VM's bridged NICs. */
export function tapsOf(spec: QemuVmSpec, vmId: string, hostKey: string): TapNic[] {
  return nicWiring(spec, vmId, hostKey).flatMap((nic) => (nic.tap ? [nic.tap] : []));
}
