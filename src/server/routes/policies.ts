import {
  createPolicy,
  deletePolicy,
  effectivePolicies,
  getPolicy,
  listPolicies,
  replacePolicy,
  testPolicy,
  type PolicyBody,
} from '../../api/policies.js';
import type { FastifyRequest } from 'fastify';
import { ZenithError } from '../../core/errors.js';
import type { AccessService } from '../../services/identity/access-service.js';
import type { InventoryService } from '../../services/inventory/inventory-service.js';
import type { PlacementService } from '../../services/placement/placement-service.js';
import {
  hostSideSettings,
  mergeSettings,
  settingsOnHost,
  type CompiledPolicy,
  type PolicyInput,
} from '../../services/policy/policy-document.js';
import type { PolicyService } from '../../services/policy/policy-service.js';
import {
  testExpression,
  testPolicy as testDraft,
  withDraft,
} from '../../services/placement/policy-tester.js';
import { policyEnvOf } from '../../services/placement/policy-tester.js';
import { principalOf } from '../auth.js';
import { serve, type Api } from '../route.js';
import { requesterOf } from './placement.js';

/** Exact optional properties: TypeBox's optional fields may hold undefined; the service's may not. */
function inputOf(body: PolicyBody): PolicyInput {
  return JSON.parse(JSON.stringify(body)) as PolicyInput;
}

export interface PolicyRouteServices {
  access: AccessService;
  policies: PolicyService;
  placement: PlacementService;
  inventory: InventoryService;
}

export async function policyRoutes(
  app: Api,
  { access, policies, placement, inventory }: PolicyRouteServices,
): Promise<void> {
  /**
   * A policy that replicates puts copies of VMs at hosts of another site, by the replication
   * service's identity: saving one needs replication.manage on everything, as sites do, so no one
   * with policy.manage alone reaches further through it.
   */
  const requireReplicationManage = (request: FastifyRequest) => {
    const principal = principalOf(request);
    if (!access.decide(principal, 'replication.manage', null).allowed)
      throw new ZenithError(
        'ZEN_FORBIDDEN',
        `${principal.name} may not replication.manage everywhere: a policy's replication settings need it`,
        { permission: 'replication.manage', role: principal.role },
      );
  };
  serve(app, listPolicies, {}, async () => ({ items: policies.list() }));
  serve(app, getPolicy, {}, async (request) => policies.get(request.params.id));
  serve(app, createPolicy, { audit: 'policy.create' }, async (request, reply) => {
    if (request.body.settings?.replication !== undefined) requireReplicationManage(request);
    return reply
      .status(201)
      .send(await policies.create(inputOf(request.body), principalOf(request)));
  });
  serve(app, replacePolicy, { audit: 'policy.replace' }, async (request) => {
    // Adding replication settings, or replacing a policy that has them (which changes or removes
    // them), needs the same.
    if (
      request.body.settings?.replication !== undefined ||
      policies.get(request.params.id).settings.replication !== undefined
    )
      requireReplicationManage(request);
    return policies.replace(request.params.id, inputOf(request.body));
  });
  serve(app, deletePolicy, { audit: 'policy.delete' }, async (request) =>
    policies.delete(request.params.id),
  );

  serve(app, testPolicy, { audit: false }, async (request) => {
    const body = request.body;
    if ((body.policy === undefined) === (body.expression === undefined))
      throw new ZenithError(
        'ZEN_BAD_REQUEST',
        'give either a policy or an expression to test, not both and not neither',
      );
    const requester = requesterOf(principalOf(request));
    const limit = body.limit ?? 20;
    if (body.expression !== undefined) {
      const model = placement.model({ requester });
      return testExpression(model, inventory, body.expression, {
        limit,
        ...(body.vm ? { vm: body.vm } : {}),
        ...(body.host ? { host: body.host } : {}),
      });
    }
    if (body.host)
      throw new ZenithError(
        'ZEN_BAD_REQUEST',
        "'host' goes with an expression; a policy is tested on every VM it applies to",
      );
    const draft = policies.compileDraft(inputOf(body.policy!));
    const model = placement.model({ requester, policies: withDraft(policies.index, draft) });
    return testDraft(model, inventory, draft, { limit, ...(body.vm ? { vm: body.vm } : {}) });
  });

  serve(app, effectivePolicies, {}, async (request) => {
    const model = placement.model({ requester: requesterOf(principalOf(request)) });
    const vmObject = inventory.resolve('vm', request.query.vm);
    const vm = model.vms.get(vmObject.id);
    if (!vm) throw new ZenithError('ZEN_INVALID_STATE', `${vmObject.name} is missing`);
    const host = request.query.host
      ? model.host(inventory.resolve('host', request.query.host).id)
      : vm.home >= 0
        ? model.hosts[vm.home]
        : undefined;
    const env = policyEnvOf(model, vm, host);
    const inForce = [...(host?.policies ?? []), ...model.vmPolicies(vm)].filter((policy) => {
      try {
        return policy.when === null || policy.when.evaluate(env) === true;
      } catch {
        return false;
      }
    });
    const summary = (p: CompiledPolicy) => ({ id: p.id, name: p.name, scope: p.scope });
    // Overcommit and migration settings are the host's: they come from its policies whatever their `when`.
    const hostPolicies = host?.policies ?? [];
    return {
      vm: { id: vm.id, name: vm.name },
      host: host ? { id: host.id, name: host.name } : null,
      policies: inForce.map(summary),
      settings: host ? settingsOnHost(inForce, hostPolicies) : mergeSettings(inForce),
      capacity: host
        ? {
            from: hostPolicies
              .filter((p) => hostSideSettings.some((key) => p.settings[key] !== undefined))
              .map(summary),
            cpuOvercommit: host.cpuOvercommit,
            memoryOvercommit: host.memoryOvercommit,
            cpuCapacity: host.cpuCapacity,
            memoryCapacityBytes: host.memoryCapacity,
            migration: host.migration,
          }
        : null,
    };
  });
}
