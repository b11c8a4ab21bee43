/**
 * One replication cycle (./replication-service.ts runs it as the task `replication.cycle`): the
 * VM's disks read from its last point's checkpoints (or in full), written as overlays of that
 * point's images at the target, and the point made ready with the VM's description in one
 * transaction; a cycle cut off is undone (./replica-chain.ts), and points beyond those kept are
 * folded into the base.
 */
import { isZenithError, ZenithError } from '../../core/errors.js';
import { newId } from '../../core/ids.js';
import {
  checkpointTagged,
  facetOf,
  REPLICA_CHECKPOINT_TAG,
  requireFacet,
  type ActionContext,
  type DiskReader,
  type DiskStreamFacet,
} from '../../hypervisors/driver.js';
import type { ReplicationCycleResult } from '../../api/replication.js';
import type { ConnectionService } from '../connections/connection-service.js';
import type { InventoryService } from '../inventory/inventory-service.js';
import type { ManagedObject } from '../inventory/model.js';
import type { PointMerger, ReplicaChain } from './replica-chain.js';
import type { ReplicaLeftovers } from './replica-leftovers.js';
import { copyDisk } from './replica-copy.js';
import type { PointDisk, Replication, ReplicationDeps } from './replica-types.js';

export class ReplicaCycles {
  constructor(
    private readonly deps: ReplicationDeps,
    private readonly chain: ReplicaChain,
    private readonly leftovers: ReplicaLeftovers,
    /** How the replication's points are folded on that target. */
    private readonly mergerOf: (replication: Replication, target: DiskStreamFacet) => PointMerger,
  ) {}

  async run(
    replication: Replication,
    taskId: string,
    context: ActionContext,
  ): Promise<ReplicationCycleResult> {
    const target = this.deps.inventory.index.get(replication.targetHostId);
    if (!target) throw new ZenithError('ZEN_NOT_FOUND', 'the target host is gone');
    const targetStreams = targetStreamsOf(this.deps.connections, target);
    await this.chain.clearCutOff(replication, targetStreams);
    const merger = this.mergerOf(replication, targetStreams);
    await this.chain.finishMerges(replication, targetStreams, merger);
    const vm = presentVm(this.deps.inventory, replication.vmId);
    const source = this.deps.connections.driver(vm.connectionId!);
    const streams = requireFacet(source, 'diskStreams', 'replicating a VM');
    const portable = requireFacet(source, 'portableVms', 'replicating a VM');
    const description = await portable.describeVm(vm.externalId!);
    const disks = await streams.listDisks(vm.externalId!);
    const points = await this.chain.points(replication.id);
    const latest = points.filter((p) => p.state === 'ready').at(-1) ?? null;
    await releaseSourceCheckpoints(
      this.deps,
      replication,
      new Set((latest?.disks ?? []).flatMap((d) => (d.checkpoint ? [d.checkpoint] : []))),
      streams,
      vm,
    );
    const seq = Math.max(0, ...points.map((p) => p.seq)) + 1;
    const now = this.deps.clock.now();
    const pointId = newId('replicaPoint', now);
    const planned: PointDisk[] = disks.map((disk) => ({
      diskId: disk.diskId,
      path: `${replication.directory}/${disk.diskId}-${String(seq).padStart(6, '0')}.qcow2`,
      capacityBytes: disk.capacityBytes,
      backing: null,
      checkpoint: null,
    }));
    // Recorded before a byte is written: a cut-off cycle is found and undone by the next one.
    await this.deps.store.db
      .insertInto('replica_points')
      .values({
        id: pointId,
        replication_id: replication.id,
        seq,
        state: 'writing',
        taken_at: now,
        finished_at: null,
        task_id: taskId,
        disks: JSON.stringify(planned),
        read_bytes: 0,
      })
      .execute();
    let takenAt = Infinity;
    let readBytes = 0;
    let full = false;
    const total = disks.reduce((sum, d) => sum + d.capacityBytes, 0);
    let done = 0;
    try {
      for (const disk of planned) {
        const from = latest?.disks.find(
          (d) => d.diskId === disk.diskId && d.capacityBytes === disk.capacityBytes,
        );
        takenAt = Math.min(takenAt, this.deps.clock.now());
        const reader = await this.#reader(streams, vm, disk.diskId, from, context);
        if (reader.scope === 'full') full = true;
        disk.backing = reader.scope === 'changed' ? from!.path : null;
        const copied = await copyDisk(
          reader,
          targetStreams,
          {
            location: { path: disk.path },
            backing: disk.backing ? { path: disk.backing } : null,
          },
          context,
          (bytes) => {
            done += bytes;
            context.progress({
              percent: Math.min(99, Math.round((100 * done) / Math.max(1, total))),
              message: `replicating ${vm.name} (${disk.diskId})`,
            });
          },
        ).catch(async (error: unknown) => {
          // Its read's checkpoint recorded for nothing: released (the last point's stays).
          if (reader.checkpoint)
            await streams
              .releaseCheckpoint(vm.externalId!, disk.diskId, reader.checkpoint)
              .catch(() => undefined);
          throw error;
        });
        disk.checkpoint = copied.checkpoint;
        readBytes += copied.readBytes;
      }
    } catch (error) {
      await this.chain.discard(pointId, planned, targetStreams, streams, vm);
      throw error;
    }
    const finishedAt = this.deps.clock.now();
    await this.deps.store.transaction(async (tx) => {
      await tx
        .updateTable('replica_points')
        .set({
          state: 'ready',
          taken_at: takenAt,
          finished_at: finishedAt,
          disks: JSON.stringify(planned),
          read_bytes: readBytes,
        })
        .where('id', '=', pointId)
        .execute();
      await tx
        .updateTable('replications')
        .set({ description: JSON.stringify(description), updated_at: finishedAt })
        .where('id', '=', replication.id)
        .execute();
    });
    // The point before's checkpoints are superseded by this one's.
    await releaseSourceCheckpoints(
      this.deps,
      replication,
      new Set(planned.flatMap((d) => (d.checkpoint ? [d.checkpoint] : []))),
      streams,
      vm,
    ).catch((error: unknown) =>
      this.deps.logger.warn({ err: error, vm: vm.name }, 'releasing superseded checkpoints failed'),
    );
    const scope = full ? 'full' : 'changed';
    await this.deps.events.publish([
      {
        type: 'replication.cycleFinished',
        objectId: replication.vmId,
        data: { name: replication.vmName, seq, scope, takenAt, readBytes },
      },
    ]);
    const merged = await this.chain.retain(replication, targetStreams, merger);
    // The site holds a ready copy again: what the VM left at its hosts goes (never failing this).
    await this.leftovers
      .reclaim(replication, context)
      .catch((error: unknown) =>
        this.deps.logger.warn({ err: error, vm: vm.name }, 'reclaiming leftovers failed'),
      );
    return { vmId: replication.vmId, pointId, seq, scope, takenAt, readBytes, merged };
  }

  /** What changed since the last point where the disk still has its checkpoint; else all of it. */
  async #reader(
    streams: DiskStreamFacet,
    vm: ManagedObject,
    diskId: string,
    from: PointDisk | undefined,
    context: ActionContext,
  ): Promise<DiskReader> {
    const options = { checkpointTag: REPLICA_CHECKPOINT_TAG };
    if (from?.checkpoint)
      try {
        return await streams.openReader(
          vm.externalId!,
          diskId,
          { ...options, changedSince: { name: from.checkpoint } },
          context,
        );
      } catch (error) {
        if (!isZenithError(error) || error.details.checkpoint !== 'lost') throw error;
        this.deps.logger.info(
          { vm: vm.name, diskId, why: error.details.why },
          "the replica's checkpoint is lost: the disk is copied in full",
        );
      }
    return streams.openReader(vm.externalId!, diskId, options, context);
  }
}

export function presentVm(inventory: InventoryService, vmId: string): ManagedObject {
  const vm = inventory.index.get(vmId);
  if (!vm || vm.kind !== 'vm' || vm.status !== 'present' || !vm.connectionId || !vm.externalId)
    throw new ZenithError(
      'ZEN_INVALID_STATE',
      `${vm?.name ?? vmId} is not present: its host does not report it`,
      {
        vmId,
      },
    );
  return vm;
}

export function targetStreamsOf(
  connections: ConnectionService,
  host: ManagedObject,
): DiskStreamFacet {
  if (!host.connectionId)
    throw new ZenithError('ZEN_INVALID_STATE', `${host.name} has no connection`, {
      hostId: host.id,
    });
  return requireFacet(connections.driver(host.connectionId), 'diskStreams', 'keeping replicas');
}

/** Ends replication's checkpoints of the VM's disks other than `keep` (strays and superseded ones). */
export async function releaseSourceCheckpoints(
  deps: Pick<ReplicationDeps, 'inventory' | 'connections'>,
  replication: Replication,
  keep: Set<string>,
  streams?: DiskStreamFacet,
  vm?: ManagedObject,
): Promise<void> {
  const found = vm ?? deps.inventory.index.get(replication.vmId);
  if (!found?.connectionId || !found.externalId || found.status !== 'present') return;
  const facet = streams ?? facetOf(deps.connections.driver(found.connectionId), 'diskStreams');
  if (!facet) return;
  for (const disk of await facet.listDisks(found.externalId))
    for (const checkpoint of await facet.listCheckpoints(found.externalId, disk.diskId))
      if (checkpointTagged(checkpoint.name, REPLICA_CHECKPOINT_TAG) && !keep.has(checkpoint.name))
        await facet.releaseCheckpoint(found.externalId, disk.diskId, checkpoint);
}
