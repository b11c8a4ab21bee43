/**
 * Live migration between two libvirt connections (two libvirt hosts). The
 * source daemon migrates peer to peer to the destination daemon, which it
 * reaches by the destination connection's migration URI; the control plane
 * asks, follows the progress and settles the inventory. While the domain
 * moves, both drivers hold back its events, so the VM is never seen twice or
 * missing: the destination's report re-homes the same inventory object (same
 * UUID) before the source lets go. A failure leaves the VM on the source.
 */
import { ZenithError } from '../../core/errors.js';
import type { ActionContext, MigrateOptions } from '../../hypervisors/driver.js';
import { LibvirtDriver } from '../../hypervisors/libvirt/libvirt-driver.js';
import type { MigrationStats } from '../../hypervisors/libvirt/libvirt-migration.js';
import type { ConnectionService } from '../connections/connection-service.js';
import type { InventoryService } from '../inventory/inventory-service.js';
import type { ManagedObject } from '../inventory/model.js';

export function isLibvirtPair(
  connections: ConnectionService,
  sourceConnectionId: string,
  targetConnectionId: string,
): boolean {
  return (
    connections.driver(sourceConnectionId) instanceof LibvirtDriver &&
    connections.driver(targetConnectionId) instanceof LibvirtDriver
  );
}

/** Refuses, before anything is queued, a libvirt migration that cannot work. */
export function checkLibvirtMigration(
  connections: ConnectionService,
  sourceConnectionId: string,
  targetConnectionId: string,
): void {
  const source = connections.driver(sourceConnectionId) as LibvirtDriver;
  const target = connections.driver(targetConnectionId) as LibvirtDriver;
  if (!source.info.capabilities.includes('vm.migrate'))
    throw new ZenithError(
      'ZEN_UNSUPPORTED',
      `libvirt's ${source.host.driver} driver cannot migrate VMs through Zenith`,
    );
  if (source.host.driver !== target.host.driver)
    throw new ZenithError(
      'ZEN_UNSUPPORTED',
      `a ${source.host.driver} VM cannot move to a ${target.host.driver} host`,
    );
  if (!target.migrationPeer())
    throw new ZenithError(
      'ZEN_UNSUPPORTED',
      "the target connection reaches its daemon through a local socket: set its 'migrationUri' setting to the URI by which other hosts reach that daemon",
      { setting: 'migrationUri' },
    );
}

export async function migrateBetweenLibvirt(
  deps: { inventory: InventoryService; connections: ConnectionService },
  vm: ManagedObject,
  targetHost: ManagedObject,
  options: MigrateOptions,
  context: ActionContext,
): Promise<MigrationStats> {
  checkLibvirtMigration(deps.connections, vm.connectionId!, targetHost.connectionId!);
  const source = deps.connections.driver(vm.connectionId!) as LibvirtDriver;
  const target = deps.connections.driver(targetHost.connectionId!) as LibvirtDriver;
  const uuid = vm.externalId!;
  target.expectIncoming(uuid);
  let stats: MigrationStats;
  try {
    stats = await source.migrateToPeer(uuid, target.migrationPeer()!, options, context);
  } catch (error) {
    target.abortIncoming(uuid);
    throw error;
  }
  try {
    const arrived = await target.finishIncoming(uuid);
    await deps.inventory.applyChanges(targetHost.connectionId!, [arrived]);
  } finally {
    source.finishOutgoing(uuid);
  }
  return stats;
}
