/**
 * A replica's chain of points in time on its target host: reading the points, undoing a cycle cut
 * off (its images removed, the point kept as failed), and folding the oldest points into the base
 * once more than `keepPoints` are ready (the facet's mergeOverlay; each step safe to run again, so
 * a merge a kill cut off is finished by the next cycle).
 */
import type { Clock } from '../../core/clock.js';
import { isZenithError } from '../../core/errors.js';
import type { Logger } from '../../core/logger.js';
import type { DiskStreamFacet } from '../../hypervisors/driver.js';
import type { Store } from '../../store/store.js';
import type { ManagedObject } from '../inventory/model.js';
import type { PointDisk, ReplicaPoint, Replication } from './replica-types.js';
import { STALL_MS, within } from './replica-copy.js';

/**
 * Folds `overlay` into `backing` (and points `above` at `backing`): the target's mergeOverlay, or
 * for a sync replication the running replica's own (which holds the chain open).
 */
export type PointMerger = (merge: {
  diskId: string;
  overlay: string;
  backing: string;
  above: string | null;
}) => Promise<void>;

/** The target's own fold, as files. */
export function fileMerger(target: DiskStreamFacet): PointMerger {
  return ({ overlay, backing, above }) =>
    target.mergeOverlay!({
      overlay: { path: overlay },
      backing: { path: backing },
      above: above ? { path: above } : null,
    });
}

export class ReplicaChain {
  constructor(private readonly deps: { store: Store; clock: Clock; logger: Logger }) {}

  async points(replicationId: string): Promise<ReplicaPoint[]> {
    const rows = await this.deps.store.db
      .selectFrom('replica_points')
      .selectAll()
      .where('replication_id', '=', replicationId)
      .orderBy('seq')
      .execute();
    return rows.map((row) => ({
      id: row.id,
      replicationId: row.replication_id,
      seq: Number(row.seq),
      state: row.state as ReplicaPoint['state'],
      takenAt: Number(row.taken_at),
      finishedAt: row.finished_at === null ? null : Number(row.finished_at),
      taskId: row.task_id,
      disks: JSON.parse(row.disks) as PointDisk[],
      readBytes: Number(row.read_bytes),
    }));
  }

  /**
   * A cut-off cycle's point: its images removed and the point kept as failed (its history) — or,
   * when the target cannot be reached to remove them, left `writing` for the next cycle to clear.
   */
  async discard(
    pointId: string,
    disks: PointDisk[],
    target: DiskStreamFacet,
    source?: DiskStreamFacet,
    vm?: ManagedObject,
  ): Promise<void> {
    if (source && vm)
      for (const disk of disks)
        if (disk.checkpoint)
          await within(
            5000,
            'releasing a checkpoint',
            source.releaseCheckpoint(vm.externalId!, disk.diskId, { name: disk.checkpoint }),
          ).catch(() => undefined);
    const removed = await within(
      5000,
      "removing a cut-off cycle's images",
      target.removeImages(disks.map((disk) => ({ path: disk.path }))),
    ).then(
      () => true,
      (error: unknown) => {
        this.deps.logger.warn(
          { err: error, pointId },
          "a cut-off cycle's images were not removed: the next cycle removes them",
        );
        return false;
      },
    );
    if (!removed) return;
    await this.deps.store.db
      .updateTable('replica_points')
      .set({ state: 'failed', finished_at: this.deps.clock.now() })
      .where('id', '=', pointId)
      .execute();
  }

  /** Points a killed cycle left `writing`: removed before the next one writes. */
  async clearCutOff(replication: Replication, target: DiskStreamFacet): Promise<void> {
    for (const point of await this.points(replication.id))
      if (point.state === 'writing') {
        this.deps.logger.info(
          { vm: replication.vmName, seq: point.seq },
          'a replication cycle was cut off: what it wrote is removed',
        );
        await within(
          STALL_MS,
          "removing a cut-off cycle's images",
          target.removeImages(point.disks.map((disk) => ({ path: disk.path }))),
        );
        await this.deps.store.db
          .updateTable('replica_points')
          .set({ state: 'failed', finished_at: this.deps.clock.now() })
          .where('id', '=', point.id)
          .execute();
      }
  }

  /** A merge a killed cycle left half-way is finished (each step may be run again). */
  async finishMerges(
    replication: Replication,
    target: DiskStreamFacet,
    merger: PointMerger = fileMerger(target),
  ): Promise<void> {
    const points = await this.points(replication.id);
    for (const point of points.filter((p) => p.state === 'merging')) {
      const later = points.filter((p) => p.seq > point.seq && p.state === 'ready');
      if (later[0]) await this.#merge(point, later[0], later[1] ?? null, target, merger);
    }
  }

  /** Folds the oldest points into the base until `keepPoints` remain; answers how many went. */
  async retain(
    replication: Replication,
    target: DiskStreamFacet,
    merger: PointMerger = fileMerger(target),
  ): Promise<number> {
    let merged = 0;
    for (;;) {
      const ready = (await this.points(replication.id)).filter((p) => p.state === 'ready');
      if (ready.length <= replication.keepPoints) return merged;
      const [base, next, above] = ready;
      await this.deps.store.db
        .updateTable('replica_points')
        .set({ state: 'merging' })
        .where('id', '=', base!.id)
        .execute();
      try {
        await this.#merge(base!, next!, above ?? null, target, merger);
        merged++;
      } catch (error) {
        // A test failover running from these images holds them: kept until it is cleaned up.
        await this.deps.store.db
          .updateTable('replica_points')
          .set({ state: 'ready' })
          .where('id', '=', base!.id)
          .execute();
        if (isZenithError(error) && error.code === 'ZEN_DISK_IN_USE') {
          this.deps.logger.info(
            { vm: replication.vmName, why: error.message },
            'older replica points are kept while a copy runs from them',
          );
          return merged;
        }
        throw error;
      }
    }
  }

  /**
   * The base point goes: `next`'s overlay is folded into its image, which then holds `next`'s
   * point in time under `next`'s name; `above` reads through it directly.
   */
  async #merge(
    base: ReplicaPoint,
    next: ReplicaPoint,
    above: ReplicaPoint | null,
    target: DiskStreamFacet,
    merger: PointMerger,
  ): Promise<void> {
    const nextDisks = next.disks.map((d) => ({ ...d }));
    const aboveDisks = above?.disks.map((d) => ({ ...d })) ?? null;
    const orphans: string[] = [];
    for (const disk of nextDisks) {
      const under = base.disks.find((d) => d.diskId === disk.diskId);
      if (!under) continue;
      if (disk.backing !== under.path) {
        // Copied in full this time: the base's image is not needed by it.
        if (under.path !== disk.path) orphans.push(under.path);
        continue;
      }
      const upper = aboveDisks?.find((d) => d.diskId === disk.diskId && d.backing === disk.path);
      await merger({
        diskId: disk.diskId,
        overlay: disk.path,
        backing: under.path,
        above: upper?.path ?? null,
      });
      if (upper) upper.backing = under.path;
      disk.path = under.path;
      disk.backing = under.backing;
    }
    for (const disk of base.disks)
      if (!nextDisks.some((d) => d.diskId === disk.diskId)) orphans.push(disk.path);
    if (orphans.length > 0) await target.removeImages(orphans.map((path) => ({ path })));
    await this.deps.store.transaction(async (tx) => {
      await tx
        .updateTable('replica_points')
        .set({ state: 'merged' })
        .where('id', '=', base.id)
        .execute();
      await tx
        .updateTable('replica_points')
        .set({ disks: JSON.stringify(nextDisks) })
        .where('id', '=', next.id)
        .execute();
      if (above && aboveDisks)
        await tx
          .updateTable('replica_points')
          .set({ disks: JSON.stringify(aboveDisks) })
          .where('id', '=', above.id)
          .execute();
    });
  }
}
