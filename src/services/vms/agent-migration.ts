/**
 * Live migration between two hosts run by agents. The control plane drives
 * both ends: the destination starts a QEMU waiting for the migration, the
 * source sends the running VM, and only once the destination runs it is the
 * source's QEMU ended. A failure leaves the VM running on the source and the
 * destination cleaned up. The VM keeps its Zenith identity (by its UUID), so
 * its location history simply continues on the new host.
 */
import { ZenithError } from '../../core/errors.js';
import { AgentDriver } from '../../hypervisors/agent/agent-driver.js';
import type { MigrateOptions } from '../../hypervisors/driver.js';
import type { ConnectionService } from '../connections/connection-service.js';
import type { InventoryService } from '../inventory/inventory-service.js';
import type { ManagedObject } from '../inventory/model.js';

export interface MigrationStats {
  totalTimeMs: number;
  downtimeMs: number | null;
  transferredBytes: number;
}

export function canMigrateAcrossAgents(
  connections: ConnectionService,
  sourceConnectionId: string,
  targetConnectionId: string,
): boolean {
  return (
    connections.driver(sourceConnectionId) instanceof AgentDriver &&
    connections.driver(targetConnectionId) instanceof AgentDriver
  );
}

export async function migrateAcrossAgents(
  deps: { inventory: InventoryService; connections: ConnectionService },
  vm: ManagedObject,
  targetHost: ManagedObject,
  options: MigrateOptions,
): Promise<MigrationStats> {
  const source = deps.connections.driver(vm.connectionId!);
  const target = deps.connections.driver(targetHost.connectionId!);
  if (!(source instanceof AgentDriver) || !(target instanceof AgentDriver)) {
    throw new ZenithError(
      'ZEN_UNSUPPORTED',
      'live migration between these hosts is not supported (both must run the Zenith agent)',
    );
  }
  if (options.withStorage)
    throw new ZenithError(
      'ZEN_UNSUPPORTED',
      'storage migration between agents is not available yet; use shared storage',
    );
  const record = (await source.exportVm(vm.externalId!)) as { id: string };
  const { uri } = await target.prepareIncoming(record);
  let stats: MigrationStats;
  try {
    stats = await source.sendMigration(vm.externalId!, uri, options);
  } catch (error) {
    await target.abortIncoming(record.id).catch(() => undefined);
    throw error;
  }
  const arrived = await target.finishIncoming(record.id);
  // The destination's report re-homes the same inventory object (matched by UUID) before the source lets go.
  await deps.inventory.applyChanges(targetHost.connectionId!, [arrived]);
  await source.cleanupOutgoing(vm.externalId!);
  return stats;
}
