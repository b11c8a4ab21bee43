/**
 * Running a recovery plan (the durable task `recovery.run`): its groups in order, each VM's step
 * written before it is taken and checked again when a run is resumed after a restart; and the
 * cleanup of a test's copies (`recovery.cleanup`). The operations are those of ./recovery-plans.ts.
 */
import { randomUUID } from 'node:crypto';
import { ZenithError } from '../../core/errors.js';
import {
  requireFacet,
  type ActionContext,
  type PortableNic,
  type PortableVm,
} from '../../hypervisors/driver.js';
import { watchFromTheStart } from '../backup/console-watch.js';
import type { ManagedObject } from '../inventory/model.js';
import type { Task } from '../tasks/task-service.js';
import type { ReplicaPoint, Replication } from './replication-service.js';
import {
  messageOf,
  type NetworkMapping,
  type RecoveryGroup,
  type RecoveryOperation,
  type RecoveryPlanDeps,
  type RecoveryRecords,
  type RunParams,
  type RunVmRow,
  type StepImages,
} from './recovery-records.js';

export class RecoveryRunner {
  constructor(
    private readonly deps: RecoveryPlanDeps,
    private readonly records: RecoveryRecords,
  ) {}

  async runPlan(task: Task<RunParams>, context: ActionContext): Promise<unknown> {
    const run = await this.records.run(task.params.runId);
    if (run.state !== 'running') return this.records.runView(run);
    const plan = await this.records.plan(run.plan_id);
    const groups = JSON.parse(plan.groups) as RecoveryGroup[];
    const networkMap = JSON.parse(plan.network_map) as NetworkMapping[];
    const operation = run.operation as RecoveryOperation;
    try {
      for (const [index, group] of groups.entries()) {
        const steps = (await this.records.steps(run.id)).filter((s) => s.group_index === index);
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
                await this.records.updateStep(run.id, step.vm_id, {
                  state: 'failed',
                  reason: messageOf(error),
                });
              }),
            ),
        );
      }
    } catch (error) {
      await this.records.finish(run.id, plan.name, operation, 'failed', messageOf(error));
      throw error;
    }
    const steps = await this.records.steps(run.id);
    const failed = steps.filter((s) => s.state === 'failed');
    await this.records.finish(
      run.id,
      plan.name,
      operation,
      failed.length > 0 ? 'failed' : 'done',
      failed.length > 0
        ? failed.map((s) => `${s.vm_name}: ${s.reason ?? 'failed'}`).join('; ')
        : null,
    );
    const view = await this.records.runView(await this.records.run(run.id));
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
        // Suspended: started paused for its console, the guest is let run in #up.
        const running = ['running', 'suspended'].includes(defined.facts['power.state'] as string)
          ? defined
          : await this.#start(defined, host.connectionId, context);
        if (operation !== 'test')
          await this.#settle(
            step.vm_id,
            { connectionId: recorded.fromConnectionId, externalId: recorded.fromExternalId },
            host.connectionId,
            replication,
            operation,
          );
        await this.#up(runId, operation, step, host, running, group, startedAt, context);
        return;
      }
    }
    let point: ReplicaPoint | null;
    let fromConnectionId: string | undefined;
    let fenced: StepImages['fenced'];
    let fromExternalId: string | undefined;
    if (operation === 'planned') {
      const vm = inventory.index.get(step.vm_id);
      fromConnectionId = vm?.connectionId ?? undefined;
      fromExternalId = vm?.externalId ?? undefined;
      if (vm?.connectionId && vm.externalId && vm.connectionId !== host.connectionId) {
        if (vm.facts['power.state'] !== 'stopped') {
          await this.records.updateStep(runId, step.vm_id, {
            state: 'stopping',
            started_at: startedAt,
          });
          const stopped = await this.#shutDown(vm, shutdownTimeoutSeconds, context);
          await inventory.applyChanges(vm.connectionId, [stopped]);
        }
        point = await replications.finalCycle(step.vm_id, context);
      } else point = await replications.latestReady(replication.id);
    } else {
      if (operation === 'failover')
        ({ fromConnectionId, fromExternalId, fenced } = await this.#fence(step, host, runId));
      // None chosen: a sync replication's replica gives a point of now (every write the guest saw
      // complete); an interval one's latest ready point is the newest there is.
      point = step.point_id
        ? ((await replications.points(replication.id)).find((p) => p.id === step.point_id) ?? null)
        : operation === 'failover'
          ? await replications.lastPoint(step.vm_id, runId)
          : await replications.testPoint(step.vm_id, runId);
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
      ...(fromConnectionId && fromExternalId ? { fromExternalId } : {}),
      ...(fenced ? { fenced } : {}),
    };
    await this.records.updateStep(runId, step.vm_id, {
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
      // Waiting on a console marker: the guest runs only once its console is read (#up), so that
      // a line printed in its first second is not missed.
      const paused = group.marker !== null && portable.startsPaused === true;
      arrived = await portable.runVm(description, { start: true, paused }, context);
      await inventory.applyChanges(host.connectionId, [arrived]);
    } catch (error) {
      expected();
      throw error;
    } finally {
      release();
    }
    if (vmId)
      await this.#settle(
        vmId,
        { connectionId: fromConnectionId, externalId: fromExternalId },
        host.connectionId,
        replication,
        operation,
      );
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
    from: { connectionId?: string | undefined; externalId?: string | undefined },
    toConnectionId: string,
    replication: Replication,
    operation: RecoveryOperation,
  ): Promise<void> {
    const fromConnectionId = from.connectionId;
    if (fromConnectionId && fromConnectionId !== toConnectionId) {
      this.deps.inventory.handovers.disown(vmId, fromConnectionId);
      // Its stale definition at the host it left, and the disks that one owns: reclaimed once a
      // replica of it at that site is ready again (./replica-leftovers.ts). A connection of one
      // host (an agent, a QEMU host): the host it left is that one.
      const hosts = this.deps.inventory.index
        .ofKind('host')
        .filter((host) => host.connectionId === fromConnectionId);
      const left = hosts.length === 1 ? hosts[0] : undefined;
      const description = replication.description;
      if (left && description)
        await this.deps.replication.leftovers.record({
          vmId,
          hostId: left.id,
          definitionId: from.externalId ?? null,
          paths: description.disks.flatMap((disk) =>
            disk.owned && disk.location.path !== undefined ? [disk.location.path] : [],
          ),
          reason: operation === 'failover' ? 'failover' : 'planned',
        });
    }
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
    const driver = this.deps.connections.driver(host.connectionId!);
    /** A VM started paused (for its console) runs its guest now. */
    const letRun = async () => {
      if (running.facts['power.state'] !== 'suspended') return;
      const resumed = await driver.resumeVm(running.externalId!, context);
      await this.deps.inventory.applyChanges(host.connectionId!, [resumed]);
    };
    if (group.marker) {
      const remaining = Math.max(
        1000,
        startedAt + group.timeoutSeconds * 1000 - this.deps.clock.now(),
      );
      // A console that cannot be read fails the step, never at the cost of the guest: it runs.
      const serial = await (async () => {
        if (!driver.openConsole)
          throw new ZenithError('ZEN_UNSUPPORTED', `${host.name} offers no console to wait on`);
        return driver.openConsole(running.externalId!, 'serial');
      })().catch(async (error: unknown) => {
        await letRun();
        throw error;
      });
      const watch = await watchFromTheStart(
        serial,
        new RegExp(group.marker),
        remaining,
        letRun,
        context.signal,
      );
      if (!watch.matched)
        throw new ZenithError(
          'ZEN_TIMEOUT',
          `${running.name} did not print /${group.marker}/ within ${group.timeoutSeconds} s (last output: ${watch.tail.slice(-200)})`,
        );
    } else await letRun();
    if (group.guestAgent === true)
      await requireFacet(driver, 'guestAgent', 'wait on a guest agent').waitForGuestAgent(
        running.externalId!,
        Math.max(1000, startedAt + group.timeoutSeconds * 1000 - this.deps.clock.now()),
        context,
      );
    const upAt = this.deps.clock.now();
    await this.records.updateStep(runId, step.vm_id, {
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
   * a planned migration's case, refused here. Answers the connection the VM leaves, and the fence.
   */
  async #fence(
    step: RunVmRow,
    target: ManagedObject,
    runId: string,
  ): Promise<{
    fromConnectionId: string | undefined;
    fromExternalId: string | undefined;
    fenced?: StepImages['fenced'];
  }> {
    const vm = this.deps.inventory.index.get(step.vm_id);
    const hostId = vm?.computed['location.hostId'];
    const host = typeof hostId === 'string' ? this.deps.inventory.index.get(hostId) : undefined;
    const fromConnectionId = vm?.connectionId ?? undefined;
    const fromExternalId = vm?.externalId ?? undefined;
    if (!vm || !host || host.id === target.id) return { fromConnectionId, fromExternalId };
    if (typeof host.computed['machine.id'] === 'string') {
      const result = await this.deps.machines.fence(host.id);
      this.deps.logger.info(
        { host: host.name, runId, elapsedMs: result.elapsedMs },
        'a failover fenced the lost host through its BMC',
      );
      const fenced = {
        hostId: host.id,
        hostName: host.name,
        at: this.deps.clock.now(),
        elapsedMs: Math.round(result.elapsedMs),
      };
      return { fromConnectionId, fromExternalId, fenced };
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
    return { fromConnectionId, fromExternalId };
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

  async cleanup(task: Task<RunParams>, context: ActionContext): Promise<unknown> {
    const run = await this.records.run(task.params.runId);
    const removed: string[] = [];
    for (const step of await this.records.steps(run.id)) {
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
      await this.records.updateStep(run.id, step.vm_id, { state: 'removed' });
      removed.push(images.name);
    }
    await this.deps.store.db
      .updateTable('recovery_runs')
      .set({ state: 'cleaned' })
      .where('id', '=', run.id)
      .execute();
    return { runId: run.id, removed };
  }
}
