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
import type {
  RecoveryPlanExport,
  RecoveryPlanView,
  RecoveryPreview,
  RecoveryRunView,
} from '../../api/replication.js';
import { ZenithError } from '../../core/errors.js';
import { newId } from '../../core/ids.js';
import { facetOf } from '../../hypervisors/driver.js';
import type { Actor } from '../audit/audit-service.js';
import type { ManagedObject } from '../inventory/model.js';
import type { Task, TaskKind } from '../tasks/task-service.js';
import {
  defaultGroupTimeoutSeconds,
  RecoveryRecords,
  RunParams,
  type RecoveryGroup,
  type RecoveryOperation,
  type RecoveryPlanDeps,
  type RecoveryPlanInput,
  type StepImages,
} from './recovery-records.js';
import { RecoveryRunner } from './recovery-runner.js';
import { rowsByName } from '../../store/rows.js';

export type {
  NetworkMapping,
  RecoveryGroup,
  RecoveryOperation,
  RecoveryPlanDeps,
  RecoveryPlanInput,
} from './recovery-records.js';

export class RecoveryPlans {
  readonly #run: TaskKind<RunParams>;
  readonly #cleanup: TaskKind<RunParams>;
  readonly #records: RecoveryRecords;

  constructor(private readonly deps: RecoveryPlanDeps) {
    this.#records = new RecoveryRecords(deps);
    const runner = new RecoveryRunner(deps, this.#records);
    this.#run = deps.tasks.register({
      name: 'recovery.run',
      params: RunParams,
      run: async ({ task, signal, progress }) => runner.runPlan(task, { signal, progress }),
      // Every VM's step is recorded before it is taken and checked again when resumed.
      recover: () => Promise.resolve('retry'),
    });
    this.#cleanup = deps.tasks.register({
      name: 'recovery.cleanup',
      params: RunParams,
      run: async ({ task, signal, progress }) => runner.cleanup(task, { signal, progress }),
      recover: () => Promise.resolve('retry'),
    });
  }

  // ---- plans ----

  async list(): Promise<RecoveryPlanView[]> {
    const rows = await rowsByName(this.deps.store.db, 'recovery_plans');
    return Promise.all(rows.map((row) => this.#records.planView(row)));
  }

  async get(idOrName: string): Promise<RecoveryPlanView> {
    return this.#records.planView(await this.#records.plan(idOrName));
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
      guestAgent: group.guestAgent === true,
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
    const plan = await this.#records.plan(idOrName);
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
    const plan = await this.#records.plan(idOrName);
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
        else if (
          group.guestAgent === true &&
          !facetOf(this.deps.connections.driver(host.connectionId), 'guestAgent')
        )
          problems.push({ vm, problem: `${host.name} cannot wait on a guest agent` });
        if (group.guestAgent === true && replication.description?.guestAgent !== true)
          problems.push({
            vm,
            problem: 'its group waits on a guest agent, and it has no guest agent channel',
          });
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
    const plan = await this.#records.plan(idOrName);
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
          await this.#records.insertStep(tx, runId, step.vm.id, step.vm.name, step.group);
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
    const plan = await this.#records.plan(idOrName);
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
    const plan = await this.#records.plan(idOrName);
    const rows = await this.deps.store.db
      .selectFrom('recovery_runs')
      .selectAll()
      .where('plan_id', '=', plan.id)
      .orderBy('started_at', 'desc')
      .execute();
    return Promise.all(rows.map((row) => this.#records.runView(row)));
  }

  /** Queues the removal of a test run's copies. */
  async cleanUp(idOrName: string, runId: string, actor: Actor, requestId?: string) {
    const plan = await this.#records.plan(idOrName);
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
}
