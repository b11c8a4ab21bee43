/**
 * Replication: each protected VM is copied to a host of another site at an interval that meets
 * its RPO, as a chain of points in time on that host's storage. The first cycle writes a full
 * image of each disk (what holds data); every later one reads only what changed since the last
 * point (the disk-stream facet's checkpoints: QEMU dirty bitmaps, as backups use, but tagged as
 * replication's own) and writes it as a qcow2 overlay of the last point's image.
 *
 * A cycle is a durable task (`replication.cycle`). Its point is recorded `writing` before a byte
 * is written and `ready` only once every disk's image is durable, in the transaction that also
 * keeps the VM's description: a cycle cut off at any point (the link, the target host, the control
 * plane) leaves the last ready point as it was, and the next cycle removes what the cut-off one
 * wrote. Points beyond `keepPoints` are folded into the oldest (the facet's mergeOverlay, safe to
 * run again), so the chain stays short. The replica VM is never defined at the target until a
 * recovery plan runs it (./recovery-plans.ts).
 *
 * Each VM's current RPO (now less the time its latest ready point's data was taken) is kept as
 * facts on it (`replication.rpoSeconds`, `replication.state`, …); when it goes over the target the
 * event `replication.rpoExceeded` is published, once, and `replication.rpoRestored` when it is back.
 */
import { Type, type Static } from 'typebox';
import type {
  ReplicaPointView,
  ReplicationCycleResult,
  ReplicationView,
} from '../../api/replication.js';
import { isZenithError, ZenithError } from '../../core/errors.js';
import { newId } from '../../core/ids.js';
import { Mutex } from '../../core/mutex.js';
import {
  facetOf,
  requireFacet,
  type ActionContext,
  type DiskStreamFacet,
  type PortableVm,
} from '../../hypervisors/driver.js';
import type { Actor } from '../audit/audit-service.js';
import { systemActor } from '../identity/system-actor.js';
import type { Task, TaskKind } from '../tasks/task-service.js';
import { fileMerger, ReplicaChain, type PointMerger } from './replica-chain.js';
import { ReplicaLeftovers } from './replica-leftovers.js';
import {
  presentVm,
  ReplicaCycles,
  releaseSourceCheckpoints,
  targetStreamsOf,
} from './replica-cycles.js';
import { newReplicaKey, ReplicaSync, SYNC_WATCH_MS } from './replica-sync.js';
import type { ReplicaPoint, Replication, ReplicationDeps, SyncStanding } from './replica-types.js';

export type { PointDisk, ReplicaPoint, Replication, ReplicationDeps } from './replica-types.js';

export const replicationIdentityName = 'zenith-replication';

export interface ProtectInput {
  targetHost: string;
  /** interval (default): cycles of what changed; sync: a write-blocking mirror (RPO 0). */
  mode?: 'interval' | 'sync';
  rpoSeconds: number;
  intervalSeconds?: number;
  keepPoints?: number;
}

const CycleParams = Type.Object({ replicationId: Type.String() });
type CycleParams = Static<typeof CycleParams>;

const defaultKeepPoints = 3;

type ReplicationRow = Awaited<ReturnType<ReplicationService['rows']>>[number];

export class ReplicationService {
  readonly #cycle: TaskKind<CycleParams>;
  /** One cycle (or final cycle, or removal) of a replication at a time in this process. */
  readonly #locks = new Map<string, Mutex>();
  readonly #chain: ReplicaChain;
  readonly #cycles: ReplicaCycles;
  readonly #sync: ReplicaSync;
  /** Sync replications whose mirror is being read now, and when each was last read. */
  readonly #watching = new Map<string, number>();
  readonly #watchers = new Set<Promise<void>>();
  /** When leftovers of VMs no longer replicated were last looked for. */
  #orphansAt = 0;
  /** What VMs left at hosts they moved away from, reclaimed after cycles. */
  readonly leftovers: ReplicaLeftovers;
  #actor: Actor = { id: 'system', kind: 'system', name: replicationIdentityName };
  #abort: AbortController | undefined;
  #loop: Promise<void> | undefined;

  constructor(private readonly deps: ReplicationDeps) {
    this.#chain = new ReplicaChain(deps);
    this.leftovers = new ReplicaLeftovers(deps);
    this.#cycles = new ReplicaCycles(deps, this.#chain, this.leftovers, (replication, target) =>
      this.#merger(replication, target),
    );
    this.#sync = new ReplicaSync(deps, this.#chain);
    this.#cycle = deps.tasks.register({
      name: 'replication.cycle',
      params: CycleParams,
      run: async ({ task, signal, progress }) => this.#runCycle(task, { signal, progress }),
      // The run removes what a cut-off cycle wrote and starts again from the last ready point.
      recover: () => Promise.resolve('retry'),
    });
  }

  /** The identity replication's tasks run as. */
  get actor(): Actor {
    return this.#actor;
  }

  async start(): Promise<void> {
    this.#actor = await systemActor(
      this.deps.identities,
      replicationIdentityName,
      'replication (copies protected VMs to their recovery site)',
    );
    this.#abort = new AbortController();
    const signal = this.#abort.signal;
    this.#loop = (async () => {
      while (!signal.aborted) {
        await this.#tick().catch((error: unknown) =>
          this.deps.logger.warn({ err: error }, 'the replication check failed'),
        );
        await this.deps.clock.sleep(this.deps.tickMs ?? 1000, signal).catch(() => undefined);
      }
    })();
  }

  async stop(): Promise<void> {
    this.#abort?.abort();
    await this.#loop;
    await Promise.all(this.#watchers);
  }

  // ---- reading ----

  async rows() {
    return this.deps.store.db.selectFrom('replications').selectAll().execute();
  }

  async list(): Promise<ReplicationView[]> {
    const rows = await this.rows();
    return Promise.all(rows.map((row) => this.#view(toReplication(row))));
  }

  /** The VM's replication (ZEN_NOT_FOUND when it has none). */
  async ofVm(vmId: string): Promise<Replication> {
    const row = await this.deps.store.db
      .selectFrom('replications')
      .selectAll()
      .where('vm_id', '=', vmId)
      .executeTakeFirst();
    if (!row)
      throw new ZenithError('ZEN_NOT_FOUND', `${this.#vmName(vmId)} is not replicated`, { vmId });
    return toReplication(row);
  }

  async get(vmId: string): Promise<ReplicationView> {
    return this.#view(await this.ofVm(vmId));
  }

  points(replicationId: string): Promise<ReplicaPoint[]> {
    return this.#chain.points(replicationId);
  }

  /** The newest point a recovery may start from (null: none yet). */
  async latestReady(replicationId: string): Promise<ReplicaPoint | null> {
    return (await this.points(replicationId)).filter((p) => p.state === 'ready').at(-1) ?? null;
  }

  /** RPO achieved per VM, point by point: the evidence auditors ask for. */
  async report(filter: { vmId?: string; since?: number }) {
    const replications = (await this.rows()).map(toReplication);
    const rows = [];
    for (const replication of replications) {
      if (filter.vmId && replication.vmId !== filter.vmId) continue;
      const done = (await this.points(replication.id)).filter(
        (p) => (p.state === 'ready' || p.state === 'merged') && p.finishedAt !== null,
      );
      for (const [index, point] of done.entries()) {
        if (filter.since !== undefined && point.finishedAt! < filter.since) continue;
        const before = index > 0 ? done[index - 1]! : null;
        rows.push({
          vmId: replication.vmId,
          vmName: replication.vmName,
          pointId: point.id,
          seq: point.seq,
          takenAt: point.takenAt,
          finishedAt: point.finishedAt!,
          rpoBeforeSeconds: before ? (point.finishedAt! - before.takenAt) / 1000 : null,
          rpoAfterSeconds: (point.finishedAt! - point.takenAt) / 1000,
          rpoTargetSeconds: replication.rpoSeconds,
          readBytes: point.readBytes,
        });
      }
    }
    return rows.sort((a, b) => a.finishedAt - b.finishedAt);
  }

  // ---- changing ----

  async protect(vmId: string, input: ProtectInput, by: string): Promise<ReplicationView> {
    const { inventory } = this.deps;
    const vm = presentVm(this.deps.inventory, vmId);
    const source = this.deps.connections.driver(vm.connectionId!);
    requireFacet(source, 'diskStreams', 'replicating a VM');
    requireFacet(source, 'portableVms', 'replicating a VM');
    const target = inventory.resolve('host', input.targetHost);
    const sourceHostId = vm.computed['location.hostId'];
    if (target.id === sourceHostId)
      throw new ZenithError('ZEN_BAD_REQUEST', 'a VM is replicated to another host than its own', {
        field: 'targetHost',
      });
    const [fromSite, toSite] = await Promise.all([
      typeof sourceHostId === 'string' ? this.deps.sites.siteOf(sourceHostId) : null,
      this.deps.sites.siteOf(target.id),
    ]);
    if (!toSite)
      throw new ZenithError(
        'ZEN_INVALID_STATE',
        `${target.name} belongs to no site: put it in the recovery site first`,
        { hostId: target.id },
      );
    if (fromSite?.id === toSite.id)
      throw new ZenithError(
        'ZEN_INVALID_STATE',
        `${vm.name} and ${target.name} are both at the site ${toSite.name}: replication goes to another site`,
        { site: toSite.name },
      );
    const streams = targetStreamsOf(this.deps.connections, target);
    if (!streams.mergeOverlay)
      throw new ZenithError(
        'ZEN_UNSUPPORTED',
        `${target.name} cannot keep replica chains: it cannot merge disk overlays (a family without them, or a host agent older than protocol 1.6: upgrade it)`,
      );
    const roots = target.facts['storage.roots'];
    const root =
      Array.isArray(roots) && typeof roots[0] === 'string'
        ? roots[0]
        : ((await streams.imageDirectory?.()) ?? null);
    if (!root)
      throw new ZenithError('ZEN_INVALID_STATE', `${target.name} reports no storage roots`, {
        hostId: target.id,
      });
    const mode = input.mode ?? 'interval';
    if (mode === 'sync') this.#sync.check(vm, target);
    const interval = input.intervalSeconds ?? Math.max(10, Math.floor(input.rpoSeconds / 2));
    if (interval > input.rpoSeconds)
      throw new ZenithError(
        'ZEN_BAD_REQUEST',
        `an interval of ${interval} s cannot meet an RPO of ${input.rpoSeconds} s`,
        { field: 'intervalSeconds' },
      );
    const now = this.deps.clock.now();
    const id = newId('replication', now);
    const safeName = vm.name.replace(/[^A-Za-z0-9._-]/g, '_').slice(0, 48);
    await this.deps.store.transaction(async (tx) => {
      if (
        await tx
          .selectFrom('replications')
          .select('id')
          .where('vm_id', '=', vm.id)
          .executeTakeFirst()
      )
        throw new ZenithError('ZEN_CONFLICT', `${vm.name} is replicated already`, { vmId: vm.id });
      await tx
        .insertInto('replications')
        .values({
          id,
          vm_id: vm.id,
          vm_name: vm.name,
          target_host_id: target.id,
          directory: `${root.replace(/\/+$/, '')}/zenith-replicas/${safeName}-${id.slice(-8).toLowerCase()}`,
          rpo_seconds: input.rpoSeconds,
          interval_seconds: interval,
          keep_points: input.keepPoints ?? defaultKeepPoints,
          state: 'active',
          description: null,
          next_cycle_at: now,
          last_task_id: null,
          rpo_exceeded: 0,
          mode,
          sync_key:
            mode === 'sync' ? this.deps.secrets.seal(JSON.stringify(newReplicaKey(id))) : null,
          sync_state: null,
          sync_overlays: null,
          sync_since: null,
          sync_error: null,
          created_by: by,
          created_at: now,
          updated_at: now,
        })
        .execute();
    });
    return this.get(vm.id);
  }

  async update(
    vmId: string,
    input: {
      rpoSeconds?: number;
      intervalSeconds?: number;
      keepPoints?: number;
      state?: 'active' | 'paused';
      mode?: 'interval' | 'sync';
    },
  ): Promise<ReplicationView> {
    const current = await this.ofVm(vmId);
    if (current.state === 'recovered' && (input.state !== undefined || input.mode !== undefined))
      throw new ZenithError(
        'ZEN_INVALID_STATE',
        `${current.vmName} runs from its replica: protect it anew (reprotect) instead`,
      );
    if (input.mode !== undefined && input.mode !== current.mode)
      await this.#switchMode(current, input.mode);
    const rpo = input.rpoSeconds ?? current.rpoSeconds;
    const interval = input.intervalSeconds ?? current.intervalSeconds;
    if (interval > rpo)
      throw new ZenithError(
        'ZEN_BAD_REQUEST',
        `an interval of ${interval} s cannot meet an RPO of ${rpo} s`,
        {
          field: 'intervalSeconds',
        },
      );
    await this.deps.store.db
      .updateTable('replications')
      .set({
        rpo_seconds: rpo,
        interval_seconds: interval,
        keep_points: input.keepPoints ?? current.keepPoints,
        ...(input.state ? { state: input.state } : {}),
        ...(input.state === 'active' && current.state !== 'active'
          ? { next_cycle_at: this.deps.clock.now() }
          : {}),
        updated_at: this.deps.clock.now(),
      })
      .where('id', '=', current.id)
      .execute();
    return this.get(vmId);
  }

  /**
   * A replication changed between modes, under its lock: to interval, its mirror and replica are
   * taken down first (ZEN_… of the host that does not answer, nothing changed); to sync, both hosts
   * must have the facet, and the mirror is set up after the next cycle. Its points are kept.
   */
  async #switchMode(current: Replication, mode: 'interval' | 'sync'): Promise<void> {
    await this.#lock(current.id).run(async () => {
      if (mode === 'interval')
        await this.#sync.standDown(current, 'the replication is interval now');
      else {
        const vm = presentVm(this.deps.inventory, current.vmId);
        const target = this.deps.inventory.index.get(current.targetHostId);
        if (!target) throw new ZenithError('ZEN_NOT_FOUND', 'the target host is gone');
        this.#sync.check(vm, target);
      }
      await this.deps.store.db
        .updateTable('replications')
        .set({
          mode,
          sync_key:
            mode === 'sync'
              ? (current.syncKey ??
                this.deps.secrets.seal(JSON.stringify(newReplicaKey(current.id))))
              : current.syncKey,
          sync_state: null,
          sync_error: null,
          sync_since: this.deps.clock.now(),
          ...(mode === 'sync' ? { next_cycle_at: this.deps.clock.now() } : {}),
        })
        .where('id', '=', current.id)
        .execute();
    });
  }

  /** Stops replicating the VM and removes its replica's images (refused while a plan names it). */
  async remove(vmId: string): Promise<void> {
    const replication = await this.ofVm(vmId);
    const plans = (
      await this.deps.store.db.selectFrom('recovery_plans').select(['name', 'groups']).execute()
    ).filter((plan) =>
      (JSON.parse(plan.groups) as Array<{ vms: string[] }>).some((group) =>
        group.vms.includes(vmId),
      ),
    );
    if (plans.length > 0)
      throw new ZenithError(
        'ZEN_CONFLICT',
        `recovery plans name ${replication.vmName}: ${plans.map((p) => p.name).join(', ')}`,
        { plans: plans.map((p) => p.name) },
      );
    await this.#lock(replication.id).run(async () => {
      if (replication.mode === 'sync')
        await this.#sync.standDown(replication, 'replication stopped');
      const points = await this.points(replication.id);
      if (replication.state !== 'recovered') {
        const target = this.deps.inventory.index.get(replication.targetHostId);
        const streams = target ? targetStreamsOf(this.deps.connections, target) : undefined;
        const files = [
          ...new Set(
            points.filter((p) => p.state !== 'merged').flatMap((p) => p.disks.map((d) => d.path)),
          ),
        ];
        // Newest first: an image is never removed while one above it still reads through it.
        if (streams && files.length > 0)
          await streams.removeImages(files.reverse().map((path) => ({ path })));
        await releaseSourceCheckpoints(this.deps, replication, new Set()).catch((error: unknown) =>
          this.deps.logger.warn(
            { err: error, vm: replication.vmName },
            'releasing checkpoints failed',
          ),
        );
      }
      await this.deps.store.transaction(async (tx) => {
        await tx
          .deleteFrom('replica_points')
          .where('replication_id', '=', replication.id)
          .execute();
        await tx.deleteFrom('replications').where('id', '=', replication.id).execute();
      });
      this.deps.inventory.setOverlay('replication', vmId, null);
    });
    // No replica is wanted any more: what the VM left at hosts goes too (never failing this).
    await this.#reclaimOrphan(replication).catch((error: unknown) =>
      this.deps.logger.warn({ err: error, vm: replication.vmName }, 'reclaiming leftovers failed'),
    );
  }

  /** What VMs no longer replicated left at hosts (their replication stopped), reclaimed. */
  async #reclaimOrphans(): Promise<void> {
    for (const { vmId } of await this.leftovers.orphaned())
      await this.#reclaimOrphan({ vmId, vmName: this.#vmName(vmId), targetHostId: '' });
  }

  /** What a VM without a replication left at hosts, reclaimed wherever it does not run. */
  async #reclaimOrphan(vm: { vmId: string; vmName: string; targetHostId: string }) {
    return this.leftovers.reclaim(
      vm,
      { signal: this.#abort?.signal ?? new AbortController().signal, progress: () => undefined },
      { anySite: true },
    );
  }

  /**
   * Reprotect: the VM runs from its replica (recovered); it is replicated anew, from where it runs
   * now to `targetHost` (at the site it came from), with the same RPO, interval and points kept.
   * The old replica's images stay while the VM runs on an overlay of them: they are recorded as
   * left at that host, reclaimed once it runs elsewhere and a new replica there is ready.
   */
  async reprotect(vmId: string, targetHost: string, by: string): Promise<ReplicationView> {
    const old = await this.ofVm(vmId);
    if (old.state !== 'recovered')
      throw new ZenithError(
        'ZEN_INVALID_STATE',
        `${old.vmName} does not run from its replica: it is protected already`,
      );
    const points = (await this.points(old.id)).filter(
      (p) => p.state !== 'merged' && p.state !== 'failed',
    );
    const diskIds = [...new Set(points.flatMap((p) => p.disks.map((d) => d.diskId)))];
    // Newest first: the run overlays, then the chain from its top down.
    const chain = [
      ...diskIds.map((diskId) => `${old.directory}/run-${diskId}.qcow2`),
      ...points.reverse().flatMap((p) => p.disks.map((d) => d.path)),
    ];
    await this.#lock(old.id).run(() =>
      this.deps.store.transaction(async (tx) => {
        await this.leftovers.record(
          {
            vmId,
            hostId: old.targetHostId,
            definitionId: null,
            paths: [...new Set(chain)],
            reason: 'reprotect',
          },
          tx,
        );
        await tx.deleteFrom('replica_points').where('replication_id', '=', old.id).execute();
        await tx.deleteFrom('replications').where('id', '=', old.id).execute();
      }),
    );
    return this.protect(
      vmId,
      {
        targetHost,
        mode: old.mode,
        rpoSeconds: old.rpoSeconds,
        intervalSeconds: old.intervalSeconds,
        keepPoints: old.keepPoints,
      },
      by,
    );
  }

  /** Queues a cycle now (ZEN_CONFLICT while one is queued or running). */
  async cycleNow(vmId: string, actor: Actor, requestId?: string): Promise<Task<CycleParams>> {
    const replication = await this.ofVm(vmId);
    if (replication.state !== 'active')
      throw new ZenithError(
        'ZEN_INVALID_STATE',
        `${replication.vmName}'s replication is ${replication.state}`,
      );
    return this.#submit(replication, actor, requestId);
  }

  /**
   * The last cycle of a planned migration, run in the caller's task: the VM is stopped, so this
   * point holds everything it wrote.
   */
  async finalCycle(vmId: string, context: ActionContext): Promise<ReplicaPoint> {
    const replication = await this.ofVm(vmId);
    await this.#lock(replication.id).run(async () => {
      // A sync replication's mirror may have been lost in the VM's last moments (its QEMU is
      // gone, and what it knew with it): the replica is stopped, and a cycle of the stopped VM
      // (what changed since the last interval point) holds everything whatever became of it.
      if (replication.mode === 'sync')
        await this.#sync.standDown(replication, 'a planned migration');
      await this.#cycleOnce(replication, 'final', context);
    });
    const point = await this.latestReady(replication.id);
    if (!point) throw new ZenithError('ZEN_INVALID_STATE', `${replication.vmName} has no replica`);
    return point;
  }

  /**
   * The point a failover starts from when none was chosen: a sync replication's replica, where it
   * still runs, gives a last point from its live overlay (every write the guest saw complete) and
   * is stopped; otherwise the latest ready point.
   */
  async lastPoint(vmId: string, taskId: string): Promise<ReplicaPoint | null> {
    const replication = await this.ofVm(vmId);
    // Only a mirror that holds: a replica left running after a loss has an overlay older than the
    // interval points made since.
    if (replication.mode === 'sync' && replication.sync?.state === 'mirroring')
      await this.#lock(replication.id).run(async () => {
        const point = await this.#sync.lastPoint(replication, taskId).catch((error: unknown) => {
          this.deps.logger.warn(
            { err: error, vm: replication.vmName },
            'no last point from the replica: the latest ready point is used',
          );
          return null;
        });
        if (point) await this.#noMoreMirror(replication);
      });
    return this.latestReady(replication.id);
  }

  /**
   * A point for a test failover when none was chosen: a sync replication whose mirror holds takes
   * one in its replica now (the mirror goes on); otherwise the latest ready point.
   */
  async testPoint(vmId: string, taskId: string): Promise<ReplicaPoint | null> {
    const replication = await this.ofVm(vmId);
    if (this.#mirrorHolds(replication))
      await this.#lock(replication.id).run(() =>
        this.#sync.takePoint(replication, taskId).catch((error: unknown) => {
          this.deps.logger.warn(
            { err: error, vm: replication.vmName },
            'no point taken in the replica for the test: the latest ready point is used',
          );
          return null;
        }),
      );
    return this.latestReady(replication.id);
  }

  async #noMoreMirror(replication: Replication): Promise<void> {
    await this.deps.store.db
      .updateTable('replications')
      .set({ sync_state: null, sync_since: this.deps.clock.now() })
      .where('id', '=', replication.id)
      .execute();
  }

  /** The replica now runs (a failover or planned migration): cycles stop for good. */
  async markRecovered(replicationId: string): Promise<void> {
    await this.deps.store.db
      .updateTable('replications')
      .set({
        state: 'recovered',
        next_cycle_at: null,
        sync_state: null,
        updated_at: this.deps.clock.now(),
      })
      .where('id', '=', replicationId)
      .execute();
  }

  /** The disk-stream facet of the host a replica is kept on. */
  targetStreams(hostId: string): DiskStreamFacet {
    const host = this.deps.inventory.index.get(hostId);
    if (!host) throw new ZenithError('ZEN_NOT_FOUND', `no host ${hostId}`, { hostId });
    return targetStreamsOf(this.deps.connections, host);
  }

  // ---- the loop ----

  async #tick(): Promise<void> {
    const now = this.deps.clock.now();
    if (now - this.#orphansAt >= 60_000) {
      this.#orphansAt = now;
      // Beside the rest of the round: a failure here holds up no cycle.
      await this.#reclaimOrphans().catch((error: unknown) =>
        this.deps.logger.warn({ err: error }, 'reclaiming leftovers failed'),
      );
    }
    const latest = new Map(
      (
        await this.deps.store.db
          .selectFrom('replica_points')
          .select(['replication_id'])
          .select((eb) => eb.fn.max('taken_at').as('taken_at'))
          .where('state', 'in', ['ready', 'merging'])
          .groupBy('replication_id')
          .execute()
      ).map((row) => [row.replication_id, Number(row.taken_at)] as const),
    );
    for (const replication of (await this.rows()).map(toReplication)) {
      if (replication.state === 'recovered') continue;
      const takenAt = latest.get(replication.id);
      const holds = this.#mirrorHolds(replication);
      const rpo = holds ? 0 : takenAt === undefined ? null : (now - takenAt) / 1000;
      this.deps.inventory.setOverlay('replication', replication.vmId, {
        'replication.state': replication.state,
        'replication.mode': replication.mode,
        'replication.targetHostId': replication.targetHostId,
        'replication.rpoTargetSeconds': replication.rpoSeconds,
        ...(rpo === null ? {} : { 'replication.rpoSeconds': Math.round(rpo) }),
        ...(replication.sync
          ? { 'replication.syncState': replication.sync.state ?? 'pending' }
          : {}),
      });
      if (holds) this.#watch(replication);
      // Measured from when the replication began while no point is ready yet.
      const late = (rpo ?? (now - replication.createdAt) / 1000) > replication.rpoSeconds;
      if (late !== replication.rpoExceeded && replication.state === 'active')
        await this.#rpoChanged(replication, late, rpo ?? (now - replication.createdAt) / 1000);
      if (
        replication.state === 'active' &&
        replication.nextCycleAt !== null &&
        replication.nextCycleAt <= now &&
        !(await this.#busy(replication))
      )
        await this.#submit(replication, this.#actor).catch((error: unknown) =>
          this.deps.logger.warn(
            { err: error, vm: replication.vmName },
            'a replication cycle was not queued',
          ),
        );
    }
  }

  /**
   * Reads a sync replication's mirror every few seconds, beside the loop (a host slow to answer
   * holds up no other VM); a lost one is taken down under the replication's lock.
   */
  #watch(replication: Replication): void {
    const last = this.#watching.get(replication.id);
    const now = this.deps.clock.now();
    if (last !== undefined && (last < 0 || now - last < SYNC_WATCH_MS)) return;
    this.#watching.set(replication.id, -1);
    const watcher = (async () => {
      try {
        const lost = await this.#sync.watch(replication);
        if (!lost) return;
        await this.#lock(replication.id).run(async () => {
          // Looked at again under the lock: a point or a removal may have changed it meanwhile.
          const current = await this.ofVm(replication.vmId).catch(() => null);
          if (current?.sync?.state === 'mirroring' && current.state !== 'recovered')
            await this.#sync.disengage(current, lost);
        });
      } catch (error) {
        this.deps.logger.warn({ err: error, vm: replication.vmName }, 'watching a mirror failed');
      } finally {
        this.#watching.set(replication.id, this.deps.clock.now());
      }
    })();
    this.#watchers.add(watcher);
    // The watcher handles everything it throws: this only forgets it once it is done.
    watcher.then(
      () => this.#watchers.delete(watcher),
      () => this.#watchers.delete(watcher),
    );
  }

  async #rpoChanged(replication: Replication, late: boolean, rpoSeconds: number): Promise<void> {
    await this.deps.store.db
      .updateTable('replications')
      .set({ rpo_exceeded: late ? 1 : 0 })
      .where('id', '=', replication.id)
      .execute();
    const data = {
      name: replication.vmName,
      rpoSeconds: Math.round(rpoSeconds),
      targetSeconds: replication.rpoSeconds,
    };
    await this.deps.events.publish([
      late
        ? { type: 'replication.rpoExceeded', objectId: replication.vmId, data }
        : { type: 'replication.rpoRestored', objectId: replication.vmId, data },
    ]);
    if (late) this.deps.logger.warn(data, "a replicated VM's RPO is over its target");
  }

  /** Whether the replication's last cycle is still queued or running. */
  async #busy(replication: Replication): Promise<boolean> {
    if (!replication.lastTaskId) return false;
    const task = await this.deps.tasks.get(replication.lastTaskId).catch(() => null);
    return task !== null && (task.state === 'queued' || task.state === 'running');
  }

  async #submit(replication: Replication, actor: Actor, requestId?: string) {
    if (await this.#busy(replication))
      throw new ZenithError('ZEN_CONFLICT', `a cycle of ${replication.vmName} is under way`, {
        taskId: replication.lastTaskId,
      });
    const task = await this.deps.tasks.submit({
      kind: this.#cycle,
      targetId: replication.vmId,
      params: { replicationId: replication.id },
      owner: actor,
      ...(requestId ? { requestId } : {}),
    });
    await this.deps.store.db
      .updateTable('replications')
      .set({
        last_task_id: task.id,
        next_cycle_at: this.deps.clock.now() + replication.intervalSeconds * 1000,
      })
      .where('id', '=', replication.id)
      .execute();
    return task;
  }

  // ---- a cycle ----

  async #runCycle(
    task: Task<CycleParams>,
    context: ActionContext,
  ): Promise<ReplicationCycleResult> {
    const row = await this.deps.store.db
      .selectFrom('replications')
      .selectAll()
      .where('id', '=', task.params.replicationId)
      .executeTakeFirst();
    if (!row) throw new ZenithError('ZEN_NOT_FOUND', 'the replication was removed');
    const replication = toReplication(row);
    if (replication.state !== 'active')
      throw new ZenithError(
        'ZEN_INVALID_STATE',
        `${replication.vmName}'s replication is ${replication.state}`,
      );
    return this.#lock(replication.id).run(() => this.#cycleOnce(replication, task.id, context));
  }

  /**
   * A cycle; whatever stops it, wherever, is an event (what alarms read) with its code. A sync
   * replication's cycle while its mirror holds takes a point inside the replica; otherwise (no
   * point yet, the mirror lost or being set up) it is an interval cycle, after which the mirror is
   * set up (again).
   */
  async #cycleOnce(
    replication: Replication,
    taskId: string,
    context: ActionContext,
  ): Promise<ReplicationCycleResult> {
    try {
      if (replication.sync?.state === 'mirroring' && taskId !== 'final') {
        const point = await this.#sync.takePoint(replication, taskId);
        if (point) {
          const merged = await this.#chain.retain(
            replication,
            this.targetStreams(replication.targetHostId),
            this.#merger(replication, this.targetStreams(replication.targetHostId)),
          );
          await this.deps.events.publish([
            {
              type: 'replication.cycleFinished',
              objectId: replication.vmId,
              data: {
                name: replication.vmName,
                seq: point.seq,
                scope: 'sync',
                takenAt: point.takenAt,
                readBytes: 0,
              },
            },
          ]);
          return {
            vmId: replication.vmId,
            pointId: point.id,
            seq: point.seq,
            scope: 'sync',
            takenAt: point.takenAt,
            readBytes: 0,
            merged,
          };
        }
        await this.#sync.disengage(replication, {
          code: 'ZEN_NOT_FOUND',
          message: 'the replica no longer runs at the target',
        });
        replication = await this.ofVm(replication.vmId);
      }
      // A replica a loss could not stop (its host did not answer) still holds the chain, with an
      // overlay older than what this cycle writes: it goes first.
      if (replication.sync && Object.keys(replication.sync.overlays).length > 0)
        await this.#sync.takeDown(replication, 'an interval cycle runs');
      const result = await this.#cycles.run(replication, taskId, context);
      if (replication.mode === 'sync' && taskId !== 'final' && this.#mayEngage(replication))
        await this.#sync
          .engage(replication, context)
          .catch((error: unknown) => this.#sync.engageFailed(replication, error));
      return result;
    } catch (error) {
      const coded = isZenithError(error)
        ? error
        : new ZenithError('ZEN_DRIVER_ERROR', (error as Error).message);
      await this.deps.events.publish([
        {
          type: 'replication.cycleFailed',
          objectId: replication.vmId,
          data: { name: replication.vmName, code: coded.code, message: coded.message },
        },
      ]);
      throw error;
    }
  }

  // ---- helpers ----

  /**
   * A sync replication whose mirror holds: every write of the VM is on the replica (RPO 0). A
   * paused one's mirror runs on (pausing stops its points and folds), and is watched.
   */
  #mirrorHolds(replication: Replication): boolean {
    return replication.state !== 'recovered' && replication.sync?.state === 'mirroring';
  }

  /**
   * A sync replication sets its mirror up after a cycle that succeeded — after a loss or a failed
   * setup, once two intervals (10 s at least) have passed, so a link that comes and goes is not
   * asked for a whole disk's first pass at every cycle.
   */
  #mayEngage(replication: Replication): boolean {
    const sync = replication.sync;
    if (!sync || sync.state === 'mirroring') return false;
    // Only a running VM's writes can be mirrored.
    if (this.deps.inventory.index.get(replication.vmId)?.facts['power.state'] !== 'running')
      return false;
    if (sync.state !== 'fallback' || sync.since === null) return true;
    return (
      this.deps.clock.now() - sync.since >= Math.max(10_000, 2 * replication.intervalSeconds * 1000)
    );
  }

  /**
   * How a replication's points are folded: a sync replication's while its mirror holds inside its
   * running replica (which holds the chain open), as files where none runs; otherwise as files.
   */
  #merger(replication: Replication, target: DiskStreamFacet): PointMerger {
    const files = fileMerger(target);
    if (replication.sync?.state !== 'mirroring') return files;
    return async (merge) => {
      const host = this.deps.inventory.index.get(replication.targetHostId);
      const facet = host?.connectionId
        ? facetOf(this.deps.connections.driver(host.connectionId), 'syncReplication')
        : undefined;
      if (facet)
        try {
          await facet.mergePoint(ReplicaSync.directoryOf(replication), {
            diskId: merge.diskId,
            overlay: merge.overlay,
            backing: merge.backing,
          });
          return;
        } catch (error) {
          if (!isZenithError(error) || error.code !== 'ZEN_NOT_FOUND') throw error;
        }
      await files(merge);
    };
  }

  #lock(replicationId: string): Mutex {
    let lock = this.#locks.get(replicationId);
    if (!lock) this.#locks.set(replicationId, (lock = new Mutex()));
    return lock;
  }

  #vmName(vmId: string): string {
    return this.deps.inventory.index.get(vmId)?.name ?? vmId;
  }

  async #view(replication: Replication): Promise<ReplicationView> {
    const { inventory } = this.deps;
    const vm = inventory.index.get(replication.vmId);
    const sourceHostId = vm?.computed['location.hostId'];
    const [sourceSite, targetSite] = await Promise.all([
      typeof sourceHostId === 'string' ? this.deps.sites.siteOf(sourceHostId) : null,
      this.deps.sites.siteOf(replication.targetHostId),
    ]);
    const [points, leftovers] = await Promise.all([
      this.points(replication.id),
      this.leftovers.of(replication.vmId),
    ]);
    const latest = points.filter((p) => p.state === 'ready' || p.state === 'merging').at(-1);
    // The newest cycle that ended (a newer one may be queued or running already).
    // Not read for a recovered replication: it is spent, and says nothing of its last cycle.
    const lastTask =
      replication.state === 'recovered'
        ? undefined
        : (
            await this.deps.tasks.list({
              targetId: replication.vmId,
              kind: this.#cycle.name,
              states: ['succeeded', 'failed'],
              limit: 1,
            })
          )[0];
    const shown: ReplicaPointView[] = points
      .filter((p) => p.state === 'ready' || p.state === 'writing' || p.state === 'merging')
      .reverse()
      .map((p) => ({
        id: p.id,
        seq: p.seq,
        state: p.state,
        takenAt: p.takenAt,
        finishedAt: p.finishedAt,
        readBytes: p.readBytes,
        taskId: p.taskId,
      }));
    return {
      id: replication.id,
      vm: { id: replication.vmId, name: vm?.name ?? replication.vmName },
      sourceSite,
      targetHost: {
        id: replication.targetHostId,
        name: inventory.index.get(replication.targetHostId)?.name ?? replication.targetHostId,
      },
      targetSite,
      directory: replication.directory,
      rpoSeconds: replication.rpoSeconds,
      intervalSeconds: replication.intervalSeconds,
      keepPoints: replication.keepPoints,
      state: replication.state,
      mode: replication.mode,
      sync: replication.sync
        ? {
            state: replication.sync.state,
            since: replication.sync.since,
            error: replication.sync.error,
          }
        : null,
      currentRpoSeconds:
        replication.state === 'recovered'
          ? null
          : this.#mirrorHolds(replication)
            ? 0
            : latest
              ? (this.deps.clock.now() - latest.takenAt) / 1000
              : null,
      rpoExceeded: replication.rpoExceeded,
      nextCycleAt: replication.nextCycleAt,
      lastTaskId: replication.lastTaskId,
      lastCycleError:
        lastTask?.state === 'failed' && lastTask.error
          ? {
              code: lastTask.error.code,
              message: lastTask.error.message,
              at: lastTask.endedAt ?? lastTask.createdAt,
            }
          : null,
      points: shown,
      leftovers: leftovers.map((l) => ({
        host: { id: l.hostId, name: inventory.index.get(l.hostId)?.name ?? l.hostId },
        reason: l.reason,
        definition: l.definitionId !== null,
        images: l.paths.length,
        since: l.since,
      })),
      createdBy: replication.createdBy,
      createdAt: replication.createdAt,
      updatedAt: replication.updatedAt,
    };
  }
}

function toReplication(row: ReplicationRow): Replication {
  return {
    id: row.id,
    vmId: row.vm_id,
    vmName: row.vm_name,
    targetHostId: row.target_host_id,
    directory: row.directory,
    rpoSeconds: Number(row.rpo_seconds),
    intervalSeconds: Number(row.interval_seconds),
    keepPoints: Number(row.keep_points),
    state: row.state as Replication['state'],
    description: row.description ? (JSON.parse(row.description) as PortableVm) : null,
    nextCycleAt: row.next_cycle_at === null ? null : Number(row.next_cycle_at),
    lastTaskId: row.last_task_id,
    rpoExceeded: Number(row.rpo_exceeded) === 1,
    mode: row.mode === 'sync' ? 'sync' : 'interval',
    sync:
      row.mode === 'sync'
        ? {
            state: (row.sync_state as SyncStanding['state']) ?? null,
            overlays: row.sync_overlays
              ? (JSON.parse(row.sync_overlays) as Record<string, string>)
              : {},
            since: row.sync_since === null ? null : Number(row.sync_since),
            error: row.sync_error ? (JSON.parse(row.sync_error) as SyncStanding['error']) : null,
          }
        : null,
    syncKey: row.sync_key,
    createdBy: row.created_by,
    createdAt: Number(row.created_at),
    updatedAt: Number(row.updated_at),
  };
}
