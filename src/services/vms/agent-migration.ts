/**
 * Live migration between two hosts run by agents. The control plane drives
 * both ends: the destination starts a QEMU waiting for the migration (and, for
 * a storage migration, empty disks served over NBD), the source sends the
 * running VM, and only once the destination runs it is the source's QEMU
 * ended. A failure or a cancellation leaves the VM running on the source and
 * the destination cleaned up. The VM keeps its Zenith identity (by its UUID),
 * so its location history simply continues on the new host.
 *
 * If the source's agent goes silent in mid-migration, its QEMU carries on
 * sending: the destination then tells how it ended, and the source's agent
 * settles its side when it returns.
 */
import { isZenithError, ZenithError } from '../../core/errors.js';
import { AgentDriver } from '../../hypervisors/agent/agent-driver.js';
import type {
  ActionContext,
  DiscoveredVm,
  HypervisorDriver,
  MigrateOptions,
} from '../../hypervisors/driver.js';
import { QemuDriver } from '../../hypervisors/qemu/qemu-driver.js';
import type {
  IncomingEndpoint,
  IncomingOptions,
  MigrationPackage,
  MigrationResult,
} from '../../hypervisors/qemu/qemu-migration.js';
import type { ConnectionService } from '../connections/connection-service.js';
import type { InventoryService } from '../inventory/inventory-service.js';
import type { ManagedObject } from '../inventory/model.js';

export interface MigrationStats {
  /** From the first byte sent to the switch-over (null when the source went silent and could not say). */
  totalTimeMs: number | null;
  /** How long the guest was paused: QEMU's figure, plus the disk hand-over of a storage migration. */
  downtimeMs: number | null;
  transferredBytes: number | null;
  diskBytes: number | null;
}

export type AgentMigrateOptions = MigrateOptions & { multifdChannels?: number };

/** How long the destination may go on receiving after the source's agent fell silent. */
const silentSourceGraceMs = 10 * 60_000;

/** One end of a migration between QEMU hosts: a host agent, or the control plane's own QEMU host. */
interface MigrationEnd {
  exportVm(id: string): Promise<MigrationPackage>;
  prepareIncoming(pkg: MigrationPackage, options: IncomingOptions): Promise<IncomingEndpoint>;
  incomingState(id: string): Promise<'receiving' | 'received' | 'failed'>;
  outgoingState(id: string): Promise<'sending' | 'departed' | 'stayed' | 'gone'>;
  sendMigration(
    id: string,
    incoming: IncomingEndpoint,
    options: AgentMigrateOptions,
    context: ActionContext,
  ): Promise<MigrationResult>;
  finishIncoming(id: string): Promise<DiscoveredVm>;
  cleanupOutgoing(id: string): Promise<null>;
  abortIncoming(id: string): Promise<null>;
}

function endOf(driver: HypervisorDriver): MigrationEnd | undefined {
  if (driver instanceof AgentDriver) return driver;
  if (driver instanceof QemuDriver)
    return {
      exportVm: (id) => driver.exportVm(id),
      prepareIncoming: (pkg, options) =>
        driver.prepareIncoming(pkg, driver.migrationAddress, options),
      incomingState: (id) => driver.incomingState(id),
      outgoingState: (id) => driver.outgoingState(id),
      sendMigration: (id, incoming, options, context) =>
        driver.sendMigration(id, incoming, options, context),
      finishIncoming: (id) => driver.finishIncoming(id),
      cleanupOutgoing: (id) => driver.cleanupOutgoing(id),
      abortIncoming: (id) => driver.abortIncoming(id),
    };
  return undefined;
}

/** Whether both hosts run QEMU under Zenith (an agent, or the control plane's own QEMU host). */
export function canMigrateAcrossAgents(
  connections: ConnectionService,
  sourceConnectionId: string,
  targetConnectionId: string,
): boolean {
  return (
    endOf(connections.driver(sourceConnectionId)) !== undefined &&
    endOf(connections.driver(targetConnectionId)) !== undefined
  );
}

export async function migrateAcrossAgents(
  deps: { inventory: InventoryService; connections: ConnectionService },
  vm: ManagedObject,
  targetHost: ManagedObject,
  options: AgentMigrateOptions,
  context: ActionContext,
): Promise<MigrationStats> {
  const source = endOf(deps.connections.driver(vm.connectionId!));
  const target = endOf(deps.connections.driver(targetHost.connectionId!));
  if (!source || !target) {
    throw new ZenithError(
      'ZEN_UNSUPPORTED',
      'live migration between these hosts is not supported (both must run QEMU under Zenith)',
    );
  }
  const withStorage = options.withStorage === true;
  context.progress({ percent: 0, message: 'preparing the destination' });
  const pkg = await source.exportVm(vm.externalId!);
  const id = pkg.record.id;
  const incoming = await target.prepareIncoming(pkg, {
    withStorage,
    ...(options.multifdChannels ? { multifdChannels: options.multifdChannels } : {}),
  });
  let stats: MigrationStats;
  try {
    stats = await source.sendMigration(id, incoming, options, context);
  } catch (error) {
    const silent =
      isZenithError(error) &&
      (error.code === 'ZEN_CONNECTION_DISCONNECTED' || error.code === 'ZEN_TIMEOUT');
    if (!silent || (await arrival(source, target, id, context)) !== 'received') {
      await target.abortIncoming(id).catch(() => undefined);
      throw error;
    }
    stats = { totalTimeMs: null, downtimeMs: null, transferredBytes: null, diskBytes: null };
  }
  const handOver = performance.now();
  const arrived = await target.finishIncoming(id);
  const handOverMs = Math.round(performance.now() - handOver);
  // The destination's report re-homes the same inventory object (matched by UUID) before the source lets go.
  await deps.inventory.applyChanges(targetHost.connectionId!, [arrived]);
  // An unreachable source settles its side itself when its agent returns (it finds its QEMU finished).
  await source.cleanupOutgoing(id).catch(() => undefined);
  return {
    ...stats,
    downtimeMs:
      withStorage && stats.downtimeMs !== null ? stats.downtimeMs + handOverMs : stats.downtimeMs,
  };
}

/**
 * The source's agent went silent: waits for the destination to have the VM or
 * to have lost it, or for the returning source to say the VM stayed.
 */
async function arrival(
  source: MigrationEnd,
  target: MigrationEnd,
  id: string,
  context: ActionContext,
): Promise<'received' | 'failed'> {
  const deadline = performance.now() + silentSourceGraceMs;
  context.progress({
    percent: 50,
    message: "the source's agent went silent; asking the destination",
  });
  while (performance.now() < deadline && !context.signal.aborted) {
    const state = await target.incomingState(id).catch(() => 'unknown' as const);
    if (state === 'received' || state === 'failed') return state;
    // Only a source that kept the VM settles it; one that let go ('departed', 'gone') leaves it to the destination.
    const left = await source.outgoingState(id).catch(() => 'unknown' as const);
    if (left === 'stayed') return 'failed';
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  return 'failed';
}
