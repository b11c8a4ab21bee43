/**
 * A live migration's run after a restart of the control plane, before it settles what the run
 * before left at both ends (cross-host-migration.ts): the VM may be handed over already — only
 * the source's paused copy is left to end — or high availability may have restarted it meanwhile
 * (its source host failed and was fenced) — then the migration is over, and what it left at the
 * destination goes. Otherwise it waits (up to 3 min) for both ends' connections to be back — or,
 * when high availability has declared the destination's host failed, for the source's alone: a
 * switch-over done before that host failed leaves the VM to its failover, which the settling does.
 */
import { ZenithError } from '../../core/errors.js';
import { facetOf } from '../../hypervisors/driver.js';
import type { ConnectionService } from '../connections/connection-service.js';
import type { InventoryService } from '../inventory/inventory-service.js';
import type { ManagedObject } from '../inventory/model.js';

interface Deps {
  inventory: InventoryService;
  connections: ConnectionService;
  /** High availability has declared the host failed. */
  hostFailed?: (hostId: string) => boolean;
}

export interface RetryContext {
  /** The VM as it is now, and the host it is being moved to. */
  vm: ManagedObject;
  targetHost: ManagedObject;
  /** Where the migration began, and the VM's id there (the migration's id at both ends). */
  sourceHostId: string | null;
  migrationId: string | null;
  /** When the migration was asked for. */
  since: number;
  signal: AbortSignal;
}

/** 'handed-over': nothing more to do; 'go on': settle and run the migration (ZEN_INVALID_STATE when it is over). */
export async function beforeMigrationRetry(
  deps: Deps,
  retry: RetryContext,
): Promise<'handed-over' | 'go on'> {
  const { vm, targetHost } = retry;
  const restarted = () => restartedSince(deps.inventory, vm.id, retry.since);
  const sourceConnectionId = retry.sourceHostId
    ? deps.inventory.index.get(retry.sourceHostId)?.connectionId
    : undefined;
  const handedOver =
    sourceConnectionId &&
    sourceConnectionId !== targetHost.connectionId &&
    vm.connectionId === targetHost.connectionId &&
    vm.status === 'present';
  if (handedOver && !(await restarted())) {
    // Only the source's paused copy may be left: it goes once its host answers (a minute at most;
    // a source host that stays away ends it itself when its agent starts again).
    await deps.connections
      .whenConnected([sourceConnectionId], 60_000, retry.signal)
      .catch(() => undefined);
    if (retry.migrationId && deps.connections.connectedIds().includes(sourceConnectionId))
      await endSourceCopy(deps.connections, sourceConnectionId, retry.migrationId);
    return 'handed-over';
  }
  const sourceBack = () => deps.connections.connectedIds().includes(vm.connectionId!);
  await deps.connections.whenConnected(
    [...new Set([vm.connectionId!, targetHost.connectionId!])],
    3 * 60_000,
    retry.signal,
    async () => (await restarted()) || (deps.hostFailed?.(targetHost.id) === true && sourceBack()),
  );
  if (await restarted()) {
    if (retry.migrationId) {
      // Its agent may be reconnecting after the restart: the reception it holds is removed once
      // it answers (a minute at most; one that stays away ends it itself when it starts again).
      await deps.connections
        .whenConnected([targetHost.connectionId!], 60_000, retry.signal)
        .catch(() => undefined);
      await abandonReception(deps.connections, targetHost.connectionId!, retry.migrationId);
    }
    const now = deps.inventory.get(vm.id);
    throw new ZenithError(
      'ZEN_INVALID_STATE',
      `${vm.name} was restarted on ${String(now.computed['location.hostName'] ?? 'another host')} by high availability while its migration was cut off: the migration is over`,
      { hostId: now.computed['location.hostId'] ?? null },
    );
  }
  return 'go on';
}

/** Whether high availability restarted the VM (a failover) since this time. */
async function restartedSince(
  inventory: InventoryService,
  vmId: string,
  since: number,
): Promise<boolean> {
  const [current] = await inventory.locations.history(vmId, { limit: 1 });
  return current?.reason === 'failover' && current.from >= since;
}

/**
 * Removes what a migration cut off left at its destination (best effort: the destination's host
 * may be away too; an agent that restarts removes it itself).
 */
async function abandonReception(
  connections: ConnectionService,
  targetConnectionId: string,
  migrationId: string,
): Promise<void> {
  try {
    await facetOf(connections.driver(targetConnectionId), 'migration')?.abortIncoming(migrationId);
  } catch {
    // Unreachable, or the reception finished: then the VM is there, and nothing is left over.
  }
}

/**
 * Ends the source's copy of a VM handed over already (best effort: a source that does not answer
 * ends it itself when its agent starts again; one that no longer holds it does nothing).
 */
async function endSourceCopy(
  connections: ConnectionService,
  sourceConnectionId: string,
  migrationId: string,
): Promise<void> {
  try {
    await facetOf(connections.driver(sourceConnectionId), 'migration')?.finishOutgoing(
      migrationId,
      true,
    );
  } catch {
    // Unreachable now: settled by the source when it starts again.
  }
}
