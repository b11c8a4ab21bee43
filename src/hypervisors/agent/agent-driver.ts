/**
 * The driver of a host reached through its agent: every operation is a call
 * over the agent's channel, answered by the QEMU driver the agent runs.
 */
import type { Duplex } from 'node:stream';
import { ZenithError } from '../../core/errors.js';
import type {
  ActionContext,
  Capability,
  CloneOptions,
  ConsoleKind,
  DiscoveredVm,
  DiscoverySnapshot,
  DriverInfo,
  HypervisorDriver,
  InventoryDelta,
  MigrateOptions,
  VmMetrics,
  SnapshotInfo,
  VmFootprint,
  VmSpec,
} from '../driver.js';
import type {
  IncomingEndpoint,
  IncomingOptions,
  MigrationPackage,
  MigrationResult,
} from '../qemu/qemu-migration.js';
import type { AgentLink, AgentMethod } from './agent-link.js';

const capabilities: readonly Capability[] = [
  'vm.start',
  'vm.stop',
  'vm.shutdown',
  'vm.reboot',
  'vm.reset',
  'vm.suspend',
  'vm.resume',
  'vm.delete',
  'vm.create',
  'vm.clone',
  'vm.snapshot',
  'vm.console',
  'vm.migrate',
];

export class AgentDriver implements HypervisorDriver {
  readonly info: DriverInfo = { type: 'agent', simulated: false, capabilities };

  constructor(private readonly link: () => AgentLink | undefined) {}

  #link(): AgentLink {
    const link = this.link();
    if (!link?.connected)
      throw new ZenithError('ZEN_CONNECTION_DISCONNECTED', 'the host agent is not connected');
    return link;
  }

  async #call<T>(
    method: AgentMethod,
    args: unknown[],
    timeoutMs?: number,
    context?: ActionContext,
  ): Promise<T> {
    return (await this.#link().call(method, args, {
      ...(timeoutMs !== undefined ? { timeoutMs } : {}),
      ...(context ? { context } : {}),
    })) as T;
  }

  async connect(): Promise<void> {
    this.#link();
  }

  discover(): Promise<DiscoverySnapshot> {
    return this.#call('discover', []);
  }

  watch(signal: AbortSignal): AsyncIterable<InventoryDelta> {
    return this.#link().deltas(signal);
  }

  startVm(id: string, context: ActionContext): Promise<DiscoveredVm> {
    return this.#call('startVm', [id], 60_000, context);
  }

  stopVm(
    id: string,
    context: ActionContext,
    options: { force?: boolean } = {},
  ): Promise<DiscoveredVm> {
    return this.#call('stopVm', [id, options], 10 * 60_000, context);
  }

  rebootVm(id: string): Promise<DiscoveredVm> {
    return this.#call('rebootVm', [id]);
  }

  resetVm(id: string): Promise<DiscoveredVm> {
    return this.#call('resetVm', [id]);
  }

  suspendVm(id: string): Promise<DiscoveredVm> {
    return this.#call('suspendVm', [id]);
  }

  resumeVm(id: string): Promise<DiscoveredVm> {
    return this.#call('resumeVm', [id]);
  }

  deleteVm(id: string): Promise<null> {
    return this.#call('deleteVm', [id]);
  }

  createVm(spec: VmSpec, context: ActionContext): Promise<DiscoveredVm> {
    return this.#call('createVm', [spec], 5 * 60_000, context);
  }

  checkNewVm(spec: VmSpec): Promise<VmFootprint> {
    return this.#call('checkNewVm', [spec]);
  }

  /** The counters the agent sent with its last heartbeat (a few seconds old at most). */
  async vmMetrics(id: string): Promise<VmMetrics | null> {
    return this.#link().metrics(id) ?? null;
  }

  cloneVm(id: string, options: CloneOptions, context: ActionContext): Promise<DiscoveredVm> {
    return this.#call('cloneVm', [id, options], 60 * 60_000, context);
  }

  listSnapshots(id: string): Promise<SnapshotInfo[]> {
    return this.#call('listSnapshots', [id]);
  }

  createSnapshot(
    id: string,
    name: string,
    context: ActionContext,
  ): Promise<{ snapshot: SnapshotInfo; vm: DiscoveredVm }> {
    // Saving a guest's memory takes as long as writing it to disk.
    return this.#call('createSnapshot', [id, name], 30 * 60_000, context);
  }

  revertSnapshot(id: string, snapshotId: string, context: ActionContext): Promise<DiscoveredVm> {
    return this.#call('revertSnapshot', [id, snapshotId], 30 * 60_000, context);
  }

  deleteSnapshot(id: string, snapshotId: string, context: ActionContext): Promise<DiscoveredVm> {
    return this.#call('deleteSnapshot', [id, snapshotId], 10 * 60_000, context);
  }

  openConsole(id: string, kind: ConsoleKind): Promise<Duplex> {
    return this.#link().openConsole(id, kind);
  }

  // Live migration between agents: the control plane drives both ends (services/vms/agent-migration.ts).
  exportVm(id: string): Promise<MigrationPackage> {
    return this.#call('exportVm', [id], 60_000);
  }

  prepareIncoming(pkg: MigrationPackage, options: IncomingOptions): Promise<IncomingEndpoint> {
    return this.#call('prepareIncoming', [pkg, options], 10 * 60_000);
  }

  incomingState(id: string): Promise<'receiving' | 'received' | 'failed'> {
    return this.#call('incomingState', [id]);
  }

  outgoingState(id: string): Promise<'sending' | 'departed' | 'stayed' | 'gone'> {
    return this.#call('outgoingState', [id]);
  }

  sendMigration(
    id: string,
    incoming: IncomingEndpoint,
    options: MigrateOptions & { multifdChannels?: number },
    context: ActionContext,
  ): Promise<MigrationResult> {
    return this.#call('sendMigration', [id, incoming, options], 24 * 60 * 60_000, context);
  }

  finishIncoming(id: string): Promise<DiscoveredVm> {
    return this.#call('finishIncoming', [id], 60_000);
  }

  cleanupOutgoing(id: string): Promise<null> {
    return this.#call('cleanupOutgoing', [id], 60_000);
  }

  abortIncoming(id: string): Promise<null> {
    return this.#call('abortIncoming', [id], 60_000);
  }

  async migrateVm(
    _id: string,
    _target: string,
    _context: ActionContext,
    _options?: MigrateOptions,
  ): Promise<DiscoveredVm> {
    throw new ZenithError('ZEN_UNSUPPORTED', 'live migration between agents is not available yet');
  }

  async close(): Promise<void> {
    // The link belongs to the agent hub; nothing to release here.
  }
}
