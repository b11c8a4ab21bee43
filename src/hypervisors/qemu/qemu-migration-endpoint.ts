/**
 * The QEMU driver's migration facet: this host as either end of a migration
 * between QEMU hosts under Zenith (its own QEMU host, host agents). The
 * mechanics are in qemu-migration.ts; this file is the facet's contract over
 * them. Offers and targets of protocol 'qemu' carry a MigrationPackage and an
 * IncomingEndpoint: made by this driver or by a host agent's (whose answers
 * the agent channel validated on arrival).
 */
import { ZenithError } from '../../core/errors.js';
import type { ActionContext, DiscoveredVm } from '../driver-types.js';
import type {
  IncomingOptions,
  IncomingState,
  MigrationEndpoint,
  MigrationOffer,
  MigrationResult,
  MigrationTarget,
  OutgoingState,
  SendOptions,
} from '../facets/migration-endpoint.js';
import type { QemuHost } from './qemu-host.js';
import type {
  IncomingEndpoint,
  MigrationPackage,
  MigrationResult as QemuMigrationResult,
  QemuMigrations,
} from './qemu-migration.js';

export interface QemuMigrationOffer extends MigrationOffer {
  protocol: 'qemu';
  payload: MigrationPackage;
}

export interface QemuMigrationTarget extends MigrationTarget {
  protocol: 'qemu';
  payload: IncomingEndpoint;
}

/** A package offered as a migration of protocol 'qemu', named by the VM's id. */
export function qemuOffer(pkg: MigrationPackage): QemuMigrationOffer {
  return { migrationId: pkg.record.id, protocol: 'qemu', payload: pkg };
}

/** An endpoint ready to receive, as a target of protocol 'qemu'. */
export function qemuTarget(endpoint: IncomingEndpoint): QemuMigrationTarget {
  return { protocol: 'qemu', payload: endpoint };
}

/** The package inside an offer of protocol 'qemu' (refuses another protocol's). */
export function qemuPackageOf(offer: MigrationOffer): MigrationPackage {
  if (offer.protocol !== 'qemu')
    throw new ZenithError(
      'ZEN_UNSUPPORTED',
      `a QEMU host cannot receive a ${offer.protocol} migration`,
    );
  return offer.payload as MigrationPackage;
}

/** The endpoint inside a target of protocol 'qemu' (refuses another protocol's). */
export function qemuEndpointOf(target: MigrationTarget): IncomingEndpoint {
  if (target.protocol !== 'qemu')
    throw new ZenithError(
      'ZEN_UNSUPPORTED',
      `a QEMU host cannot send to a ${target.protocol} target`,
    );
  return target.payload as IncomingEndpoint;
}

export class QemuMigrationEndpoint implements MigrationEndpoint {
  readonly protocol = 'qemu' as const;
  readonly guestKind = 'qemu';

  constructor(
    private readonly host: QemuHost,
    private readonly migrations: QemuMigrations,
  ) {}

  async exportVm(id: string): Promise<QemuMigrationOffer> {
    return qemuOffer(await this.migrations.export(id));
  }

  async prepareIncoming(
    offer: MigrationOffer,
    options: IncomingOptions,
  ): Promise<QemuMigrationTarget> {
    return qemuTarget(
      await this.migrations.prepareIncoming(
        qemuPackageOf(offer),
        this.host.migrationAddress,
        options,
      ),
    );
  }

  async send(
    id: string,
    target: MigrationTarget,
    options: SendOptions,
    context: ActionContext,
  ): Promise<QemuMigrationResult & MigrationResult> {
    const endpoint = qemuEndpointOf(target);
    const result = await this.migrations.send(id, endpoint, options, context);
    // The destination resumes the guest at finishIncoming: the hand-over is part of the downtime.
    return { ...result, resumesAtFinish: true };
  }

  async finishIncoming(id: string): Promise<DiscoveredVm> {
    await this.migrations.finishIncoming(id);
    return this.host.view(this.host.vm(id));
  }

  async abortIncoming(id: string): Promise<void> {
    await this.migrations.abortIncoming(id);
  }

  /** Arrived: ends the old QEMU and forgets the VM. Otherwise its paused QEMU takes the VM back. */
  async finishOutgoing(id: string, arrived: boolean): Promise<void> {
    if (arrived) await this.migrations.cleanupOutgoing(id);
    else await this.migrations.keepOutgoing(id);
  }

  incomingState(id: string): Promise<IncomingState> {
    return this.migrations.incomingState(id);
  }

  outgoingState(id: string): Promise<OutgoingState> {
    return this.migrations.outgoingState(id);
  }
}
