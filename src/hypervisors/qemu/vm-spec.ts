/**
 * A QEMU VM as the operator describes it, and the checks that refuse an
 * impossible one before anything is created: sizes, paths that must stay
 * inside the configured storage roots (no `..`, no symlink out), bridges that
 * exist on the host.
 */
import { ZenithError } from '../../core/errors.js';
import { pathWithinRoots } from '../../core/paths.js';

export type Accelerator = 'kvm' | 'tcg' | 'auto';

export interface QemuDiskSpec {
  /** A path inside a storage root (relative paths are taken from the first root). */
  file: string;
  /** Size of a new blank disk; absent for an existing file or a linked clone of `backingFile`. */
  sizeBytes?: number;
  /** Create the disk as a qcow2 linked clone of this base image (inside a storage root). */
  backingFile?: string;
  /** The virtual size of an overlay or an existing file, as it was when the VM was made. */
  capacityBytes?: number;
}

export type QemuBoot =
  { kind: 'disk' } | { kind: 'kernel'; kernel: string; initrd?: string; cmdline?: string };

/**
 * `mac`: the guest's MAC address, where it must stay what it was on another host (a VM run from a
 * portable description); otherwise it is derived from the VM's id (nic-names.ts).
 */
export type QemuNicSpec =
  /** `isolated`: QEMU's user-mode network restricted (`restrict=on`): the guest reaches nothing. */
  | { mode: 'user'; mac?: string; isolated?: boolean }
  | { mode: 'bridge'; bridge: string; mac?: string };

export interface QemuVmSpec {
  name: string;
  /** The VM's identity across hosts (SMBIOS UUID); set when the VM is created, kept through migrations. */
  uuid?: string;
  cpus: number;
  memoryMiB: number;
  disks: QemuDiskSpec[];
  boot: QemuBoot;
  nics: QemuNicSpec[];
  vnc: boolean;
  accelerator: Accelerator;
  /**
   * A guest agent channel: a virtio-serial port named org.qemu.guest_agent.0 that qemu-ga in the
   * guest opens (the host end is a unix socket beside the QMP socket). Backups freeze the guest's
   * file systems through it when the agent answers (qemu-disk-streams.ts).
   */
  guestAgent?: boolean;
}

export interface HostLimits {
  storageRoots: string[];
  cpuCount: number;
  memoryBytes: number;
  /** Names of the network bridges that exist on the host. */
  bridges: string[];
}

const namePattern = /^[a-zA-Z0-9][a-zA-Z0-9._-]{0,62}$/;
/** A unicast MAC address, lower case (the first octet's lowest bit clear). */
const macPattern = /^[0-9a-f][02468ace](:[0-9a-f]{2}){5}$/;

function bad(message: string, details: Record<string, unknown> = {}): ZenithError {
  return new ZenithError('ZEN_BAD_REQUEST', message, details);
}

/** Checks a spec against the host; returns it with every path resolved inside the roots. */
export function validateSpec(spec: QemuVmSpec, host: HostLimits): QemuVmSpec {
  if (!namePattern.test(spec.name))
    throw bad(`'${spec.name}' is not a valid VM name (letters, digits, . _ -, at most 63)`, {
      name: spec.name,
    });
  if (!Number.isInteger(spec.cpus) || spec.cpus < 1)
    throw bad('a VM needs at least 1 vCPU', { cpus: spec.cpus });
  if (spec.cpus > Math.max(host.cpuCount * 4, 1))
    throw new ZenithError(
      'ZEN_NO_CAPACITY',
      `${spec.cpus} vCPUs is more than this host can schedule (${host.cpuCount} CPUs)`,
      { cpus: spec.cpus, hostCpus: host.cpuCount },
    );
  if (!Number.isInteger(spec.memoryMiB) || spec.memoryMiB < 16)
    throw bad('a VM needs at least 16 MiB of memory', { memoryMiB: spec.memoryMiB });
  if (spec.memoryMiB * 1024 * 1024 > host.memoryBytes) {
    throw new ZenithError(
      'ZEN_NO_CAPACITY',
      `${spec.memoryMiB} MiB is more memory than this host has (${Math.floor(host.memoryBytes / 1048576)} MiB)`,
      { memoryMiB: spec.memoryMiB, hostMemoryBytes: host.memoryBytes },
    );
  }
  if (spec.disks.length > 16) throw bad('at most 16 disks');
  const disks = spec.disks.map((disk) => {
    if (
      disk.sizeBytes !== undefined &&
      !(Number.isInteger(disk.sizeBytes) && disk.sizeBytes >= 1048576)
    )
      throw bad('a disk is at least 1 MiB', { sizeBytes: disk.sizeBytes });
    return {
      file: pathWithinRoots(disk.file, host.storageRoots),
      ...(disk.sizeBytes !== undefined ? { sizeBytes: disk.sizeBytes } : {}),
      ...(disk.backingFile !== undefined
        ? { backingFile: pathWithinRoots(disk.backingFile, host.storageRoots) }
        : {}),
      ...(disk.capacityBytes !== undefined ? { capacityBytes: disk.capacityBytes } : {}),
    };
  });
  if (spec.boot.kind === 'disk' && disks.length === 0) throw bad('booting from disk needs a disk');
  const boot: QemuBoot =
    spec.boot.kind === 'kernel'
      ? {
          kind: 'kernel',
          kernel: pathWithinRoots(spec.boot.kernel, host.storageRoots),
          ...(spec.boot.initrd
            ? { initrd: pathWithinRoots(spec.boot.initrd, host.storageRoots) }
            : {}),
          ...(spec.boot.cmdline !== undefined ? { cmdline: spec.boot.cmdline } : {}),
        }
      : { kind: 'disk' };
  if (boot.kind === 'kernel' && (boot.cmdline?.length ?? 0) > 4096)
    throw bad('the kernel command line is at most 4096 characters');
  // Each bridged NIC's tap is named with its index, in at most 15 bytes (nic-names.ts).
  if (spec.nics.length > 16) throw bad('at most 16 NICs');
  for (const nic of spec.nics) {
    if (!['user', 'bridge'].includes((nic as { mode: unknown }).mode as string))
      throw bad(`unknown NIC mode '${String((nic as { mode: unknown }).mode)}' (user or bridge)`);
    if (nic.mac !== undefined && !macPattern.test(nic.mac))
      throw bad(`'${nic.mac}' is not a unicast MAC address (lower case, colon-separated)`, {
        mac: nic.mac,
      });
    if (nic.mode === 'bridge' && !host.bridges.includes(nic.bridge))
      throw bad(`there is no bridge '${nic.bridge}' on this host`, {
        bridge: nic.bridge,
        bridges: host.bridges,
      });
  }
  if (spec.guestAgent !== undefined && typeof spec.guestAgent !== 'boolean')
    throw bad("option 'guestAgent' is true or false", { guestAgent: spec.guestAgent });
  if (!['kvm', 'tcg', 'auto'].includes(spec.accelerator))
    throw bad(`unknown accelerator '${String(spec.accelerator)}' (kvm, tcg or auto)`);
  return { ...spec, disks, boot };
}
