/**
 * Recovery plans: which replicated VMs start at the recovery site, in which order (priority groups:
 * a group starts once every VM of the one before is up, or its timeout has passed), what "up"
 * means (a line the guest prints on its serial console, or running), and how their networks map.
 *
 * A run is a durable task (`recovery.run`) over one of three operations:
 * - **test**: each VM's latest replica started as a copy (a new identity, its own overlay over the
 *   replica's image, its NICs in an isolated network unless the plan maps them) while production
 *   and replication go on; removed again by a cleanup run;
 * - **planned**: each VM shut down at its site, replicated a last time, and started at the target
 *   from that point (nothing lost);
 * - **failover**: the source site is lost: each VM's host is fenced through its BMC where it has
 *   one, and the latest replica started at the target.
 * A planned migration or failover keeps the VM's identity (its Zenith id, UUID, MACs): the
 * inventory sees it move, and its location history says `failover`. Each VM's step is written
 * before it is taken (recovery_run_vms): a run resumed after the control plane was killed finds
 * how far each VM got, and asks the target host what runs before starting anything again.
 */
import { randomUUID } from 'node:crypto';
import { Type, type Static } from 'typebox';
import type {
  NetworkMapping as NetworkMappingSchema,
  RecoveryPlanExport,
  RecoveryPlanView,
  RecoveryPreview,
  RecoveryRunView,
} from '../../api/replication.js';
import type { Clock } from '../../core/clock.js';
import { isZenithError, ZenithError } from '../../core/errors.js';
import { newId } from '../../core/ids.js';
import type { Logger } from '../../core/logger.js';
import {
  facetOf,
  requireFacet,
  type ActionContext,
  type PortableNic,
  type PortableVm,
} from '../../hypervisors/driver.js';
import type {
  RecoveryPlansTable,
  RecoveryRunsTable,
  RecoveryRunVmsTable,
} from '../../store/schema.js';
import type { Store, Tx } from '../../store/store.js';
import type { Actor } from '../audit/audit-service.js';
import { watchConsole } from '../backup/console-watch.js';
import type { ConnectionService } from '../connections/connection-service.js';
import type { EventBus } from '../events/event-bus.js';
import type { InventoryService } from '../inventory/inventory-service.js';
import type { ManagedObject } from '../inventory/model.js';
import type { MachineService } from '../machines/machine-service.js';
import type { PlacementService } from '../placement/placement-service.js';
import type { Task, TaskKind, TaskService } from '../tasks/task-service.js';
import type { ReplicaPoint, Replication, ReplicationService } from './replication-service.js';
import type { SiteService } from './sites.js';
import { rowById, rowsByName } from '../../store/rows.js';

export type RecoveryOperation = 'test' | 'planned' | 'failover';

export interface RecoveryGroup {
  vms: string[];
  marker: string | null;
  timeoutSeconds: number;
}

export type NetworkMapping = Static<typeof NetworkMappingSchema>;

export interface RecoveryPlanInput {
  name: string;
  description?: string | null;
  sourceSite: string;
  targetSite: string;
  groups: Array<{ vms: string[]; marker?: string; timeoutSeconds?: number }>;
  networkMap?: NetworkMapping[];
  shutdownTimeoutSeconds?: number;
}

const RunParams = Type.Object({ runId: Type.String() });
type RunParams = Static<typeof RunParams>;

/** A group's VMs are given this long to be up unless the plan says otherwise. */
const defaultGroupTimeoutSeconds = 300;

type RunVmRow = RecoveryRunVmsTable;

/** What a step made at the target: its images, and the identity it runs under. */
interface StepImages {
  uuid: string;
  name: string;
  paths: string[];
}

export interface RecoveryPlanDeps {
  store: Store;
  inventory: InventoryService;
  connections: ConnectionService;
  tasks: TaskService;
  events: EventBus;
  machines: MachineService;
  placement: PlacementService;
  sites: SiteService;
  replication: ReplicationService;
  clock: Clock;
  logger: Logger;
}

export class RecoveryPlans {
  readonly #run: TaskKind<RunParams>;
  readonly #cleanup: TaskKind<RunParams>;

  constructor(private readonly deps: RecoveryPlanDeps) {
    this.#run = deps.tasks.register({
      name: 'recovery.run',
      params: RunParams,
      run: async ({ task, signal, progress }) => this.#runPlan(task, { signal, progress }),
      // Every VM's step is recorded before it is taken and checked again when resumed.
      recover: () => Promise.resolve('retry'),
    });
    this.#cleanup = deps.tasks.register({
      name: 'recovery.cleanup',
      params: RunParams,
      run: async ({ task, signal, progress }) => this.#runCleanup(task, { signal, progress }),
      recover: () => Promise.resolve('retry'),
    });
  }

  // ---- plans ----

  async list(): Promise<RecoveryPlanView[]> {
    const rows = await rowsByName(this.deps.store.db, 'recovery_plans');
    return Promise.all(rows.map((row) => this.#view(row)));
  }

  async get(idOrName: string): Promise<RecoveryPlanView> {
    return this.#view(await this.#row(idOrName));
  }

  async create(input: RecoveryPlanInput, by: string): Promise<RecoveryPlanView> {
    const [source, target] = await Promise.all([
      this.deps.sites.get(input.sourceSite),
      this.deps.sites.get(input.targetSite),
    ]);
    if (source.id === target.id)
      throw new ZenithError('ZEN_BAD_REQUEST', 'a recovery plan goes from one site to another', {
        field: 'targetSite',
      });
    const seen = new Set<string>();
    const groups: RecoveryGroup[] = input.groups.map((group) => ({
      vms: group.vms.map((name) => {
        const vm = this.deps.inventory.resolve('vm', name);
        if (seen.has(vm.id))
          throw new ZenithError('ZEN_BAD_REQUEST', `${vm.name} is in the plan twice`, {
            vmId: vm.id,
          });
        seen.add(vm.id);
        return vm.id;
      }),
      marker: group.marker ?? null,
      timeoutSeconds: group.timeoutSeconds ?? defaultGroupTimeoutSeconds,
    }));
    for (const group of groups)
      if (group.marker !== null)
        try {
          new RegExp(group.marker);
        } catch {
          throw new ZenithError(
            'ZEN_BAD_REQUEST',
            `'${group.marker}' is not a regular expression`,
            {
              field: 'marker',
            },
          );
        }
    // Every VM must be replicated to a host of the target site (refused with the list).
    const problems: string[] = [];
    for (const vmId of seen) {
      const replication = await this.deps.replication.ofVm(vmId).catch(() => null);
      const name = this.deps.inventory.index.get(vmId)?.name ?? vmId;
      if (!replication) problems.push(`${name} is not replicated`);
      else if (!target.hosts.some((h) => h.id === replication.targetHostId))
        problems.push(`${name} is replicated to a host outside ${target.name}`);
    }
    if (problems.length > 0)
      throw new ZenithError(
        'ZEN_RECOVERY_PLAN_BLOCKED',
        `the plan cannot hold these VMs: ${problems.join('; ')}`,
        {
          problems: problems.map((problem) => ({ problem })),
        },
      );
    const now = this.deps.clock.now();
    const id = newId('recoveryPlan', now);
    await this.deps.store.transaction(async (tx) => {
      if (
        await tx
          .selectFrom('recovery_plans')
          .select('id')
          .where('name', '=', input.name)
          .executeTakeFirst()
      )
        throw new ZenithError('ZEN_CONFLICT', `a recovery plan named '${input.name}' exists`);
      await tx
        .insertInto('recovery_plans')
        .values({
          id,
          name: input.name,
          description: input.description ?? null,
          source_site_id: source.id,
          target_site_id: target.id,
          groups: JSON.stringify(groups),
          network_map: JSON.stringify(input.networkMap ?? []),
          shutdown_timeout_seconds: input.shutdownTimeoutSeconds ?? 120,
          created_by: by,
          created_at: now,
          updated_at: now,
        })
        .execute();
    });
    return this.get(id);
  }

  async remove(idOrName: string): Promise<void> {
    const plan = await this.#row(idOrName);
    const open = await this.deps.store.db
      .selectFrom('recovery_runs')
      .select(['id', 'operation', 'state'])
      .where('plan_id', '=', plan.id)
      .where((eb) =>
        eb.or([
          eb('state', '=', 'running'),
          eb.and([eb('operation', '=', 'test'), eb('state', 'in', ['done', 'failed'])]),
        ]),
      )
      .execute();
    if (open.length > 0)
      throw new ZenithError(
        'ZEN_CONFLICT',
        `the plan ${plan.name} has a run under way or a test not cleaned up (${open.map((r) => r.id).join(', ')})`,
      );
    await this.deps.store.transaction(async (tx) => {
      const runs = await tx
        .selectFrom('recovery_runs')
        .select('id')
        .where('plan_id', '=', plan.id)
        .execute();
      for (const run of runs)
        await tx.deleteFrom('recovery_run_vms').where('run_id', '=', run.id).execute();
      await tx.deleteFrom('recovery_runs').where('plan_id', '=', plan.id).execute();
      await tx.deleteFrom('recovery_plans').where('id', '=', plan.id).execute();
    });
  }

  /** What running the plan would do now, and what stops it. */
  async preview(idOrName: string, operation: RecoveryOperation): Promise<RecoveryPreview> {
    const plan = await this.#row(idOrName);
    const groups = JSON.parse(plan.groups) as RecoveryGroup[];
    const steps: RecoveryPreview['steps'] = [];
    const problems: RecoveryPreview['problems'] = [];
    const target = await this.deps.sites.get(plan.target_site_id);
    /** Memory each target host must find for the replicas it would run (their descriptions'). */
    const needed = new Map<string, Array<{ vm: { id: string; name: string }; bytes: number }>>();
    for (const [index, group] of groups.entries())
      for (const vmId of group.vms) {
        const vm = { id: vmId, name: this.deps.inventory.index.get(vmId)?.name ?? vmId };
        const replication = await this.deps.replication.ofVm(vmId).catch(() => null);
        if (!replication) {
          problems.push({ vm, problem: 'it is not replicated' });
          continue;
        }
        const host = this.deps.inventory.index.get(replication.targetHostId);
        const point = await this.deps.replication.latestReady(replication.id);
        if (replication.state === 'recovered' && operation !== 'test')
          problems.push({ vm, problem: 'it runs from its replica already (reprotect it first)' });
        else if (!point && operation !== 'planned')
          problems.push({ vm, problem: 'its replica has no ready point in time yet' });
        if (!host || !target.hosts.some((h) => h.id === host.id))
          problems.push({
            vm,
            problem: 'its replica is on a host that is gone or left the target site',
          });
        else if (
          !host.connectionId ||
          !this.deps.connections.connectedIds().includes(host.connectionId)
        )
          problems.push({ vm, problem: `${host.name}, where its replica is, does not answer` });
        else if (!facetOf(this.deps.connections.driver(host.connectionId), 'portableVms'))
          problems.push({ vm, problem: `${host.name} cannot run VMs from a description` });
        if (host && replication.description && replication.state !== 'recovered') {
          const list = needed.get(host.id) ?? [];
          list.push({ vm, bytes: replication.description.memoryBytes });
          needed.set(host.id, list);
        }
        steps.push({
          group: index,
          vm,
          host: host ? { id: host.id, name: host.name } : null,
          pointTakenAt: point?.takenAt ?? null,
          action:
            operation === 'test'
              ? 'start a copy of its latest replica in an isolated network'
              : operation === 'planned'
                ? 'shut it down, replicate a last time, start it at the target'
                : 'fence its host where it can be, start its latest replica at the target',
        });
      }
    problems.push(...this.#capacityProblems(needed));
    return { operation, steps, problems };
  }

  /** Target hosts without the memory the replicas they would run need (placement's figures). */
  #capacityProblems(
    needed: Map<string, Array<{ vm: { id: string; name: string }; bytes: number }>>,
  ): RecoveryPreview['problems'] {
    if (needed.size === 0) return [];
    const model = this.deps.placement.model();
    const problems: RecoveryPreview['problems'] = [];
    for (const [hostId, vms] of needed) {
      const slot = model.hostById.get(hostId);
      if (!slot || slot.memoryCapacity <= 0) continue;
      const free = slot.memoryCapacity - slot.memoryUsed;
      const total = vms.reduce((sum, vm) => sum + vm.bytes, 0);
      if (total <= free) continue;
      const MiB = (bytes: number) => `${Math.round(bytes / 2 ** 20)} MiB`;
      for (const { vm } of vms)
        problems.push({
          vm,
          problem: `${slot.object.name} has ${MiB(Math.max(0, free))} of memory free, and the plan's VMs there need ${MiB(total)}`,
        });
    }
    return problems;
  }

  /** The plan with each VM's newest replica point and description (for a second Zenith). */
  async export(idOrName: string): Promise<RecoveryPlanExport> {
    const plan = await this.get(idOrName);
    const vms: RecoveryPlanExport['vms'] = [];
    for (const { id, name } of plan.groups.flatMap((g) => g.vms)) {
      const replication = await this.deps.replication.ofVm(id).catch(() => null);
      if (!replication) continue;
      const point = await this.deps.replication.latestReady(replication.id);
      vms.push({
        vm: { id, name },
        targetHost: {
          id: replication.targetHostId,
          name:
            this.deps.inventory.index.get(replication.targetHostId)?.name ??
            replication.targetHostId,
        },
        directory: replication.directory,
        point: point
          ? {
              seq: point.seq,
              takenAt: point.takenAt,
              disks: point.disks.map((d) => ({
                diskId: d.diskId,
                path: d.path,
                capacityBytes: d.capacityBytes,
              })),
            }
          : null,
        description: replication.description
          ? (replication.description as unknown as Record<string, unknown>)
          : null,
      });
    }
    return { format: 'zenith-recovery-plan/1', exportedAt: this.deps.clock.now(), plan, vms };
  }

  /** Queues a run (ZEN_RECOVERY_PLAN_BLOCKED with the list when it cannot run). */
  async run(
    idOrName: string,
    operation: RecoveryOperation,
    actor: Actor,
    requestId?: string,
  ): Promise<Task<RunParams>> {
    const plan = await this.#row(idOrName);
    const preview = await this.preview(plan.id, operation);
    if (preview.problems.length > 0)
      throw new ZenithError(
        'ZEN_RECOVERY_PLAN_BLOCKED',
        `the plan ${plan.name} cannot run: ${preview.problems.map((p) => `${p.vm?.name ?? ''}: ${p.problem}`).join('; ')}`,
        { problems: preview.problems },
      );
    const running = await this.#runningRun(plan.id);
    if (running)
      throw new ZenithError('ZEN_CONFLICT', `a run of ${plan.name} is under way (${running.id})`, {
        runId: running.id,
      });
    const now = this.deps.clock.now();
    const runId = newId('recoveryRun', now);
    return this.deps.tasks.submit({
      kind: this.#run,
      targetId: null,
      params: { runId },
      owner: actor,
      ...(requestId ? { requestId } : {}),
      prepare: async (tx, taskId) => {
        await tx
          .insertInto('recovery_runs')
          .values({
            id: runId,
            plan_id: plan.id,
            operation,
            state: 'running',
            task_id: taskId,
            started_at: now,
            ended_at: null,
            error: null,
            created_by: actor.name,
          })
          .execute();
        for (const step of preview.steps)
          await this.#insertStep(tx, runId, step.vm.id, step.vm.name, step.group);
      },
    });
  }

  /**
   * Reprotect: after a failover or planned migration, each VM of the plan (running from its
   * replica at the target site) is replicated back to the site it came from — to the host it ran
   * on when that one answers, else to the first host there that answers — and the plan turns
   * round: its source is the site the VMs run at now. A planned migration of the turned plan is the
   * failback. Refused (ZEN_RECOVERY_PLAN_BLOCKED, with the list) unless every VM runs from its
   * replica, and while a run of the plan is under way.
   */
  async reprotect(idOrName: string, by: string): Promise<RecoveryPlanView> {
    const plan = await this.#row(idOrName);
    const running = await this.#runningRun(plan.id);
    if (running) throw new ZenithError('ZEN_CONFLICT', `a run of ${plan.name} is under way`);
    const back = await this.deps.sites.get(plan.source_site_id);
    const vms = (JSON.parse(plan.groups) as RecoveryGroup[]).flatMap((g) => g.vms);
    const problems: Array<{ vm: { id: string; name: string }; problem: string }> = [];
    const targets = new Map<string, string>();
    for (const vmId of vms) {
      const vm = { id: vmId, name: this.deps.inventory.index.get(vmId)?.name ?? vmId };
      const replication = await this.deps.replication.ofVm(vmId).catch(() => null);
      if (replication?.state !== 'recovered') {
        problems.push({ vm, problem: 'it does not run from its replica (nothing to reprotect)' });
        continue;
      }
      const target = await this.#homeOf(
        vmId,
        back.hosts.map((h) => h.id),
      );
      if (!target) problems.push({ vm, problem: `no host of ${back.name} answers` });
      else targets.set(vmId, target);
    }
    if (problems.length > 0)
      throw new ZenithError(
        'ZEN_RECOVERY_PLAN_BLOCKED',
        `the plan ${plan.name} cannot be reprotected: ${problems.map((p) => `${p.vm.name}: ${p.problem}`).join('; ')}`,
        { problems },
      );
    for (const [vmId, hostId] of targets) await this.deps.replication.reprotect(vmId, hostId, by);
    await this.deps.store.db
      .updateTable('recovery_plans')
      .set({
        source_site_id: plan.target_site_id,
        target_site_id: plan.source_site_id,
        updated_at: this.deps.clock.now(),
      })
      .where('id', '=', plan.id)
      .execute();
    return this.get(plan.id);
  }

  /** The plan's run under way, if any. */
  #runningRun(planId: string) {
    return this.deps.store.db
      .selectFrom('recovery_runs')
      .select('id')
      .where('plan_id', '=', planId)
      .where('state', '=', 'running')
      .executeTakeFirst();
  }

  /** Where a VM goes back to: the host it left (when it answers), else the first that answers. */
  async #homeOf(vmId: string, hostIds: string[]): Promise<string | null> {
    const left = await this.deps.store.db
      .selectFrom('recovery_run_vms')
      .innerJoin('recovery_runs', 'recovery_runs.id', 'recovery_run_vms.run_id')
      .select(['recovery_run_vms.images'])
      .where('recovery_run_vms.vm_id', '=', vmId)
      .where('recovery_runs.operation', 'in', ['planned', 'failover'])
      .where('recovery_run_vms.state', '=', 'up')
      .orderBy('recovery_runs.started_at', 'desc')
      .executeTakeFirst();
    const from = left?.images
      ? (JSON.parse(left.images) as { fromConnectionId?: string }).fromConnectionId
      : undefined;
    const answering = hostIds
      .map((id) => this.deps.inventory.index.get(id))
      .filter(
        (host): host is ManagedObject =>
          host?.connectionId !== undefined &&
          host.connectionId !== null &&
          this.deps.connections.connectedIds().includes(host.connectionId),
      );
    return (answering.find((h) => h.connectionId === from) ?? answering[0])?.id ?? null;
  }

  async runs(idOrName: string): Promise<RecoveryRunView[]> {
    const plan = await this.#row(idOrName);
    const rows = await this.deps.store.db
      .selectFrom('recovery_runs')
      .selectAll()
      .where('plan_id', '=', plan.id)
      .orderBy('started_at', 'desc')
      .execute();
    return Promise.all(rows.map((row) => this.#runView(row)));
  }

  /** Queues the removal of a test run's copies. */
  async cleanUp(idOrName: string, runId: string, actor: Actor, requestId?: string) {
    const plan = await this.#row(idOrName);
    const run = await this.deps.store.db
      .selectFrom('recovery_runs')
      .selectAll()
      .where('id', '=', runId)
      .where('plan_id', '=', plan.id)
      .executeTakeFirst();
    if (!run)
      throw new ZenithError('ZEN_NOT_FOUND', `no run ${runId} of ${plan.name}`, { id: runId });
    if (run.operation !== 'test')
      throw new ZenithError(
        'ZEN_INVALID_STATE',
        `only a test's copies are cleaned up (${runId} was a ${run.operation})`,
      );
    if (run.state === 'running' || run.state === 'cleaned')
      throw new ZenithError('ZEN_CONFLICT', `the test ${runId} is ${run.state}`);
    return this.deps.tasks.submit({
      kind: this.#cleanup,
      targetId: null,
      params: { runId },
      owner: actor,
      ...(requestId ? { requestId } : {}),
    });
  }

  /**
   * Before the connections start after a restart: the hosts VMs were failed over (or migrated)
   * away from still have their stopped definitions; those are not the VMs any more. And a step
   * that was starting a VM at its target when the control plane stopped may have started it: until
   * `until`, that host's report of it is the same VM moving (its location says failover), not a
   * stranger claiming its UUID — the resumed run then finds it there and starts nothing twice.
   */
  async prepareAfterRestart(until: number): Promise<void> {
    const starting = await this.deps.store.db
      .selectFrom('recovery_run_vms')
      .innerJoin('recovery_runs', 'recovery_runs.id', 'recovery_run_vms.run_id')
      .select(['recovery_run_vms.vm_id', 'recovery_run_vms.host_id', 'recovery_run_vms.started_at'])
      .where('recovery_runs.operation', 'in', ['planned', 'failover'])
      .where('recovery_runs.state', '=', 'running')
      .where('recovery_run_vms.state', '=', 'starting')
      .execute();
    for (const step of starting) {
      const connectionId = step.host_id
        ? this.deps.inventory.index.get(step.host_id)?.connectionId
        : undefined;
      if (!connectionId) continue;
      this.deps.inventory.handovers.allowUntil(step.vm_id, connectionId, until);
      this.deps.inventory.locations.expect(step.vm_id, {
        reason: 'failover',
        leftAt: Number(step.started_at ?? this.deps.clock.now()),
      });
    }
    await this.#disownRecovered();
  }

  async #disownRecovered(): Promise<void> {
    const rows = await this.deps.store.db
      .selectFrom('recovery_run_vms')
      .innerJoin('recovery_runs', 'recovery_runs.id', 'recovery_run_vms.run_id')
      .select(['recovery_run_vms.vm_id', 'recovery_run_vms.reason', 'recovery_run_vms.images'])
      .where('recovery_runs.operation', 'in', ['planned', 'failover'])
      .where('recovery_run_vms.state', '=', 'up')
      .execute();
    for (const row of rows) {
      const images = row.images
        ? (JSON.parse(row.images) as StepImages & { fromConnectionId?: string })
        : null;
      const vm = this.deps.inventory.index.get(row.vm_id);
      if (images?.fromConnectionId && vm?.connectionId !== images.fromConnectionId)
        this.deps.inventory.handovers.disown(row.vm_id, images.fromConnectionId);
    }
  }

  // ---- a run ----

  async #runPlan(task: Task<RunParams>, context: ActionContext): Promise<unknown> {
    const run = await this.#runRow(task.params.runId);
    if (run.state !== 'running') return this.#runView(run);
    const plan = await this.#row(run.plan_id);
    const groups = JSON.parse(plan.groups) as RecoveryGroup[];
    const networkMap = JSON.parse(plan.network_map) as NetworkMapping[];
    const operation = run.operation as RecoveryOperation;
    try {
      for (const [index, group] of groups.entries()) {
        const steps = (await this.#steps(run.id)).filter((s) => s.group_index === index);
        context.progress({
          percent: Math.round((100 * index) / groups.length),
          message: `group ${index + 1} of ${groups.length}: ${steps.map((s) => s.vm_name).join(', ')}`,
        });
        await Promise.all(
          steps
            .filter((step) => step.state !== 'up' && step.state !== 'failed')
            .map((step) =>
              this.#recoverOne(
                run.id,
                operation,
                step,
                group,
                networkMap,
                Number(plan.shutdown_timeout_seconds),
                context,
              ).catch(async (error: unknown) => {
                if (context.signal.aborted) throw error;
                await this.#updateStep(run.id, step.vm_id, {
                  state: 'failed',
                  reason: messageOf(error),
                });
              }),
            ),
        );
      }
    } catch (error) {
      await this.#finish(run.id, plan.name, operation, 'failed', messageOf(error));
      throw error;
    }
    const steps = await this.#steps(run.id);
    const failed = steps.filter((s) => s.state === 'failed');
    await this.#finish(
      run.id,
      plan.name,
      operation,
      failed.length > 0 ? 'failed' : 'done',
      failed.length > 0
        ? failed.map((s) => `${s.vm_name}: ${s.reason ?? 'failed'}`).join('; ')
        : null,
    );
    const view = await this.#runView(await this.#runRow(run.id));
    if (failed.length > 0)
      throw new ZenithError(
        'ZEN_INVALID_STATE',
        `the ${operation} of ${plan.name} left VMs not up: ${view.error ?? ''}`,
        { runId: run.id },
      );
    return view;
  }

  /** One VM of a run: to `up`, or a thrown error (recorded as its reason). */
  async #recoverOne(
    runId: string,
    operation: RecoveryOperation,
    step: RunVmRow,
    group: RecoveryGroup,
    networkMap: NetworkMapping[],
    shutdownTimeoutSeconds: number,
    context: ActionContext,
  ): Promise<void> {
    const { inventory, replication: replications, clock } = this.deps;
    const replication = await replications.ofVm(step.vm_id);
    const host = inventory.index.get(replication.targetHostId);
    if (!host?.connectionId) throw new ZenithError('ZEN_NOT_FOUND', 'the replica host is gone');
    // After a restart the target's connection comes back a moment later: it is waited for.
    await this.#answers(host.connectionId, host.name, context.signal);
    const driver = this.deps.connections.driver(host.connectionId);
    const portable = requireFacet(driver, 'portableVms', 'starting a replica');
    const streams = replications.targetStreams(host.id);
    const startedAt = step.started_at ?? clock.now();
    // Resumed: the step may have started the VM already — the target host says so.
    const recorded = step.images
      ? (JSON.parse(step.images) as StepImages & { fromConnectionId?: string })
      : null;
    if (step.state === 'starting' && recorded) {
      const defined = this.#definedAt(host.connectionId, recorded.uuid);
      if (defined) {
        // Defined there by the attempt the kill cut off: started if it is not, never defined again.
        const running =
          defined.facts['power.state'] === 'running'
            ? defined
            : await this.#start(defined, host.connectionId, context);
        if (operation !== 'test')
          await this.#settle(step.vm_id, recorded.fromConnectionId, host.connectionId, replication);
        await this.#up(runId, operation, step, host, running, group, startedAt, context);
        return;
      }
    }
    let point: ReplicaPoint | null;
    let fromConnectionId: string | undefined;
    if (operation === 'planned') {
      const vm = inventory.index.get(step.vm_id);
      fromConnectionId = vm?.connectionId ?? undefined;
      if (vm?.connectionId && vm.externalId && vm.connectionId !== host.connectionId) {
        if (vm.facts['power.state'] !== 'stopped') {
          await this.#updateStep(runId, step.vm_id, { state: 'stopping', started_at: startedAt });
          const stopped = await this.#shutDown(vm, shutdownTimeoutSeconds, context);
          await inventory.applyChanges(vm.connectionId, [stopped]);
        }
        point = await replications.finalCycle(step.vm_id, context);
      } else point = await replications.latestReady(replication.id);
    } else {
      if (operation === 'failover') fromConnectionId = await this.#fence(step, host, runId);
      point = step.point_id
        ? ((await replications.points(replication.id)).find((p) => p.id === step.point_id) ?? null)
        : await replications.latestReady(replication.id);
    }
    if (!point || !replication.description)
      throw new ZenithError('ZEN_INVALID_STATE', 'its replica has no ready point in time');
    // The images and identity are chosen once and written before anything is made.
    const suffix = runId.slice(-6).toLowerCase();
    const images: StepImages & { fromConnectionId?: string } = recorded ?? {
      uuid: operation === 'test' ? randomUUID() : replication.description.uuid,
      name:
        operation === 'test'
          ? `${replication.description.name}-test-${suffix}`
          : replication.description.name,
      paths: point.disks.map(
        (disk) =>
          `${replication.directory}/${operation === 'test' ? `test-${suffix}` : 'run'}-${disk.diskId}.qcow2`,
      ),
      ...(fromConnectionId ? { fromConnectionId } : {}),
    };
    await this.#updateStep(runId, step.vm_id, {
      state: 'starting',
      point_id: point.id,
      point_taken_at: point.takenAt,
      host_id: host.id,
      images: JSON.stringify(images),
      started_at: startedAt,
      reason: null,
    });
    // Each disk runs on an overlay of the point's image: the replica itself is never written.
    for (const [index, disk] of point.disks.entries()) {
      const writer = await streams.openWriter(
        {
          location: { path: images.paths[index]! },
          format: 'qcow2',
          capacityBytes: disk.capacityBytes,
          replace: true,
          dataExtents: [],
          backing: { path: disk.path },
        },
        context,
      );
      await writer.finish();
    }
    const description = this.#describe(replication, images, point, operation, networkMap);
    const vmId = operation === 'test' ? null : step.vm_id;
    const release = vmId ? inventory.handovers.hold(vmId, host.connectionId) : () => undefined;
    const expected = vmId
      ? inventory.locations.expect(vmId, { reason: 'failover', leftAt: startedAt })
      : () => undefined;
    let arrived;
    try {
      arrived = await portable.runVm(description, { start: true }, context);
      await inventory.applyChanges(host.connectionId, [arrived]);
    } catch (error) {
      expected();
      throw error;
    } finally {
      release();
    }
    if (vmId) await this.#settle(vmId, fromConnectionId, host.connectionId, replication);
    const running = this.#definedAt(host.connectionId, images.uuid);
    if (!running)
      throw new ZenithError('ZEN_DRIVER_ERROR', `${images.name} did not appear on ${host.name}`);
    await this.#up(runId, operation, step, host, running, group, startedAt, context);
  }

  /**
   * The VM runs at the target as itself: the host it left no longer stands for it (its stale
   * definition is left out), and its replication is spent (no more cycles).
   */
  async #settle(
    vmId: string,
    fromConnectionId: string | undefined,
    toConnectionId: string,
    replication: Replication,
  ): Promise<void> {
    if (fromConnectionId && fromConnectionId !== toConnectionId)
      this.deps.inventory.handovers.disown(vmId, fromConnectionId);
    await this.deps.replication.markRecovered(replication.id);
  }

  /** Starts a VM an interrupted step defined but did not start; answers it as reported. */
  async #start(
    vm: ManagedObject,
    connectionId: string,
    context: ActionContext,
  ): Promise<ManagedObject> {
    const started = await this.deps.connections
      .driver(connectionId)
      .startVm(vm.externalId!, context);
    await this.deps.inventory.applyChanges(connectionId, [started]);
    return this.deps.inventory.index.get(vm.id) ?? vm;
  }

  /**
   * A planned migration's stop: the guest is asked to shut down (ACPI), and powered off once the
   * plan's shutdown timeout has passed (its writes that reached the disk are all replicated after).
   */
  async #shutDown(vm: ManagedObject, timeoutSeconds: number, context: ActionContext) {
    const driver = this.deps.connections.driver(vm.connectionId!);
    if (timeoutSeconds === 0) return driver.stopVm(vm.externalId!, context, { force: true });
    const asked = driver.stopVm(vm.externalId!, context, { force: false });
    const timer = new Promise<'late'>((resolve) => {
      const handle = setTimeout(() => resolve('late'), timeoutSeconds * 1000);
      void asked.finally(() => clearTimeout(handle)).catch(() => undefined);
    });
    const first = await Promise.race([asked, timer]);
    if (first !== 'late') return first;
    this.deps.logger.info(
      { vm: vm.name, timeoutSeconds },
      'a guest did not shut down within the plan’s timeout: powered off',
    );
    const forced = await driver.stopVm(vm.externalId!, context, { force: true });
    await asked.catch(() => undefined);
    return forced;
  }

  /** Waits for the guest to be up (its marker, or running), then records the step up. */
  async #up(
    runId: string,
    operation: RecoveryOperation,
    step: RunVmRow,
    host: ManagedObject,
    running: ManagedObject,
    group: RecoveryGroup,
    startedAt: number,
    context: ActionContext,
  ): Promise<void> {
    if (group.marker) {
      const driver = this.deps.connections.driver(host.connectionId!);
      if (!driver.openConsole)
        throw new ZenithError('ZEN_UNSUPPORTED', `${host.name} offers no console to wait on`);
      const remaining = Math.max(
        1000,
        startedAt + group.timeoutSeconds * 1000 - this.deps.clock.now(),
      );
      const watch = await watchConsole(
        await driver.openConsole(running.externalId!, 'serial'),
        new RegExp(group.marker),
        remaining,
        context.signal,
      );
      if (!watch.matched)
        throw new ZenithError(
          'ZEN_TIMEOUT',
          `${running.name} did not print /${group.marker}/ within ${group.timeoutSeconds} s (last output: ${watch.tail.slice(-200)})`,
        );
    }
    const upAt = this.deps.clock.now();
    await this.#updateStep(runId, step.vm_id, {
      state: 'up',
      run_vm_id: running.id,
      up_at: upAt,
      reason: null,
    });
    await this.deps.events.publish([
      {
        type: 'recovery.vmUp',
        objectId: running.id,
        data: { name: running.name, runId, operation, hostId: host.id, runVmId: running.id },
      },
    ]);
  }

  /**
   * A failover's fence of the VM's last host: powered off through its BMC where it has one. One
   * without a BMC must not answer (the site is lost); one that answers still runs the VM — that is
   * a planned migration's case, refused here. Answers the connection the VM leaves.
   */
  async #fence(step: RunVmRow, target: ManagedObject, runId: string): Promise<string | undefined> {
    const vm = this.deps.inventory.index.get(step.vm_id);
    const hostId = vm?.computed['location.hostId'];
    const host = typeof hostId === 'string' ? this.deps.inventory.index.get(hostId) : undefined;
    if (!vm || !host || host.id === target.id) return vm?.connectionId ?? undefined;
    if (typeof host.computed['machine.id'] === 'string') {
      await this.deps.machines.fence(host.id);
      this.deps.logger.info(
        { host: host.name, runId },
        'a failover fenced the lost host through its BMC',
      );
      return vm.connectionId ?? undefined;
    }
    const answering =
      host.connectionId !== null &&
      this.deps.connections.connectedIds().includes(host.connectionId);
    if (answering && vm.facts['power.state'] === 'running')
      throw new ZenithError(
        'ZEN_INVALID_STATE',
        `${host.name} answers and runs ${vm.name}: the site is not lost (run a planned migration instead)`,
        { hostId: host.id },
      );
    return vm.connectionId ?? undefined;
  }

  /** The description the target runs: the replica's images, the plan's networks, a test's identity. */
  #describe(
    replication: Replication,
    images: StepImages,
    point: ReplicaPoint,
    operation: RecoveryOperation,
    networkMap: NetworkMapping[],
  ): PortableVm {
    const base = replication.description!;
    const key = (nic: PortableNic) =>
      nic.attachment.kind === 'bridge'
        ? `bridge:${nic.attachment.bridge}`
        : nic.attachment.kind === 'network'
          ? `network:${nic.attachment.network}`
          : nic.attachment.kind;
    const attach = (value: string): PortableNic['attachment'] => {
      if (value === 'user' || value === 'isolated') return { kind: value };
      const [kind, name] = value.split(':') as [string, string];
      return kind === 'bridge'
        ? { kind: 'bridge', bridge: name }
        : { kind: 'network', network: name };
    };
    return {
      ...base,
      uuid: images.uuid,
      name: images.name,
      disks: base.disks.map((disk, index) => ({
        ...disk,
        location: { path: images.paths[index] ?? images.paths.at(-1)! },
        format: 'qcow2',
        capacityBytes: point.disks[index]?.capacityBytes ?? disk.capacityBytes,
        owned: true,
      })),
      nics: base.nics.map((nic) => {
        const mapping = networkMap.find((m) => m.from === key(nic));
        const to = operation === 'test' ? (mapping?.test ?? 'isolated') : (mapping?.to ?? key(nic));
        return { ...nic, attachment: attach(to) };
      }),
    };
  }

  /** Waits (up to 60 s) until the connection is connected (and so has reported what runs there). */
  async #answers(connectionId: string, name: string, signal: AbortSignal): Promise<void> {
    const deadline = this.deps.clock.now() + 60_000;
    while (!this.deps.connections.connectedIds().includes(connectionId)) {
      if (this.deps.clock.now() >= deadline)
        throw new ZenithError('ZEN_CONNECTION_DISCONNECTED', `${name} does not answer`);
      await this.deps.clock.sleep(250, signal);
    }
  }

  /** The VM of this UUID the connection reports now (running or not). */
  #definedAt(connectionId: string, uuid: string): ManagedObject | undefined {
    return this.deps.inventory.index
      .ofKind('vm')
      .find(
        (vm) =>
          vm.connectionId === connectionId &&
          vm.facts['vm.uuid'] === uuid &&
          vm.status === 'present',
      );
  }

  // ---- cleanup of a test ----

  async #runCleanup(task: Task<RunParams>, context: ActionContext): Promise<unknown> {
    const run = await this.#runRow(task.params.runId);
    const removed: string[] = [];
    for (const step of await this.#steps(run.id)) {
      if (!step.images || !step.host_id) continue;
      const images = JSON.parse(step.images) as StepImages;
      const host = this.deps.inventory.index.get(step.host_id);
      if (!host?.connectionId)
        throw new ZenithError('ZEN_INVALID_STATE', `the test's host is gone`);
      const copy = this.#definedAt(host.connectionId, images.uuid);
      const driver = this.deps.connections.driver(host.connectionId);
      if (copy?.externalId) {
        if (copy.facts['power.state'] !== 'stopped')
          await driver.stopVm(copy.externalId, context, { force: true });
        await driver.deleteVm(copy.externalId, context);
        await this.deps.inventory.applyChanges(
          host.connectionId,
          [],
          [{ kind: 'vm', externalId: copy.externalId }],
        );
      }
      // Its overlays (gone with the VM, which owned them; a copy never defined left them).
      await this.deps.replication
        .targetStreams(host.id)
        .removeImages(images.paths.map((path) => ({ path })));
      await this.#updateStep(run.id, step.vm_id, { state: 'removed' });
      removed.push(images.name);
    }
    await this.deps.store.db
      .updateTable('recovery_runs')
      .set({ state: 'cleaned' })
      .where('id', '=', run.id)
      .execute();
    return { runId: run.id, removed };
  }

  // ---- records ----

  async #row(idOrName: string) {
    const row = await this.deps.store.db
      .selectFrom('recovery_plans')
      .selectAll()
      .where((eb) => eb.or([eb('id', '=', idOrName), eb('name', '=', idOrName)]))
      .executeTakeFirst();
    if (!row)
      throw new ZenithError('ZEN_NOT_FOUND', `no recovery plan '${idOrName}'`, { id: idOrName });
    return row;
  }

  async #runRow(runId: string) {
    const row = await rowById(
      this.deps.store.db,
      'recovery_runs',
      runId,
      `no recovery run ${runId}`,
    );
    return row;
  }

  async #steps(runId: string): Promise<RunVmRow[]> {
    return this.deps.store.db
      .selectFrom('recovery_run_vms')
      .selectAll()
      .where('run_id', '=', runId)
      .orderBy('group_index')
      .execute();
  }

  async #insertStep(tx: Tx, runId: string, vmId: string, vmName: string, group: number) {
    await tx
      .insertInto('recovery_run_vms')
      .values({
        run_id: runId,
        vm_id: vmId,
        vm_name: vmName,
        group_index: group,
        state: 'pending',
        point_id: null,
        point_taken_at: null,
        host_id: null,
        run_vm_id: null,
        images: null,
        started_at: null,
        up_at: null,
        reason: null,
      })
      .execute();
  }

  async #updateStep(
    runId: string,
    vmId: string,
    patch: Partial<Omit<RunVmRow, 'run_id' | 'vm_id'>>,
  ) {
    await this.deps.store.db
      .updateTable('recovery_run_vms')
      .set(patch)
      .where('run_id', '=', runId)
      .where('vm_id', '=', vmId)
      .execute();
  }

  async #finish(
    runId: string,
    planName: string,
    operation: RecoveryOperation,
    state: 'done' | 'failed',
    error: string | null,
  ): Promise<void> {
    await this.deps.store.db
      .updateTable('recovery_runs')
      .set({ state, ended_at: this.deps.clock.now(), error })
      .where('id', '=', runId)
      .execute();
    const view = await this.#runView(await this.#runRow(runId));
    await this.deps.events.publish([
      {
        type: 'recovery.runFinished',
        objectId: null,
        data: { name: planName, runId, operation, state, rtoSeconds: view.rtoSeconds },
      },
    ]);
  }

  async #view(row: RecoveryPlansTable): Promise<RecoveryPlanView> {
    const name = (id: string) => this.deps.inventory.index.get(id)?.name ?? id;
    const [source, target] = await Promise.all([
      this.deps.sites
        .get(row.source_site_id)
        .catch(() => ({ id: row.source_site_id, name: row.source_site_id })),
      this.deps.sites
        .get(row.target_site_id)
        .catch(() => ({ id: row.target_site_id, name: row.target_site_id })),
    ]);
    const last = await this.deps.store.db
      .selectFrom('recovery_runs')
      .selectAll()
      .where('plan_id', '=', row.id)
      .orderBy('started_at', 'desc')
      .executeTakeFirst();
    return {
      id: row.id,
      name: row.name,
      description: row.description,
      sourceSite: { id: source.id, name: source.name },
      targetSite: { id: target.id, name: target.name },
      groups: (JSON.parse(row.groups) as RecoveryGroup[]).map((group) => ({
        vms: group.vms.map((id) => ({ id, name: name(id) })),
        marker: group.marker,
        timeoutSeconds: group.timeoutSeconds,
      })),
      networkMap: JSON.parse(row.network_map) as NetworkMapping[],
      shutdownTimeoutSeconds: Number(row.shutdown_timeout_seconds),
      lastRun: last ? await this.#runView(last) : null,
      createdBy: row.created_by,
      createdAt: Number(row.created_at),
      updatedAt: Number(row.updated_at),
    };
  }

  async #runView(row: RecoveryRunsTable): Promise<RecoveryRunView> {
    const steps = await this.#steps(row.id);
    const name = (id: string | null) =>
      id ? { id, name: this.deps.inventory.index.get(id)?.name ?? id } : null;
    const started = Number(row.started_at);
    const ups = steps.map((s) => s.up_at);
    const allUp = steps.length > 0 && ups.every((u) => u !== null);
    const taken = steps.flatMap((s) =>
      s.point_taken_at === null ? [] : [Number(s.point_taken_at)],
    );
    return {
      id: row.id,
      planId: row.plan_id,
      operation: row.operation as RecoveryRunView['operation'],
      state: row.state,
      taskId: row.task_id,
      startedAt: started,
      endedAt: row.ended_at === null ? null : Number(row.ended_at),
      rtoSeconds: allUp ? (Math.max(...ups.map(Number)) - started) / 1000 : null,
      dataLossSeconds: taken.length > 0 ? Math.max(0, (started - Math.min(...taken)) / 1000) : null,
      error: row.error,
      vms: steps.map((s) => ({
        vm: { id: s.vm_id, name: s.vm_name },
        group: Number(s.group_index),
        state: s.state,
        pointTakenAt: s.point_taken_at === null ? null : Number(s.point_taken_at),
        host: name(s.host_id),
        runVmId: s.run_vm_id,
        startedAt: s.started_at === null ? null : Number(s.started_at),
        upAt: s.up_at === null ? null : Number(s.up_at),
        reason: s.reason,
      })),
      createdBy: row.created_by,
    };
  }
}

function messageOf(error: unknown): string {
  return isZenithError(error)
    ? `${error.code}: ${error.message}`
    : error instanceof Error
      ? error.message
      : String(error);
}
