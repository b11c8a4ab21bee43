/**
 * The driver of a host reached through its agent: every operation is a call
 * over the agent's channel, answered by the QEMU driver the agent runs.
 */
import type { Duplex } from 'node:stream';
import { ZenithError } from '../../core/errors.js';
import type {
  ActionContext,
  FacetName,
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
import { qemuCapabilities } from '../qemu/qemu-driver.js';
import { AgentCaller } from './agent-caller.js';
import type { AgentLink } from '../../protocols/agent-channel/agent-link.js';
import { agentCalls } from '../../protocols/agent-channel/call-map.js';
import { formatVersion } from '../../protocols/agent-channel/version.js';
import { AgentDiskStreams } from './agent-disk-streams.js';
import { AgentGuestAgent } from './agent-guest-agent.js';
import { AgentMigrationEndpoint } from './agent-migration-endpoint.js';
import { AgentPortableVms } from './agent-portable-vms.js';
import { AgentStorageScan } from './agent-storage-scan.js';
import { AgentSyncReplication } from './agent-sync-replication.js';

/** The facets a later protocol added, by the first method of each. */
const facetSince = {
  portableVms: 'runVm',
  diskStreams: 'openDiskReader',
  guestAgent: 'waitForGuestAgent',
  // From 1.9: a replica's points are folded in it (1.8's facet had no mergePoint).
  syncReplication: 'mergeReplicaPoint',
  storageScan: 'startStorageScan',
} as const;
const isVersioned = (name: FacetName): name is keyof typeof facetSince =>
  Object.hasOwn(facetSince, name);

export class AgentDriver implements HypervisorDriver {
  readonly info: DriverInfo = { type: 'agent', simulated: false, capabilities: qemuCapabilities };

  readonly #agent: AgentCaller;
  readonly #migration: AgentMigrationEndpoint;
  readonly #portableVms: AgentPortableVms;
  readonly #diskStreams: AgentDiskStreams;
  readonly #guestAgent: AgentGuestAgent;
  readonly #syncReplication: AgentSyncReplication;
  readonly #storageScan: AgentStorageScan;

  constructor(link: () => AgentLink | undefined) {
    this.#agent = new AgentCaller(link);
    this.#migration = new AgentMigrationEndpoint(this.#agent);
    this.#portableVms = new AgentPortableVms(this.#agent);
    this.#diskStreams = new AgentDiskStreams(this.#agent);
    this.#guestAgent = new AgentGuestAgent(this.#agent);
    this.#syncReplication = new AgentSyncReplication(this.#agent);
    this.#storageScan = new AgentStorageScan(this.#agent);
  }

  /**
   * What the agent can do depends on the protocol version it speaks (asked anew each time). The
   * migration facet is in every version; the portable-VM facet (1.1), the disk-stream facet (1.5),
   * the guest-agent facet (1.7), the synchronous-replication facet (1.9) and the storage-scan facet
   * (1.10) only while an agent of
   * that version or later is connected: a disconnected agent has no version, and nothing it could
   * be asked to do now.
   */
  get facets(): {
    migration: AgentMigrationEndpoint;
    portableVms?: AgentPortableVms;
    diskStreams?: AgentDiskStreams;
    guestAgent?: AgentGuestAgent;
    syncReplication?: AgentSyncReplication;
    storageScan?: AgentStorageScan;
  } {
    const link = this.#agent.open();
    return {
      migration: this.#migration,
      ...(link?.supports(facetSince.portableVms) ? { portableVms: this.#portableVms } : {}),
      ...(link?.supports(facetSince.diskStreams) ? { diskStreams: this.#diskStreams } : {}),
      ...(link?.supports(facetSince.guestAgent) ? { guestAgent: this.#guestAgent } : {}),
      ...(link?.supports(facetSince.syncReplication)
        ? { syncReplication: this.#syncReplication }
        : {}),
      ...(link?.supports(facetSince.storageScan) ? { storageScan: this.#storageScan } : {}),
    };
  }

  /** Why a facet of a later protocol is absent: the agent is away, or speaks a version without it. */
  facetRefusal(name: FacetName, purpose: string): ZenithError | undefined {
    if (!isVersioned(name)) return undefined;
    const link = this.#agent.open();
    if (!link)
      return new ZenithError(
        'ZEN_CONNECTION_DISCONNECTED',
        `cannot ${purpose}: the host agent is not connected (whether it has the '${name}' facet is known when it is back)`,
        { facet: name },
      );
    const method = facetSince[name];
    if (link.supports(method)) return undefined;
    return new ZenithError(
      'ZEN_UNSUPPORTED',
      `cannot ${purpose}: the host agent speaks the agent channel protocol ${formatVersion(link.protocol)}, which has no '${name}' facet (since ${formatVersion(agentCalls[method].since)}): upgrade the agent`,
      { facet: name, agentProtocol: formatVersion(link.protocol) },
    );
  }

  #link(): AgentLink {
    return this.#agent.connected();
  }

  async connect(): Promise<void> {
    this.#link();
  }

  discover(): Promise<DiscoverySnapshot> {
    return this.#agent.call('discover', []);
  }

  watch(signal: AbortSignal): AsyncIterable<InventoryDelta> {
    return this.#link().deltas(signal);
  }

  startVm(id: string, context: ActionContext): Promise<DiscoveredVm> {
    return this.#agent.call('startVm', [id], 60_000, context);
  }

  stopVm(
    id: string,
    context: ActionContext,
    options: { force?: boolean } = {},
  ): Promise<DiscoveredVm> {
    return this.#agent.call('stopVm', [id, options], 10 * 60_000, context);
  }

  rebootVm(id: string): Promise<DiscoveredVm> {
    return this.#agent.call('rebootVm', [id]);
  }

  resetVm(id: string): Promise<DiscoveredVm> {
    return this.#agent.call('resetVm', [id]);
  }

  suspendVm(id: string): Promise<DiscoveredVm> {
    return this.#agent.call('suspendVm', [id]);
  }

  resumeVm(id: string): Promise<DiscoveredVm> {
    return this.#agent.call('resumeVm', [id]);
  }

  deleteVm(id: string): Promise<null> {
    return this.#agent.call('deleteVm', [id]);
  }

  createVm(spec: VmSpec, context: ActionContext): Promise<DiscoveredVm> {
    return this.#agent.call('createVm', [spec], 5 * 60_000, context);
  }

  checkNewVm(spec: VmSpec): Promise<VmFootprint> {
    return this.#agent.call('checkNewVm', [spec]);
  }

  /** The counters the agent sent with its last heartbeat (a few seconds old at most). */
  async vmMetrics(id: string): Promise<VmMetrics | null> {
    return this.#link().metrics(id) ?? null;
  }

  cloneVm(id: string, options: CloneOptions, context: ActionContext): Promise<DiscoveredVm> {
    return this.#agent.call('cloneVm', [id, options], 60 * 60_000, context);
  }

  listSnapshots(id: string): Promise<SnapshotInfo[]> {
    return this.#agent.call('listSnapshots', [id]);
  }

  createSnapshot(
    id: string,
    name: string,
    context: ActionContext,
  ): Promise<{ snapshot: SnapshotInfo; vm: DiscoveredVm }> {
    // Saving a guest's memory takes as long as writing it to disk.
    return this.#agent.call('createSnapshot', [id, name], 30 * 60_000, context);
  }

  revertSnapshot(id: string, snapshotId: string, context: ActionContext): Promise<DiscoveredVm> {
    return this.#agent.call('revertSnapshot', [id, snapshotId], 30 * 60_000, context);
  }

  deleteSnapshot(id: string, snapshotId: string, context: ActionContext): Promise<DiscoveredVm> {
    return this.#agent.call('deleteSnapshot', [id, snapshotId], 10 * 60_000, context);
  }

  openConsole(id: string, kind: ConsoleKind): Promise<Duplex> {
    return this.#link().openConsole(id, kind);
  }

  async migrateVm(
    _id: string,
    _target: string,
    _context: ActionContext,
    _options?: MigrateOptions,
  ): Promise<DiscoveredVm> {
    // One agent is one host: migrations go to another connection's host (the migration facet).
    throw new ZenithError(
      'ZEN_UNSUPPORTED',
      'an agent connection has one host: migrate to a host of another connection',
    );
  }

  async close(): Promise<void> {
    // The link belongs to the agent hub; nothing to release here.
  }
}
