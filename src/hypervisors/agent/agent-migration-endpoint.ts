/**
 * An agent host as one end of a migration between QEMU hosts: each step is a
 * call over the agent's channel to the QEMU driver the agent runs, which
 * answers with the package and endpoint that QEMU ends exchange.
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
import type { QemuMigrationOffer, QemuMigrationTarget } from '../qemu/qemu-migration-endpoint.js';
import {
  qemuEndpointOf,
  qemuOffer,
  qemuPackageOf,
  qemuTarget,
} from '../qemu/qemu-migration-endpoint.js';
import type { AgentCaller } from './agent-caller.js';

export class AgentMigrationEndpoint implements MigrationEndpoint {
  readonly protocol = 'qemu' as const;
  readonly guestKind = 'qemu';

  constructor(private readonly agent: AgentCaller) {}

  async exportVm(id: string): Promise<QemuMigrationOffer> {
    return qemuOffer(await this.agent.call('exportVm', [id], 60_000));
  }

  async prepareIncoming(
    offer: MigrationOffer,
    options: IncomingOptions,
  ): Promise<QemuMigrationTarget> {
    const pkg = qemuPackageOf(offer);
    // An agent before 1.1 ignores the MACs a VM keeps from its description: it would change them.
    // (Without an agent, the call is refused ZEN_CONNECTION_DISCONNECTED here, before anything.)
    const older = !this.agent.connected().supports('runVm');
    if (older && pkg.record.spec.nics.some((nic) => nic.mac !== undefined))
      throw new ZenithError(
        'ZEN_UNSUPPORTED',
        `${pkg.record.spec.name} keeps MAC addresses of its own, which this agent's protocol version does not carry: upgrade the agent`,
      );
    return qemuTarget(await this.agent.call('prepareIncoming', [pkg, options], 10 * 60_000));
  }

  async send(
    id: string,
    target: MigrationTarget,
    options: SendOptions,
    context: ActionContext,
  ): Promise<MigrationResult> {
    const endpoint = qemuEndpointOf(target);
    const result = await this.agent.call(
      'sendMigration',
      [id, endpoint, options],
      24 * 60 * 60_000,
      context,
    );
    // The destination resumes the guest at finishIncoming: the hand-over is part of the downtime.
    return { ...result, resumesAtFinish: true };
  }

  finishIncoming(id: string): Promise<DiscoveredVm> {
    return this.agent.call('finishIncoming', [id], 60_000);
  }

  async abortIncoming(id: string): Promise<void> {
    await this.agent.call('abortIncoming', [id], 60_000);
  }

  /**
   * Not arrived (the destination's QEMU was removed without resuming the guest): the agent's QEMU
   * takes the VM back, since protocol 1.4; an older agent keeps it paused and settles it itself
   * after a restart.
   */
  async finishOutgoing(id: string, arrived: boolean): Promise<void> {
    if (arrived) await this.agent.call('cleanupOutgoing', [id], 60_000);
    else if (this.agent.connected().supports('keepOutgoing'))
      await this.agent.call('keepOutgoing', [id], 60_000);
    else
      throw new ZenithError(
        'ZEN_UNSUPPORTED',
        'this agent cannot take back a VM whose migration did not finish (protocol 1.4): upgrade it; the VM stays paused on it',
      );
  }

  incomingState(id: string): Promise<IncomingState> {
    return this.agent.call('incomingState', [id]);
  }

  outgoingState(id: string): Promise<OutgoingState> {
    return this.agent.call('outgoingState', [id]);
  }
}
