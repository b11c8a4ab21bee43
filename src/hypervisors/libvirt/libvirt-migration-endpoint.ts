/**
 * A libvirt host as one end of a migration between libvirt connections. The
 * source daemon migrates peer to peer to the destination daemon, which it
 * reaches by the destination connection's migration URI (libvirt-migration.ts);
 * the ends here only hold back the domain's events while it moves, so the VM
 * is never seen twice or missing. There is nothing to ask a destination
 * daemon without its source, so this end has no state queries: a failed send
 * is a failed migration.
 */
import { ZenithError } from '../../core/errors.js';
import type { ActionContext, DiscoveredVm } from '../driver-types.js';
import type {
  MigrationEndpoint,
  MigrationOffer,
  MigrationResult,
  MigrationTarget,
  SendOptions,
} from '../facets/migration-endpoint.js';
import type { MigrationPeer, MigrationStats } from './libvirt-migration.js';

/** What the libvirt driver lends its migration end. */
export interface LibvirtMigrationHost {
  /** libvirt's hypervisor driver on this host (qemu, xen, lxc, test). */
  guestKind(): string;
  migrationPeer(): MigrationPeer | null;
  migrateToPeer(
    uuid: string,
    peer: MigrationPeer,
    options: SendOptions,
    context: ActionContext,
  ): Promise<MigrationStats>;
  /** Holds back the domain's events. */
  hold(uuid: string): void;
  /** Lets them through again, and reads the domain once more (it may be gone now). */
  release(uuid: string): void;
  /** Lets them through again and answers the domain as the driver reports it. */
  arrived(uuid: string): Promise<DiscoveredVm>;
}

export class LibvirtMigrationEndpoint implements MigrationEndpoint {
  readonly protocol = 'libvirt' as const;

  constructor(private readonly host: LibvirtMigrationHost) {}

  get guestKind(): string {
    return this.host.guestKind();
  }

  checkIncoming(): void {
    if (!this.host.migrationPeer())
      throw new ZenithError(
        'ZEN_UNSUPPORTED',
        "the target connection reaches its daemon through a local socket: set its 'migrationUri' setting to the URI by which other hosts reach that daemon",
        { setting: 'migrationUri' },
      );
  }

  /** The domain's UUID names it on both daemons: the daemons carry everything else. */
  async exportVm(uuid: string): Promise<MigrationOffer> {
    return { migrationId: uuid, protocol: 'libvirt', payload: null };
  }

  /** Holds back the arriving domain's events; answers how the source daemon reaches this one. */
  async prepareIncoming(offer: MigrationOffer): Promise<MigrationTarget> {
    this.checkIncoming();
    this.host.hold(offer.migrationId);
    return { protocol: 'libvirt', payload: this.host.migrationPeer() };
  }

  /** The source holds back the domain's events while it moves (until finishOutgoing, or a failure). */
  async send(
    uuid: string,
    target: MigrationTarget,
    options: SendOptions,
    context: ActionContext,
  ): Promise<MigrationResult> {
    if (target.protocol !== 'libvirt')
      throw new ZenithError(
        'ZEN_UNSUPPORTED',
        `a libvirt host cannot send to a ${target.protocol} target`,
      );
    // Made by a libvirt end's prepareIncoming: the destination's migration peer.
    return this.host.migrateToPeer(uuid, target.payload as MigrationPeer, options, context);
  }

  finishIncoming(uuid: string): Promise<DiscoveredVm> {
    return this.host.arrived(uuid);
  }

  async abortIncoming(uuid: string): Promise<void> {
    this.host.release(uuid);
  }

  /** Either way its events flow again: the domain is gone here after a migration, or as it is. */
  async finishOutgoing(uuid: string): Promise<void> {
    this.host.release(uuid);
  }
}
