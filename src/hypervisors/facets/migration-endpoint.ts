/**
 * The migration facet: one end of a live (or offline) migration of a VM
 * between two hosts of different connections. The control plane drives both
 * ends through it (services/vms/cross-host-migration.ts), the same steps for
 * every family:
 *
 *   source.exportVm → destination.prepareIncoming → source.send
 *     → destination.finishIncoming → source.finishOutgoing(arrived)
 *
 * and, when the send fails, destination.abortIncoming. Until finishIncoming
 * the destination reports nothing of the VM, and from the switch-over the
 * source reports nothing more of it, so the VM is listed by exactly one host
 * at every moment. Two ends migrate between each other only when they speak
 * the same protocol and run the same kind of guest.
 */
import type { ActionContext, DiscoveredVm, MigrateOptions } from '../driver-types.js';

/**
 * How the VM's state travels:
 * - `qemu`: Zenith drives two QEMU processes through QMP itself (its own QEMU host and host
 *   agents): memory over QEMU's migration stream, disks over NBD for a storage migration;
 * - `libvirt`: the source libvirt daemon migrates peer to peer to the destination daemon.
 */
export type MigrationProtocol = 'qemu' | 'libvirt';

/** What the source hands the destination: made and read by ends of `protocol` only. */
export interface MigrationOffer {
  /** Names the migration at both ends: the VM's external id at the source, kept at the destination. */
  migrationId: string;
  protocol: MigrationProtocol;
  payload: unknown;
}

/** Where the destination waits for the VM: made and read by ends of `protocol` only. */
export interface MigrationTarget {
  protocol: MigrationProtocol;
  payload: unknown;
}

export interface IncomingOptions {
  /** The disks come along (no shared storage): the destination makes empty ones to copy into. */
  withStorage?: boolean;
  multifdChannels?: number;
}

export type SendOptions = MigrateOptions & { multifdChannels?: number };

export interface MigrationResult {
  /** From the first byte sent to the switch-over. */
  totalTimeMs: number;
  /** How long the guest was paused, as the hypervisor measured it (null when it does not say). */
  downtimeMs: number | null;
  transferredBytes: number;
  /** Bytes of disk copied by a storage migration (families that count them). */
  diskBytes?: number;
  /**
   * The guest stays paused at the destination until finishIncoming resumes it (a storage
   * migration hands its disks over first): the controller adds that time to the downtime.
   */
  resumesAtFinish?: boolean;
}

/** How a reception stands, asked when the source fell silent in mid-migration. */
export type IncomingState = 'receiving' | 'received' | 'failed';

/** Whether the source is still sending, has let the VM go, kept it, or does not know it. */
export type OutgoingState = 'sending' | 'departed' | 'stayed' | 'gone';

export interface MigrationEndpoint {
  readonly protocol: MigrationProtocol;
  /** The kind of guest this end runs (QEMU; libvirt's driver: qemu, xen, lxc): ends must agree. */
  readonly guestKind: string;
  /** Refuses (coded, before anything is queued) a migration away from this end. */
  checkOutgoing?(): void;
  /** Refuses (coded, before anything is queued) a migration to this end. */
  checkIncoming?(): void;
  /** Source: what the destination needs to receive the VM. */
  exportVm(vmExternalId: string): Promise<MigrationOffer>;
  /** Destination: gets ready to receive (reporting nothing of the VM yet); answers where to send to. */
  prepareIncoming(offer: MigrationOffer, options: IncomingOptions): Promise<MigrationTarget>;
  /**
   * Source: sends the VM and waits for the switch-over, reporting progress; the signal cancels.
   * On any failure the VM stays and runs here.
   */
  send(
    vmExternalId: string,
    target: MigrationTarget,
    options: SendOptions,
    context: ActionContext,
  ): Promise<MigrationResult>;
  /** Destination, after the switch-over: the VM runs here now; answers it as this end reports it. */
  finishIncoming(migrationId: string): Promise<DiscoveredVm>;
  /** Destination, when the send failed: removes everything made for the VM here. */
  abortIncoming(migrationId: string): Promise<void>;
  /**
   * Source, last: `arrived` when the destination's report of the VM is in the inventory — the
   * source ends what is left of the VM here. Otherwise (finishing at the destination failed) the
   * source only stops holding back its reports and keeps what it has.
   */
  finishOutgoing(migrationId: string, arrived: boolean): Promise<void>;
  /**
   * Present where a reception can be followed without the source: when the source's end falls
   * silent in mid-migration, the controller asks these until the VM has arrived or is lost.
   */
  incomingState?(migrationId: string): Promise<IncomingState>;
  outgoingState?(migrationId: string): Promise<OutgoingState>;
}
