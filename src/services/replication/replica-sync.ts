/**
 * A replication's `sync` mode (./replication-service.ts): the protected VM's disks mirrored in
 * write-blocking mode into a replica running at the target host (the driver facet
 * `syncReplication`), every write the guest sees complete already on the replica — RPO 0 — and a
 * point in time taken inside the replica on the replication's schedule, in the same chain of
 * points interval cycles make (base ← … ← point ← the live overlay).
 *
 * - **Setting it up** (`engage`) needs a ready point: the replica's live overlay goes on top of
 *   it and the mirror's first pass (the whole disk: QEMU 7.2's mirror cannot start from a bitmap)
 *   makes it whole. Whatever an attempt before left (a replica, mirrors, live overlays) is taken
 *   down first, so it is safe to run again after a kill.
 * - **Watching it:** the mirror's status is read every few seconds; one that failed or ended, or
 *   whose writes sit unanswered (a silent link: the guest's writes wait on it), is **lost**: it is
 *   taken down (the guest writes on without it), the live overlay is kept as a last point where
 *   the target still answers, the event `replication.syncLost` says why, and interval cycles
 *   (from the last interval point's checkpoint: a superset of what changed since) keep the replica
 *   until the mirror is set up again after a cycle that succeeded.
 * - **Folding** points while the replica runs happens inside it (the facet's `mergePoint`): the
 *   replica holds the chain open.
 * - **Recovering:** a failover takes a last point from the live overlay (it holds every write the
 *   guest saw complete) and stops the replica; a test failover takes a point and leaves the
 *   mirror running; a planned migration stops the replica and runs an interval cycle of the
 *   stopped VM, which holds everything whatever became of the mirror in its last moments.
 *
 * The key (a TLS pre-shared key) is made at protect time, sealed in the database, and given to
 * both ends in the facet's calls.
 */
import { randomBytes } from 'node:crypto';
import { isZenithError, ZenithError } from '../../core/errors.js';
import { newId } from '../../core/ids.js';
import {
  requireFacet,
  type ActionContext,
  type ReplicaPsk,
  type SyncMirrorStatus,
  type SyncReplicationFacet,
} from '../../hypervisors/driver.js';
import type { ManagedObject } from '../inventory/model.js';
import type { ReplicaChain } from './replica-chain.js';
import { within } from './replica-copy.js';
import { presentVm, targetStreamsOf } from './replica-cycles.js';
import type {
  PointDisk,
  ReplicaPoint,
  Replication,
  ReplicationDeps,
  SyncStanding,
} from './replica-types.js';

/** A mirror whose writes sit unanswered this long is lost (the guest's writes wait on it). */
export const SYNC_STALL_MS = 15_000;
/** How often a mirror's status is read. */
export const SYNC_WATCH_MS = 3000;
/** A step at either end (not a mirror's first pass) that takes longer means that end is lost. */
const STEP_MS = 60_000;

export interface SyncLoss {
  code: string;
  message: string;
}

/** A new replication's key: an identity without a colon and 32 random bytes as hex. */
export function newReplicaKey(replicationId: string): ReplicaPsk {
  return {
    identity: `zenith-${replicationId.slice(-12).toLowerCase()}`,
    key: randomBytes(32).toString('hex'),
  };
}

const pad = (seq: number) => String(seq).padStart(6, '0');

export class ReplicaSync {
  /** Per replication: the unanswered bytes last seen and since when (a stall's evidence). */
  readonly #inFlight = new Map<string, { bytes: number; since: number }>();

  constructor(
    private readonly deps: ReplicationDeps,
    private readonly chain: ReplicaChain,
  ) {}

  /** Where the replica's daemons keep their state: below the replica's directory. */
  static directoryOf(replication: Replication): string {
    return `${replication.directory}/sync`;
  }

  #psk(replication: Replication): ReplicaPsk {
    if (!replication.syncKey)
      throw new ZenithError('ZEN_INVALID_STATE', `${replication.vmName} has no replication key`);
    return JSON.parse(this.deps.secrets.open(replication.syncKey)) as ReplicaPsk;
  }

  #target(replication: Replication): { host: ManagedObject; facet: SyncReplicationFacet } {
    const host = this.deps.inventory.index.get(replication.targetHostId);
    if (!host?.connectionId) throw new ZenithError('ZEN_NOT_FOUND', 'the target host is gone');
    return {
      host,
      facet: requireFacet(
        this.deps.connections.driver(host.connectionId),
        'syncReplication',
        'keeping a synchronous replica',
      ),
    };
  }

  #source(replication: Replication): { vm: ManagedObject; facet: SyncReplicationFacet } {
    const vm = presentVm(this.deps.inventory, replication.vmId);
    return {
      vm,
      facet: requireFacet(
        this.deps.connections.driver(vm.connectionId!),
        'syncReplication',
        'mirroring a VM to its replica',
      ),
    };
  }

  /** Both ends can do it (refused with the facet's reason otherwise). */
  check(vm: ManagedObject, target: ManagedObject): void {
    for (const [object, purpose] of [
      [vm, 'mirroring a VM to its replica'],
      [target, 'keeping a synchronous replica'],
    ] as const) {
      if (!object.connectionId)
        throw new ZenithError('ZEN_INVALID_STATE', `${object.name} has no connection`);
      requireFacet(this.deps.connections.driver(object.connectionId), 'syncReplication', purpose);
    }
  }

  async #record(
    replication: Replication,
    standing: Partial<SyncStanding>,
    extra: { nextCycleAt?: number } = {},
  ): Promise<void> {
    const now = this.deps.clock.now();
    await this.deps.store.db
      .updateTable('replications')
      .set({
        ...(standing.state !== undefined
          ? { sync_state: standing.state, sync_since: standing.since ?? now }
          : {}),
        ...(standing.overlays !== undefined
          ? { sync_overlays: JSON.stringify(standing.overlays) }
          : {}),
        ...(standing.error !== undefined
          ? { sync_error: standing.error ? JSON.stringify(standing.error) : null }
          : {}),
        ...(extra.nextCycleAt !== undefined ? { next_cycle_at: extra.nextCycleAt } : {}),
        updated_at: now,
      })
      .where('id', '=', replication.id)
      .execute();
  }

  /**
   * Sets the mirror up on the newest ready point: the replica started at the target, each disk's
   * mirror started at the source and waited for until ready.
   */
  async engage(replication: Replication, context: ActionContext): Promise<void> {
    const points = await this.chain.points(replication.id);
    const latest = points.filter((p) => p.state === 'ready').at(-1);
    if (!latest)
      throw new ZenithError('ZEN_INVALID_STATE', `${replication.vmName} has no ready point yet`);
    const psk = this.#psk(replication);
    const target = this.#target(replication);
    const source = this.#source(replication);
    await this.#record(replication, { state: 'engaging', error: null });
    await this.takeDown(replication, 'a new mirror is set up');
    const seq = Math.max(0, ...points.map((p) => p.seq)) + 1;
    const overlays = Object.fromEntries(
      latest.disks.map((d) => [
        d.diskId,
        `${replication.directory}/${d.diskId}-s${pad(seq)}.qcow2`,
      ]),
    );
    // Recorded before they exist: an attempt a kill cuts off is found and removed.
    await this.#record(replication, { overlays });
    const replica = await within(
      STEP_MS,
      'starting the replica',
      target.facet.startReplica({
        directory: ReplicaSync.directoryOf(replication),
        disks: latest.disks.map((d) => ({
          diskId: d.diskId,
          base: d.path,
          overlay: overlays[d.diskId]!,
        })),
        psk,
      }),
    );
    const total = latest.disks.reduce((sum, d) => sum + d.capacityBytes, 0);
    let done = 0;
    for (const disk of replica.disks) {
      context.progress({
        percent: Math.min(99, Math.round((100 * done) / Math.max(1, total))),
        message: `mirroring ${replication.vmName} (${disk.diskId}) to its replica`,
      });
      const status = await source.facet.startMirror(source.vm.externalId!, disk.diskId, {
        host: disk.host,
        port: disk.port,
        exportName: disk.exportName,
        psk,
      });
      if (status.state !== 'ready')
        throw new ZenithError(
          'ZEN_DRIVER_ERROR',
          `the mirror of ${replication.vmName}'s ${disk.diskId} is ${status.state}, not ready`,
          { diskId: disk.diskId, state: status.state },
        );
      done += latest.disks.find((d) => d.diskId === disk.diskId)?.capacityBytes ?? 0;
    }
    this.#inFlight.delete(replication.id);
    const now = this.deps.clock.now();
    await this.#record(
      replication,
      { state: 'mirroring', since: now, error: null },
      { nextCycleAt: now + replication.intervalSeconds * 1000 },
    );
    await this.deps.events.publish([
      {
        type: 'replication.syncEngaged',
        objectId: replication.vmId,
        data: { name: replication.vmName, disks: replica.disks.length },
      },
    ]);
    this.deps.logger.info(
      { vm: replication.vmName, disks: replica.disks.length },
      'every write of the VM reaches its replica',
    );
  }

  /**
   * Whether the mirror still holds (null) or is lost (why). A step that cannot be answered (the
   * source's host away) says nothing: the mirror lives in the VM's QEMU, not in the channel.
   */
  async watch(replication: Replication): Promise<SyncLoss | null> {
    const points = await this.chain.points(replication.id);
    const latest = points.filter((p) => p.state === 'ready').at(-1);
    if (!latest) return null;
    let source;
    try {
      source = this.#source(replication);
    } catch {
      return null;
    }
    let stalled = false;
    let inFlight = 0;
    for (const disk of latest.disks) {
      let status: SyncMirrorStatus;
      try {
        status = await within(
          10_000,
          'reading the mirror',
          source.facet.mirrorStatus(source.vm.externalId!, disk.diskId),
        );
      } catch (error) {
        this.deps.logger.debug({ err: error, vm: replication.vmName }, 'a mirror was not read');
        return null;
      }
      if (status.state === 'failed')
        return {
          code: 'ZEN_CONNECTION_FAILED',
          message: `the mirror of ${disk.diskId} failed: ${status.error}`,
        };
      if (status.state !== 'ready')
        return {
          code: 'ZEN_INVALID_STATE',
          message: `the mirror of ${disk.diskId} is ${status.state === 'none' ? 'gone' : status.state}`,
        };
      inFlight += status.inFlightBytes;
    }
    const now = this.deps.clock.now();
    const seen = this.#inFlight.get(replication.id);
    if (inFlight === 0) this.#inFlight.delete(replication.id);
    else if (!seen || seen.bytes !== inFlight)
      this.#inFlight.set(replication.id, { bytes: inFlight, since: now });
    else stalled = now - seen.since >= SYNC_STALL_MS;
    if (stalled)
      return {
        code: 'ZEN_TIMEOUT',
        message: `the replica has not answered ${inFlight} bytes of writes for ${Math.round((now - seen!.since) / 1000)} s: the link stalled`,
      };
    return null;
  }

  /**
   * The mirror is lost: recorded first (interval cycles from now on), then taken down; what the
   * live overlay holds is kept as a last point where the target still answers.
   */
  async disengage(replication: Replication, why: SyncLoss): Promise<void> {
    this.#inFlight.delete(replication.id);
    const now = this.deps.clock.now();
    await this.#record(
      replication,
      { state: 'fallback', since: now, error: why },
      { nextCycleAt: now },
    );
    await this.deps.events.publish([
      {
        type: 'replication.syncLost',
        objectId: replication.vmId,
        data: { name: replication.vmName, code: why.code, message: why.message },
      },
    ]);
    this.deps.logger.warn(
      { vm: replication.vmName, code: why.code, why: why.message },
      'the mirror to the replica was lost: interval cycles keep the replica until it is set up again',
    );
    await this.#stopMirrors(replication);
    await this.lastPoint(replication, 'sync:lost').catch((error: unknown) =>
      this.deps.logger.info(
        { err: error, vm: replication.vmName },
        "the replica's live overlay was not kept as a point (the target does not answer)",
      ),
    );
    await this.#quietly(replication, () => this.takeDown(replication, 'the mirror was lost'));
  }

  /**
   * A failed setup: recorded, said (once for the same reason, so a VM that cannot be mirrored is
   * not announced at every cycle), and what it started taken down.
   */
  async engageFailed(replication: Replication, error: unknown): Promise<void> {
    const coded = isZenithError(error)
      ? error
      : new ZenithError('ZEN_DRIVER_ERROR', (error as Error).message);
    const why = { code: coded.code, message: `setting the mirror up failed: ${coded.message}` };
    await this.#record(replication, { state: 'fallback', error: why });
    const before = replication.sync?.error;
    if (before?.code !== why.code || before.message !== why.message) {
      await this.deps.events.publish([
        {
          type: 'replication.syncLost',
          objectId: replication.vmId,
          data: { name: replication.vmName, ...why },
        },
      ]);
      this.deps.logger.warn({ vm: replication.vmName, ...why }, 'the mirror was not set up');
    }
    await this.#quietly(replication, () =>
      this.takeDown(replication, 'setting the mirror up failed'),
    );
  }

  /**
   * The mirror is no longer wanted (a planned migration's final cycle, the replication stopped):
   * recorded as not set up, with no event, then taken down.
   */
  async standDown(replication: Replication, why: string): Promise<void> {
    await this.#record(replication, { state: null, error: null });
    await this.takeDown(replication, why);
  }

  async #quietly(replication: Replication, step: () => Promise<void>): Promise<void> {
    await step().catch((error: unknown) =>
      this.deps.logger.warn(
        { err: error, vm: replication.vmName },
        'the replica was not taken down (the target does not answer): it is, before the mirror is set up again',
      ),
    );
  }

  /**
   * A point taken inside the running replica, recorded ready: what the guest saw written before
   * it is in it. `taskId` names what took it. Answers null when no replica runs at the target.
   */
  async takePoint(replication: Replication, taskId: string): Promise<ReplicaPoint | null> {
    const target = this.#target(replication);
    const directory = ReplicaSync.directoryOf(replication);
    const running = await within(
      STEP_MS,
      'finding the replica',
      target.facet.findReplica(directory),
    );
    if (!running) return null;
    const points = await this.chain.points(replication.id);
    const latest = points.filter((p) => p.state === 'ready').at(-1);
    const seq = Math.max(0, ...points.map((p) => p.seq)) + 1;
    const next = Object.fromEntries(
      running.disks.map((d) => [
        d.diskId,
        `${replication.directory}/${d.diskId}-s${pad(seq + 1)}.qcow2`,
      ]),
    );
    // The new overlays recorded first: a kill between the point and its row leaves them known.
    const live = Object.fromEntries(running.disks.map((d) => [d.diskId, d.overlay]));
    await this.#record(replication, { overlays: { ...live, ...prefixed(next) } });
    const taken = await within(
      STEP_MS,
      'taking a point in the replica',
      target.facet.takePoint(
        directory,
        running.disks.map((d) => ({ diskId: d.diskId, path: next[d.diskId]! })),
      ),
    );
    const takenAt = Math.min(...taken.map((t) => Date.parse(t.takenAt)));
    const disks: PointDisk[] = taken.map((t) => {
      const before = latest?.disks.find((d) => d.diskId === t.diskId);
      const disk = running.disks.find((d) => d.diskId === t.diskId)!;
      return {
        diskId: t.diskId,
        path: t.point,
        capacityBytes: before?.capacityBytes ?? 0,
        // The point before's image (its name may have changed since the replica started: a fold
        // keeps the base's name), which the frozen overlay reads through.
        backing: before?.path ?? disk.base,
        // The last interval point's checkpoint: what changed since it is a superset of what
        // changed since this point, so interval cycles may start there again.
        checkpoint: before?.checkpoint ?? null,
      };
    });
    const id = newId('replicaPoint', takenAt);
    const now = this.deps.clock.now();
    await this.deps.store.transaction(async (tx) => {
      await tx
        .insertInto('replica_points')
        .values({
          id,
          replication_id: replication.id,
          seq,
          state: 'ready',
          taken_at: takenAt,
          finished_at: now,
          task_id: taskId,
          disks: JSON.stringify(disks),
          read_bytes: 0,
        })
        .execute();
      await tx
        .updateTable('replications')
        .set({
          sync_overlays: JSON.stringify(
            Object.fromEntries(taken.map((t) => [t.diskId, t.overlay])),
          ),
          updated_at: now,
        })
        .where('id', '=', replication.id)
        .execute();
    });
    return (await this.chain.points(replication.id)).find((p) => p.id === id) ?? null;
  }

  /**
   * The last point a failover starts from: taken from the live overlay (every write the guest saw
   * complete), the replica then stopped. Null when no replica runs (the latest ready point is it).
   */
  async lastPoint(replication: Replication, taskId: string): Promise<ReplicaPoint | null> {
    const point = await this.takePoint(replication, taskId);
    if (point) await this.takeDown(replication, 'its last point is taken');
    return point;
  }

  /** Stops the VM's mirrors (best effort: the VM may be gone with its site). */
  async #stopMirrors(replication: Replication): Promise<void> {
    let source;
    try {
      source = this.#source(replication);
    } catch {
      return;
    }
    const latest = (await this.chain.points(replication.id))
      .filter((p) => p.state === 'ready')
      .at(-1);
    for (const disk of latest?.disks ?? [])
      await within(
        STEP_MS,
        'stopping a mirror',
        source.facet.stopMirror(source.vm.externalId!, disk.diskId),
      ).catch((error: unknown) =>
        this.deps.logger.warn(
          { err: error, vm: replication.vmName, diskId: disk.diskId },
          'a mirror was not stopped',
        ),
      );
  }

  /**
   * The mirrors stopped, the replica stopped and its live overlays (no point's image) removed.
   * What cannot be reached stays recorded for the next time; throws only when the replica could
   * not be stopped (its overlays are then kept).
   */
  async takeDown(replication: Replication, why: string): Promise<void> {
    const row = await this.deps.store.db
      .selectFrom('replications')
      .select(['sync_overlays'])
      .where('id', '=', replication.id)
      .executeTakeFirst();
    const overlays = row?.sync_overlays
      ? (JSON.parse(row.sync_overlays) as Record<string, string>)
      : {};
    await this.#stopMirrors(replication);
    const host = this.deps.inventory.index.get(replication.targetHostId);
    if (!host?.connectionId) {
      this.deps.logger.info(
        { vm: replication.vmName, why },
        'the target host is gone: nothing of the replica to stop',
      );
      return;
    }
    const target = this.#target(replication);
    await within(
      STEP_MS,
      'stopping the replica',
      target.facet.stopReplica(ReplicaSync.directoryOf(replication)),
    );
    const kept = new Set(
      (await this.chain.points(replication.id))
        .filter((p) => p.state !== 'merged' && p.state !== 'failed')
        .flatMap((p) => p.disks.map((d) => d.path)),
    );
    const stale = Object.values(overlays).filter((path) => !kept.has(path));
    if (stale.length > 0) {
      this.deps.logger.info(
        { vm: replication.vmName, images: stale.length, why },
        'live overlays removed',
      );
      // Newest first: an overlay is never removed while one above it reads through it.
      await within(
        STEP_MS,
        'removing live overlays',
        targetStreamsOf(this.deps.connections, target.host).removeImages(
          stale.reverse().map((path) => ({ path })),
        ),
      );
    }
    await this.#record(replication, { overlays: {} });
  }
}

/** The next overlays, under keys that never clash with the live ones' disk ids. */
function prefixed(next: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(next).map(([diskId, path]) => [`next:${diskId}`, path]));
}
