/**
 * Replication by policy: a policy's `replication` settings (enabled, targetSite, rpoSeconds, …)
 * protect every VM the policy is in force for — its scope, and its `when` over the VM's facts, as
 * placement reads them — that is not replicated yet, as VMs come and as the policy changes. Each
 * such VM is replicated to the target site's host that holds the fewest replicas and can keep
 * them, by the replication service's identity, and an event says so. A VM refused (its host
 * cannot be read, it is at the target site already, no host there can keep replicas) gets one
 * event with the reason until the policies change; it is tried again then. Nothing is ever
 * unprotected by a policy: a VM the policy no longer covers keeps its replica until an operator
 * removes it, and a VM replicated already keeps its own settings.
 */
import type { SiteView } from '../../api/replication.js';
import type { Clock } from '../../core/clock.js';
import { isZenithError, ZenithError } from '../../core/errors.js';
import type { Logger } from '../../core/logger.js';
import { facetOf } from '../../hypervisors/driver.js';
import type { Store } from '../../store/store.js';
import type { ConnectionService } from '../connections/connection-service.js';
import type { EventBus } from '../events/event-bus.js';
import { PolicyPacedLoop } from '../ha/policy-paced-loop.js';
import type { InventoryService } from '../inventory/inventory-service.js';
import { whenHolds } from '../placement/placement-checks.js';
import type { PlacementService } from '../placement/placement-service.js';
import { policyEnvOf } from '../placement/policy-tester.js';
import {
  mergeSettings,
  type CompiledPolicy,
  type ReplicationPolicySettings,
} from '../policy/policy-document.js';
import type { PolicyIndex, PolicyService } from '../policy/policy-service.js';
import type { ReplicationService } from './replication-service.js';
import type { SiteService } from './sites.js';

export interface ReplicationByPolicyDeps {
  store: Store;
  inventory: InventoryService;
  connections: ConnectionService;
  policies: PolicyService;
  placement: PlacementService;
  sites: SiteService;
  replication: ReplicationService;
  events: EventBus;
  clock: Clock;
  logger: Logger;
  /** How often the policies are applied while one replicates by policy (default 5 s). */
  tickMs?: number;
}

/** Whether any policy replicates: what each tick asks first. */
function replicates(index: PolicyIndex): boolean {
  const on = (policy: CompiledPolicy) => policy.settings.replication?.enabled === true;
  return index.global.some(on) || [...index.byScopeId.values()].some((list) => list.some(on));
}

export class ReplicationByPolicy {
  #loop: PolicyPacedLoop | undefined;
  /** VMs refused under the policies of this version: said once, tried again when they change. */
  #refused = new Set<string>();
  #refusedAt = -1;
  /** What the last round saw (see apply). */
  #seen = '';

  constructor(private readonly deps: ReplicationByPolicyDeps) {}

  start(): void {
    this.#loop = new PolicyPacedLoop({
      clock: this.deps.clock,
      logger: this.deps.logger,
      policies: this.deps.policies,
      tickMs: this.deps.tickMs ?? 5000,
      idleMs: 60_000,
      failure: 'applying the replication policies failed',
      check: () => this.apply(),
    });
  }

  async stop(): Promise<void> {
    await this.#loop?.stop();
  }

  /** Protects what the policies say and is not protected yet; answers whether it was idle. */
  async apply(): Promise<boolean> {
    const { inventory, policies, placement, store } = this.deps;
    const index = policies.index;
    if (!replicates(index)) return true;
    if (index.version !== this.#refusedAt) {
      this.#refused.clear();
      this.#refusedAt = index.version;
    }
    const replicated = await store.db.selectFrom('replications').select('vm_id').execute();
    // Nothing that decides it changed since the last round (policies, VMs, hosts, replications):
    // the fleet's model is not built again.
    const seen = [
      index.version,
      inventory.index.kindVersion('vm'),
      inventory.index.kindVersion('host'),
      replicated.length,
    ].join(':');
    if (seen === this.#seen) return false;
    const [copies] = await Promise.all([
      // A test failover's copies are not VMs to protect: they go with the test's cleanup.
      store.db
        .selectFrom('recovery_run_vms')
        .select('run_vm_id')
        .where('run_vm_id', 'is not', null)
        .execute(),
    ]);
    const skip = new Set([
      ...replicated.map((r) => r.vm_id),
      ...copies.flatMap((c) => (c.run_vm_id ? [c.run_vm_id] : [])),
    ]);
    const model = placement.model();
    for (const vm of model.vms.values()) {
      if (skip.has(vm.id) || this.#refused.has(vm.id)) continue;
      const object = inventory.index.get(vm.id);
      if (object?.status !== 'present' || !object.connectionId) continue;
      const host = vm.home >= 0 ? model.hosts[vm.home] : undefined;
      const env = policyEnvOf(model, vm, host);
      const inForce = [...(host?.policies ?? []), ...model.vmPolicies(vm)].filter((policy) =>
        whenHolds(policy, env),
      );
      const settings = mergeSettings(inForce).replication;
      // A policy that enables replication names its site and RPO (checked when saved).
      if (
        settings?.enabled !== true ||
        settings.targetSite === undefined ||
        settings.rpoSeconds === undefined
      )
        continue;
      // Every policy that gave a replication setting (most often one).
      const from = inForce
        .filter((policy) => policy.settings.replication !== undefined)
        .map((policy) => policy.name)
        .join(', ');
      await this.#protect(
        vm.id,
        object.name,
        { ...settings, targetSite: settings.targetSite, rpoSeconds: settings.rpoSeconds },
        from,
      );
    }
    // Only a whole round counts as seen: one cut off by a failure is run again at the next tick.
    this.#seen = seen;
    return false;
  }

  async #protect(
    vmId: string,
    vmName: string,
    settings: ReplicationPolicySettings & { targetSite: string; rpoSeconds: number },
    policy: string,
  ): Promise<void> {
    const { replication, events, logger } = this.deps;
    try {
      const site = await this.deps.sites.get(settings.targetSite);
      const hostId = this.deps.inventory.index.get(vmId)?.computed['location.hostId'];
      const here = typeof hostId === 'string' ? await this.deps.sites.siteOf(hostId) : null;
      if (here?.id === site.id)
        throw new ZenithError(
          'ZEN_INVALID_STATE',
          `${vmName} runs at ${site.name}, the site the policy replicates to`,
          { site: site.name },
        );
      const targetHost = await this.#targetHost(site, vmName);
      const view = await replication.protect(
        vmId,
        {
          targetHost,
          rpoSeconds: settings.rpoSeconds,
          ...(settings.intervalSeconds !== undefined
            ? { intervalSeconds: settings.intervalSeconds }
            : {}),
          ...(settings.keepPoints !== undefined ? { keepPoints: settings.keepPoints } : {}),
          ...(settings.mode !== undefined ? { mode: settings.mode } : {}),
        },
        `policy:${policy}`,
      );
      logger.info({ vm: vmName, policy, targetHost: view.targetHost.name }, 'replicated by policy');
      await events.publish([
        {
          type: 'replication.protectedByPolicy',
          objectId: vmId,
          data: {
            name: vmName,
            policy,
            targetHost: view.targetHost.name,
            rpoSeconds: view.rpoSeconds,
          },
        },
      ]);
    } catch (error) {
      if (!isZenithError(error)) throw error;
      // Replicated meanwhile (by an operator, or another round): nothing to say.
      if (error.code === 'ZEN_CONFLICT' && /already/.test(error.message)) return;
      this.#refused.add(vmId);
      logger.warn(
        { vm: vmName, policy, code: error.code, why: error.message },
        'a policy asks to replicate a VM that cannot be: tried again when the policies change',
      );
      await events.publish([
        {
          type: 'replication.policyRefused',
          objectId: vmId,
          data: { name: vmName, policy, code: error.code, message: error.message },
        },
      ]);
    }
  }

  /** The site's host that holds the fewest replicas among those whose driver can keep them. */
  async #targetHost(target: SiteView, vmName: string): Promise<string> {
    const { inventory, connections, store } = this.deps;
    const answering = new Set(connections.connectedIds());
    const counts = new Map<string, number>();
    for (const row of await store.db.selectFrom('replications').select('target_host_id').execute())
      counts.set(row.target_host_id, (counts.get(row.target_host_id) ?? 0) + 1);
    const able = target.hosts
      .map((member) => inventory.index.get(member.id))
      .filter((host) => {
        if (!host?.connectionId || !answering.has(host.connectionId)) return false;
        const streams = facetOf(connections.driver(host.connectionId), 'diskStreams');
        return streams?.mergeOverlay !== undefined;
      })
      .sort(
        (a, b) =>
          (counts.get(a!.id) ?? 0) - (counts.get(b!.id) ?? 0) || a!.name.localeCompare(b!.name),
      );
    const [host] = able;
    if (!host)
      throw new ZenithError(
        'ZEN_INVALID_STATE',
        `no host of the site ${target.name} answers and can keep replicas of ${vmName}`,
        { site: target.name },
      );
    return host.id;
  }
}
