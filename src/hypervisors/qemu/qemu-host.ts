/**
 * What the QEMU driver lends the parts that work on its VMs beside it — live
 * migration, its facets — so that each lives in a file of its own without
 * reaching into the driver's private state.
 */
import type { Clock } from '../../core/clock.js';
import type { Logger } from '../../core/logger.js';
import type { DiscoveredVm, PowerState } from '../driver-types.js';
import type { DiskClaims } from './disk-claims.js';
import type { QemuVm, VmRecord } from './qemu-vm.js';
import type { Accelerator, QemuVmSpec } from './vm-spec.js';

export interface QemuHost {
  storageRoots: string[];
  clock: Clock;
  logger: Logger;
  /** The accelerator new VMs get (the connection's setting). */
  accelerator: Accelerator;
  /** Where other hosts send live migrations to this one. */
  migrationAddress: string;
  /** Which VM owns each disk, in the storage itself. */
  claims: DiskClaims;
  find(id: string): QemuVm | undefined;
  /** Every VM this host knows (incoming and departing ones too). */
  all(): Iterable<QemuVm>;
  /** The VM, or ZEN_NOT_FOUND. */
  vm(id: string): QemuVm;
  /** Takes a VM record in (a new VM, or one arriving): its instance, known to the driver from now on. */
  instance(record: VmRecord): QemuVm;
  /** The VM as the driver reports it. */
  view(vm: QemuVm): DiscoveredVm;
  /** Checks a spec against this host; answers it with every path resolved. */
  validate(spec: QemuVmSpec): QemuVmSpec;
  expect(vm: QemuVm, states: PowerState[]): void;
  /** ZEN_CONFLICT when a VM of that name exists here. */
  requireFreeName(name: string): void;
  /** A new VM id on this host. */
  newVmId(): string;
  /** Removes the VM from this host (QEMU must have ended); its disks too when asked. */
  forget(vm: QemuVm, removeDisks: boolean): void;
  /**
   * Removes the stopped definitions of these VMs (by UUID), never their disks; one that runs here
   * or is half of a migration is kept, with why.
   */
  discardMovedAway(
    uuids: string[],
  ): Promise<{ discarded: string[]; kept: Array<{ uuid: string; reason: string }> }>;
  /**
   * Removes a reception of this VM (by UUID) that never got the whole VM: waiting for a source
   * that will send nothing more, or failed. One that received it all is kept.
   */
  abandonReception(uuid: string): Promise<void>;
}
