/**
 * The portable-VM facet: a VM described without its host, and run on another
 * host from that description with the disks it already has. High
 * availability restarts a failed host's VMs this way, a failover at a second
 * site starts replicas this way, and a conversion defines the VM at its new
 * family this way. Nothing of the disks is created or copied: the files must
 * be where the description says, on storage the new host sees.
 *
 * The description keeps what makes the guest the same machine — its UUID (the
 * inventory follows a VM by it), firmware, machine type, disk and NIC models,
 * NIC MAC addresses — and leaves out what belongs to a host (process ids,
 * taps, accelerator). A family refuses with ZEN_UNSUPPORTED what it cannot
 * run as described, rather than running something else.
 */
import type { ActionContext, DiscoveredVm } from '../driver-types.js';

/** A file as a host finds it: an absolute path, or a path inside a named datastore. */
export interface PortableLocation {
  /** The datastore (libvirt pool, vSphere datastore) as the target host names it; absent: `path` is absolute. */
  datastore?: string;
  path: string;
}

export type PortableDiskFormat = 'qcow2' | 'raw' | 'vmdk';
export type PortableDiskBus = 'virtio' | 'scsi' | 'sata' | 'ide';

export interface PortableDisk {
  location: PortableLocation;
  format: PortableDiskFormat;
  /** The controller the guest sees it on: the guest needs a driver for it to boot. */
  bus: PortableDiskBus;
  /** The size the guest sees (the image says it too). */
  capacityBytes: number;
  /** The VM's own disk, deleted with it; otherwise an image it uses that outlives it. */
  owned: boolean;
  readOnly?: boolean;
}

export type PortableNicModel = 'virtio' | 'e1000' | 'e1000e' | 'rtl8139' | 'vmxnet3';

export type PortableNicAttachment =
  /** Outbound-only networking of the hypervisor itself (QEMU's user mode). */
  | { kind: 'user' }
  /** A port on the host's bridge of this name. */
  | { kind: 'bridge'; bridge: string }
  /** A network the hypervisor manages (libvirt network, vSphere port group) of this name. */
  | { kind: 'network'; network: string }
  /** A network of the NIC's own that reaches nothing (a test failover's copy of a VM). */
  | { kind: 'isolated' };

export interface PortableNic {
  /** The guest's MAC address (the guest's network configuration may depend on it). */
  mac: string;
  model: PortableNicModel;
  attachment: PortableNicAttachment;
}

export type PortableBoot =
  | { kind: 'disk' }
  /** Direct kernel boot: the files are read by the hypervisor, never written. */
  | { kind: 'kernel'; kernel: PortableLocation; initrd?: PortableLocation; cmdline?: string };

export interface PortableVm {
  /** The VM's identity in every family (SMBIOS UUID). */
  uuid: string;
  name: string;
  cpus: number;
  memoryBytes: number;
  firmware: 'bios' | 'uefi';
  /** The chipset: i440fx (`pc`) or `q35`; it decides which buses the guest knows. */
  machine: 'pc' | 'q35';
  boot: PortableBoot;
  disks: PortableDisk[];
  nics: PortableNic[];
  /** A serial console the control plane can relay. */
  serialConsole: boolean;
  /** A display adapter and a graphical console. */
  graphics: boolean;
  /** A guest agent channel (QEMU's org.qemu.guest_agent.0); absent: none. */
  guestAgent?: boolean;
}

export interface RunOptions {
  /** Start it once defined (a restart after a failure); otherwise it stays stopped. */
  start: boolean;
  /**
   * With `start`: the VM is started but its guest does not run yet (reported `suspended`;
   * `resumeVm` runs it), so that whoever waits on its console reads it from the first byte.
   * Only where the facet says `startsPaused`.
   */
  paused?: boolean;
  /**
   * Define it over this host's own stopped definition of the same VM (same UUID and name),
   * keeping it the same VM: a restore over the original. Refused while that one runs.
   */
  over?: boolean;
}

export interface PortableVmFacet {
  /** The VM as another host (of this family or another) could run it. */
  describeVm(vmExternalId: string): Promise<PortableVm>;
  /**
   * Defines the VM on this host with its existing disks, keeping its UUID and MACs, and starts it
   * when asked. Refuses a VM of the same UUID or name here already (ZEN_CONFLICT), disks it
   * cannot see (ZEN_INVALID_STATE) or that belong to another VM (ZEN_DISK_IN_USE), and what it
   * cannot run as described (ZEN_UNSUPPORTED). A disk still in use by a running copy elsewhere
   * makes the start fail (the hypervisor's image lock); a failed run leaves nothing defined.
   *
   * The VM is reported as it is defined: a caller running a VM the inventory knows elsewhere (a
   * restart after a host failure) holds the inventory's handover for it first, as a migration does.
   */
  runVm(vm: PortableVm, options: RunOptions, context: ActionContext): Promise<DiscoveredVm>;
  /**
   * Whether runVm defines a VM again over its own stopped definition (same UUID and name), keeping
   * it the same VM (`over`) — what a restore over the original needs. Without it, that is refused.
   */
  readonly redefinesStopped?: boolean;
  /** Whether runVm can start a VM with its guest not yet running (`paused`). */
  readonly startsPaused?: boolean;
}
