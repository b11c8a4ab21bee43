/**
 * Migration of a VM to a host of another connection, through the migration
 * facets of both ends (hypervisors/facets/migration-endpoint.ts), the same
 * for every family: the destination gets ready and reports nothing of the VM,
 * the source sends it, and only once the destination has it — and the
 * inventory has re-homed the same object (matched by its UUID) — does the
 * source let go. A failure or a cancellation leaves the VM running on the
 * source and the destination cleaned up, so its location history simply
 * continues on the new host, or stays.
 *
 * If the source's end falls silent in mid-migration (an agent killed), its
 * hypervisor may carry on sending: where both ends can say how a migration
 * stands, the destination then tells how it ended, and the source settles its
 * side when it returns.
 */
import { isZenithError, ZenithError } from '../../core/errors.js';
import {
  facetOf,
  type ActionContext,
  type MigrationEndpoint,
  type SendOptions,
} from '../../hypervisors/driver.js';
import type { ConnectionService } from '../connections/connection-service.js';
import type { InventoryService } from '../inventory/inventory-service.js';
import type { ManagedObject } from '../inventory/model.js';

export interface MigrationStats {
  /** From the first byte sent to the switch-over (null when the source went silent and could not say). */
  totalTimeMs: number | null;
  /** How long the guest was paused: the hypervisor's figure, plus the disk hand-over of a storage migration. */
  downtimeMs: number | null;
  transferredBytes: number | null;
  /** Disk bytes a storage migration copied, where the family counts them. */
  diskBytes?: number | null;
}

/** How long the destination may go on receiving after the source's end fell silent. */
const silentSourceGraceMs = 10 * 60_000;

interface MigrationEnds {
  source: MigrationEndpoint;
  target: MigrationEndpoint;
}

/**
 * The two ends of a migration between these connections; refuses (ZEN_UNSUPPORTED, before
 * anything is queued) ends that cannot migrate to each other.
 */
export function migrationEnds(
  connections: ConnectionService,
  sourceConnectionId: string,
  targetConnectionId: string,
  targetHostId: string,
): MigrationEnds {
  const source = facetOf(connections.driver(sourceConnectionId), 'migration');
  const target = facetOf(connections.driver(targetConnectionId), 'migration');
  if (!source || !target || source.protocol !== target.protocol)
    throw new ZenithError(
      'ZEN_UNSUPPORTED',
      'migration between hosts of different connections is supported between QEMU hosts under Zenith (agents or its own) or two libvirt connections',
      { targetHostId },
    );
  if (source.guestKind !== target.guestKind)
    throw new ZenithError(
      'ZEN_UNSUPPORTED',
      `a ${source.guestKind} VM cannot move to a ${target.guestKind} host`,
    );
  source.checkOutgoing?.();
  target.checkIncoming?.();
  return { source, target };
}

/**
 * Whether both connections are QEMU hosts under Zenith (agents, or the control plane's own),
 * between which placement plans moves.
 */
export function canMigrateAcrossAgents(
  connections: ConnectionService,
  sourceConnectionId: string,
  targetConnectionId: string,
): boolean {
  return [sourceConnectionId, targetConnectionId].every(
    (id) => facetOf(connections.driver(id), 'migration')?.protocol === 'qemu',
  );
}

export async function migrateAcrossHosts(
  deps: { inventory: InventoryService; connections: ConnectionService },
  vm: ManagedObject,
  targetHost: ManagedObject,
  options: SendOptions,
  context: ActionContext,
): Promise<MigrationStats> {
  const { source, target } = migrationEnds(
    deps.connections,
    vm.connectionId!,
    targetHost.connectionId!,
    targetHost.id,
  );
  context.progress({ percent: 0, message: 'preparing the destination' });
  const offer = await source.exportVm(vm.externalId!);
  const id = offer.migrationId;
  const incoming = await target.prepareIncoming(offer, {
    withStorage: options.withStorage === true,
    ...(options.multifdChannels ? { multifdChannels: options.multifdChannels } : {}),
  });
  let stats: MigrationStats;
  let resumesAtFinish = false;
  try {
    const { resumesAtFinish: paused, ...result } = await source.send(
      id,
      incoming,
      options,
      context,
    );
    stats = result;
    resumesAtFinish = paused === true;
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
  try {
    const arrived = await target.finishIncoming(id);
    const handOverMs = Math.round(performance.now() - handOver);
    if (resumesAtFinish && stats.downtimeMs !== null && stats.downtimeMs !== undefined)
      stats = { ...stats, downtimeMs: stats.downtimeMs + handOverMs };
    // The destination's report re-homes the same inventory object (matched by UUID) before the source lets go.
    await deps.inventory.applyChanges(targetHost.connectionId!, [arrived]);
  } catch (error) {
    await source.finishOutgoing(id, false).catch(() => undefined);
    throw error;
  }
  // An unreachable source settles its side itself when it returns (it finds its VM gone).
  await source.finishOutgoing(id, true).catch(() => undefined);
  return stats;
}

/**
 * The source's end went silent: waits for the destination to have the VM or
 * to have lost it, or for the returning source to say the VM stayed. Ends
 * that cannot say how a migration stands count as lost.
 */
async function arrival(
  source: MigrationEndpoint,
  target: MigrationEndpoint,
  id: string,
  context: ActionContext,
): Promise<'received' | 'failed'> {
  if (!target.incomingState || !source.outgoingState) return 'failed';
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
