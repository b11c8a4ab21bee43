/**
 * What the agent does for each call of the channel's call map: one line per
 * method, on the host's QEMU driver and its facets. The protocol's dispatcher
 * has checked the arguments before a handler runs.
 */
import type { Static } from 'typebox';
import type { QemuDriver } from '../hypervisors/qemu/qemu-driver.js';
import { qemuOffer, qemuTarget } from '../hypervisors/qemu/qemu-migration-endpoint.js';
import { check } from '../protocols/agent-channel/codec.js';
import type { CallHandlers } from '../protocols/agent-channel/dispatcher.js';
import { DiscoverySnapshot } from '../protocols/agent-channel/values.js';
import type { DiskStreamMethod } from './disk-stream-handles.js';
import type { HaMethod } from './ha-call-handlers.js';
import type { StorageScanMethod } from './storage-scan-handles.js';

/**
 * Every call but high availability's (ha-call-handlers.ts), the disk streams'
 * (disk-stream-handles.ts) and the storage scans' (storage-scan-handles.ts).
 */
export function qemuCallHandlers(
  driver: QemuDriver,
): Omit<CallHandlers, HaMethod | DiskStreamMethod | StorageScanMethod> {
  const migration = driver.facets.migration;
  const portable = driver.facets.portableVms;
  const sync = driver.facets.syncReplication;
  return {
    // The driver's type lets any object be a VM; the channel's says a VM has a host and a power state.
    discover: async () =>
      check<Static<typeof DiscoverySnapshot>>(
        DiscoverySnapshot,
        await driver.discover(),
        'the discovery',
      ),
    startVm: ([id], context) => driver.startVm(id, context),
    stopVm: ([id, options], context) => driver.stopVm(id, context, options),
    rebootVm: ([id]) => driver.rebootVm(id),
    resetVm: ([id]) => driver.resetVm(id),
    suspendVm: ([id]) => driver.suspendVm(id),
    resumeVm: ([id]) => driver.resumeVm(id),
    deleteVm: ([id], context) => driver.deleteVm(id, context),
    createVm: ([spec], context) => driver.createVm(spec, context),
    checkNewVm: ([spec]) => driver.checkNewVm(spec),
    cloneVm: ([id, options], context) => driver.cloneVm(id, options, context),
    listSnapshots: ([id]) => driver.listSnapshots(id),
    createSnapshot: ([id, name], context) => driver.createSnapshot(id, name, context),
    revertSnapshot: ([id, snapshot], context) => driver.revertSnapshot(id, snapshot, context),
    deleteSnapshot: ([id, snapshot], context) => driver.deleteSnapshot(id, snapshot, context),
    // The migration facet, in the channel's terms since protocol 1.0 (a package, an endpoint).
    exportVm: async ([id]) => (await migration.exportVm(id)).payload,
    prepareIncoming: async ([pkg, options]) =>
      (await migration.prepareIncoming(qemuOffer(pkg), options)).payload,
    sendMigration: async ([id, incoming, options], context) => {
      const { resumesAtFinish: _, ...result } = await migration.send(
        id,
        qemuTarget(incoming),
        options,
        context,
      );
      return result;
    },
    finishIncoming: ([id]) => migration.finishIncoming(id),
    cleanupOutgoing: async ([id]) => {
      await migration.finishOutgoing(id, true);
      return null;
    },
    keepOutgoing: async ([id]) => {
      await migration.finishOutgoing(id, false);
      return null;
    },
    abortIncoming: async ([id]) => {
      await migration.abortIncoming(id);
      return null;
    },
    incomingState: ([id]) => migration.incomingState(id),
    outgoingState: ([id]) => migration.outgoingState(id),
    describeVm: ([id]) => portable.describeVm(id),
    runVm: ([vm, options], context) => portable.runVm(vm, options, context),
    waitForGuestAgent: async ([id, timeoutMs], context) => {
      await driver.facets.guestAgent.waitForGuestAgent(id, timeoutMs, context);
      return null;
    },
    // Synchronous replication: each call finds the replica's daemons again by their directory.
    startReplica: ([request]) => sync.startReplica(request),
    findReplica: ([directory]) => sync.findReplica(directory),
    takeReplicaPoint: ([directory, points]) => sync.takePoint(directory, points),
    mergeReplicaPoint: async ([directory, merge]) => {
      await sync.mergePoint(directory, merge);
      return null;
    },
    stopReplica: async ([directory]) => {
      await sync.stopReplica(directory);
      return null;
    },
    startSyncMirror: ([id, diskId, target, options]) =>
      sync.startMirror(id, diskId, target, options),
    syncMirrorStatus: ([id, diskId]) => sync.mirrorStatus(id, diskId),
    stopSyncMirror: ([id, diskId]) => sync.stopMirror(id, diskId),
  };
}
