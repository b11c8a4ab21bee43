import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { FastifyInstance } from 'fastify';
import { Type, type Static } from 'typebox';
import { ZenithError } from '../../core/errors.js';
import type { ControlPlane } from '../../app/control-plane.js';
import {
  hostSideSettings,
  mergeSettings,
  settingsOnHost,
  type CompiledPolicy,
  type PolicyInput,
} from '../../services/policy/policy-document.js';
import { testExpression, testPolicy, withDraft } from '../../services/placement/policy-tester.js';
import { principalOf } from '../auth.js';
import { IdParams } from '../schemas.js';
import { requesterOf } from './placement.js';

const Name = Type.String({ minLength: 1, maxLength: 64 });
const Expression = Type.String({ minLength: 1, maxLength: 16_384 });
const Weight = Type.Number({ minimum: -1000, maximum: 1000 });

const MigrationSettings = Type.Object(
  {
    maxPerHost: Type.Optional(Type.Integer({ minimum: 1, maximum: 64 })),
    maxTotal: Type.Optional(Type.Integer({ minimum: 1, maximum: 10_000 })),
    hostBandwidthBytesPerSecond: Type.Optional(Type.Number({ minimum: 1e6, maximum: 1e12 })),
    interClusterBandwidthBytesPerSecond: Type.Optional(
      Type.Number({ minimum: 1e6, maximum: 1e12 }),
    ),
    interDatacenterBandwidthBytesPerSecond: Type.Optional(
      Type.Number({ minimum: 1e6, maximum: 1e12 }),
    ),
    maxDowntimeMs: Type.Optional(Type.Integer({ minimum: 1, maximum: 60_000 })),
    defaultDirtyBytesPerSecond: Type.Optional(Type.Number({ minimum: 0, maximum: 1e11 })),
  },
  { additionalProperties: false },
);

const Rule = Type.Object(
  {
    name: Name,
    kind: Type.Union([
      Type.Literal('separate'),
      Type.Literal('together'),
      Type.Literal('onHosts'),
      Type.Literal('offHosts'),
    ]),
    vms: Type.Optional(Expression),
    groupBy: Type.Optional(Expression),
    hosts: Type.Optional(Expression),
    hard: Type.Boolean(),
    weight: Type.Optional(Type.Number({ minimum: 0, maximum: 1000 })),
  },
  { additionalProperties: false },
);

const Settings = Type.Object(
  {
    cpuOvercommit: Type.Optional(Type.Number({ minimum: 0.1, maximum: 64 })),
    memoryOvercommit: Type.Optional(Type.Number({ minimum: 0.1, maximum: 4 })),
    strategy: Type.Optional(Type.Union([Type.Literal('spread'), Type.Literal('pack')])),
    strategyWeight: Type.Optional(Type.Number({ minimum: 0, maximum: 1000 })),
    costWeight: Type.Optional(Type.Number({ minimum: 0, maximum: 1000 })),
    migration: Type.Optional(MigrationSettings),
  },
  { additionalProperties: false },
);

export const PolicyBody = Type.Object(
  {
    name: Name,
    description: Type.Optional(Type.String({ maxLength: 1000 })),
    enabled: Type.Optional(Type.Boolean()),
    scope: Type.Object(
      {
        kind: Type.Union([
          Type.Literal('global'),
          Type.Literal('datacenter'),
          Type.Literal('cluster'),
          Type.Literal('resourceGroup'),
          Type.Literal('vm'),
        ]),
        id: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
      },
      { additionalProperties: false },
    ),
    when: Type.Optional(Type.String({ maxLength: 16_384 })),
    constraints: Type.Optional(
      Type.Array(
        Type.Object({ name: Name, expression: Expression }, { additionalProperties: false }),
        { maxItems: 64 },
      ),
    ),
    preferences: Type.Optional(
      Type.Array(
        Type.Object(
          { name: Name, expression: Expression, weight: Weight },
          { additionalProperties: false },
        ),
        { maxItems: 64 },
      ),
    ),
    rules: Type.Optional(Type.Array(Rule, { maxItems: 32 })),
    settings: Type.Optional(Settings),
  },
  { additionalProperties: false },
);
type PolicyBody = Static<typeof PolicyBody>;

const PolicyView = Type.Object({
  id: Type.String(),
  name: Type.String(),
  description: Type.Union([Type.String(), Type.Null()]),
  enabled: Type.Boolean(),
  scope: Type.Object({
    kind: Type.String(),
    id: Type.Union([Type.String(), Type.Null()]),
    name: Type.Union([Type.String(), Type.Null()]),
  }),
  when: Type.Union([Type.String(), Type.Null()]),
  constraints: Type.Array(Type.Object({ name: Type.String(), expression: Type.String() })),
  preferences: Type.Array(
    Type.Object({ name: Type.String(), expression: Type.String(), weight: Type.Number() }),
  ),
  rules: Type.Array(Rule),
  settings: Settings,
  createdBy: Type.String(),
  createdAt: Type.Number(),
  updatedAt: Type.Number(),
});

/** Exact optional properties: TypeBox's optional fields may hold undefined; the service's may not. */
function inputOf(body: PolicyBody): PolicyInput {
  return JSON.parse(JSON.stringify(body)) as PolicyInput;
}

export async function policyRoutes(root: FastifyInstance, plane: ControlPlane): Promise<void> {
  const app = root.withTypeProvider<TypeBoxTypeProvider>();
  const { policies, placement, inventory } = plane;

  app.get(
    '/policies',
    {
      config: { permission: 'policy.read' },
      schema: {
        tags: ['policies'],
        summary: 'Every policy, general scopes first',
        response: { 200: Type.Object({ items: Type.Array(PolicyView) }) },
      },
    },
    async () => ({ items: policies.list() }),
  );

  app.get(
    '/policies/:id',
    {
      config: { permission: 'policy.read' },
      schema: {
        tags: ['policies'],
        summary: 'One policy by id or name',
        params: IdParams,
        response: { 200: PolicyView },
      },
    },
    async (request) => policies.get(request.params.id),
  );

  app.post(
    '/policies',
    {
      config: { permission: 'policy.manage', audit: 'policy.create' },
      schema: {
        tags: ['policies'],
        summary:
          'Create a policy; it is compiled first, and refused with the field, line and column of any mistake',
        body: PolicyBody,
        response: { 201: PolicyView },
      },
    },
    async (request, reply) =>
      reply.status(201).send(await policies.create(inputOf(request.body), principalOf(request))),
  );

  app.put(
    '/policies/:id',
    {
      config: { permission: 'policy.manage', audit: 'policy.replace' },
      schema: {
        tags: ['policies'],
        summary: 'Replace a policy (by id or name) with a new version',
        params: IdParams,
        body: PolicyBody,
        response: { 200: PolicyView },
      },
    },
    async (request) => policies.replace(request.params.id, inputOf(request.body)),
  );

  app.delete(
    '/policies/:id',
    {
      config: { permission: 'policy.manage', audit: 'policy.delete' },
      schema: {
        tags: ['policies'],
        summary: 'Delete a policy (by id or name)',
        params: IdParams,
        response: { 200: PolicyView },
      },
    },
    async (request) => policies.delete(request.params.id),
  );

  app.post(
    '/policies/test',
    {
      config: { permission: 'policy.read', audit: false },
      schema: {
        tags: ['policies'],
        summary:
          'Try a policy (or one expression) against the live inventory without saving it: the VMs it applies to, which break it where they run now, and — with vm — where placement would put that VM',
        body: Type.Object(
          {
            policy: Type.Optional(PolicyBody),
            expression: Type.Optional(Expression),
            vm: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
            host: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
            limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, default: 20 })),
          },
          { additionalProperties: false },
        ),
        response: { 200: Type.Unknown() },
      },
    },
    async (request) => {
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
      return testPolicy(model, inventory, draft, { limit, ...(body.vm ? { vm: body.vm } : {}) });
    },
  );

  app.get(
    '/policies/effective',
    {
      config: { permission: 'policy.read' },
      schema: {
        tags: ['policies'],
        summary:
          'The policies in force for a VM (on its host, or on host) and the settings they add up to',
        querystring: Type.Object(
          {
            vm: Type.String({ minLength: 1, maxLength: 200 }),
            host: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
          },
          { additionalProperties: false },
        ),
        response: { 200: Type.Unknown() },
      },
    },
    async (request) => {
      const model = placement.model({ requester: requesterOf(principalOf(request)) });
      const vmObject = inventory.resolve('vm', request.query.vm);
      const vm = model.vms.get(vmObject.id);
      if (!vm) throw new ZenithError('ZEN_INVALID_STATE', `${vmObject.name} is missing`);
      const host = request.query.host
        ? model.host(inventory.resolve('host', request.query.host).id)
        : vm.home >= 0
          ? model.hosts[vm.home]
          : undefined;
      const env = {
        vm: vm.facts,
        group: vm.groupFacts,
        user: model.requester,
        host: host?.facts,
        cluster: host?.clusterFacts,
        datacenter: host?.datacenterFacts,
      };
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
    },
  );
}
