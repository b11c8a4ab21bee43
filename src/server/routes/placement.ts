import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { FastifyInstance } from 'fastify';
import { Type } from 'typebox';
import type { ControlPlane } from '../../app/control-plane.js';
import type { Requester } from '../../services/policy/fact-sources.js';
import type { Principal } from '../../services/identity/roles.js';
import { actorOf, principalOf } from '../auth.js';
import { FactValueInput, IdParams, TaskView } from '../schemas.js';

export function requesterOf(principal: Principal): Requester {
  return { id: principal.id, name: principal.name, kind: principal.kind, role: principal.role };
}

export const DraftVmBody = Type.Object(
  {
    name: Type.Optional(Type.String({ minLength: 1, maxLength: 63 })),
    cpus: Type.Integer({ minimum: 1, maximum: 512 }),
    memoryBytes: Type.Integer({ minimum: 16 * 1024 * 1024 }),
    diskBytes: Type.Optional(Type.Integer({ minimum: 0 })),
    type: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
    tags: Type.Optional(Type.Array(Type.String({ maxLength: 128 }), { maxItems: 64 })),
    facts: Type.Optional(
      Type.Record(Type.String({ maxLength: 128 }), FactValueInput, { maxProperties: 64 }),
    ),
  },
  { additionalProperties: false },
);

export async function placementRoutes(root: FastifyInstance, plane: ControlPlane): Promise<void> {
  const app = root.withTypeProvider<TypeBoxTypeProvider>();

  app.post(
    '/placement/preview',
    {
      config: { permission: 'inventory.read', audit: false },
      schema: {
        tags: ['placement'],
        summary:
          'Where a VM would go, and why: the chosen host, the best candidates with their scores, and for every rejected host the check or constraint that rejected it. vm is a new VM (size, type, tags, facts) or an existing one by id or name (where it could move).',
        body: Type.Object(
          {
            vm: Type.Union([Type.String({ minLength: 1, maxLength: 200 }), DraftVmBody]),
            topCandidates: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000 })),
          },
          { additionalProperties: false },
        ),
        response: { 200: Type.Unknown() },
      },
    },
    async (request) => {
      const { vm, topCandidates } = request.body;
      const draft =
        typeof vm === 'string'
          ? vm
          : (JSON.parse(JSON.stringify({ name: 'new-vm', diskBytes: 0, ...vm })) as {
              name: string;
              cpus: number;
              memoryBytes: number;
            });
      return plane.placement.preview(
        { vm: draft, explain: true, ...(topCandidates ? { topCandidates } : {}) },
        requesterOf(principalOf(request)),
      );
    },
  );

  const { plans } = plane;
  const Plan = Type.Unknown({
    description:
      'A plan: kind, state, moves in schedule order (each with predicted startMs, endMs, bytes and bandwidth), predictedCompletionMs, the imbalance before and after (rebalancing), and once applied its outcome (each move with its task, state and actual times, actualCompletionMs)',
  });

  app.post(
    '/placement/rebalance',
    {
      config: { permission: 'host.maintenance', audit: 'placement.rebalance' },
      schema: {
        tags: ['placement'],
        summary:
          'Compute a rebalancing plan: balance (lower the imbalance) or consolidate (empty hosts), at most maxMoves, each move bringing minBenefit; recommend stores it for approval, automatic applies it at once',
        body: Type.Object(
          {
            mode: Type.Optional(Type.Union([Type.Literal('balance'), Type.Literal('consolidate')])),
            maxMoves: Type.Optional(Type.Integer({ minimum: 1, maximum: 10_000 })),
            minBenefit: Type.Optional(Type.Number({ minimum: 0, maximum: 1 })),
            scope: Type.Optional(
              Type.Object(
                {
                  kind: Type.Union([Type.Literal('cluster'), Type.Literal('datacenter')]),
                  id: Type.String({ minLength: 1, maxLength: 200 }),
                },
                { additionalProperties: false },
              ),
            ),
            consolidateBelow: Type.Optional(Type.Number({ minimum: 0, maximum: 1 })),
            targetLoad: Type.Optional(Type.Number({ minimum: 0.05, maximum: 1 })),
            apply: Type.Optional(
              Type.Union([Type.Literal('recommend'), Type.Literal('automatic')]),
            ),
          },
          { additionalProperties: false },
        ),
        response: {
          201: Type.Object({ plan: Plan, task: Type.Union([TaskView, Type.Null()]) }),
        },
      },
    },
    async (request, reply) => {
      const body = request.body;
      const { plan, task } = await plans.rebalance(
        {
          mode: body.mode ?? 'balance',
          maxMoves: body.maxMoves ?? 20,
          minBenefit: body.minBenefit ?? 0.05,
          apply: body.apply ?? 'recommend',
          ...(body.scope ? { scope: body.scope } : {}),
          ...(body.consolidateBelow !== undefined
            ? { consolidateBelow: body.consolidateBelow }
            : {}),
          ...(body.targetLoad !== undefined ? { targetLoad: body.targetLoad } : {}),
        },
        actorOf(principalOf(request)),
      );
      return reply.status(201).send({ plan, task });
    },
  );

  app.post(
    '/placement/plans',
    {
      config: { permission: 'host.maintenance', audit: 'placement.plan' },
      schema: {
        tags: ['placement'],
        summary:
          'Schedule given moves (VM to host, by id or name): ordered so that capacity and anti-affinity hold at every moment, or 409 ZEN_PLAN_INFEASIBLE naming the moves that wait on each other',
        body: Type.Object(
          {
            moves: Type.Array(
              Type.Object(
                {
                  vm: Type.String({ minLength: 1, maxLength: 200 }),
                  to: Type.String({ minLength: 1, maxLength: 200 }),
                },
                { additionalProperties: false },
              ),
              { minItems: 1, maxItems: 10_000 },
            ),
          },
          { additionalProperties: false },
        ),
        response: { 201: Plan },
      },
    },
    async (request, reply) =>
      reply
        .status(201)
        .send(await plans.planMoves(request.body.moves, actorOf(principalOf(request)))),
  );

  app.get(
    '/placement/plans',
    {
      config: { permission: 'inventory.read' },
      schema: {
        tags: ['placement'],
        summary: 'Plans, newest first',
        querystring: Type.Object(
          {
            kind: Type.Optional(
              Type.Union([
                Type.Literal('rebalance'),
                Type.Literal('evacuation'),
                Type.Literal('moves'),
              ]),
            ),
            state: Type.Optional(
              Type.Union([
                Type.Literal('proposed'),
                Type.Literal('applying'),
                Type.Literal('applied'),
                Type.Literal('failed'),
                Type.Literal('discarded'),
              ]),
            ),
            limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 500, default: 50 })),
          },
          { additionalProperties: false },
        ),
        response: { 200: Type.Object({ items: Type.Array(Plan) }) },
      },
    },
    async (request) => ({
      items: await plans.plans.list({
        limit: request.query.limit ?? 50,
        ...(request.query.kind ? { kind: request.query.kind } : {}),
        ...(request.query.state ? { state: request.query.state } : {}),
      }),
    }),
  );

  app.get(
    '/placement/plans/:id',
    {
      config: { permission: 'inventory.read' },
      schema: {
        tags: ['placement'],
        summary: 'One plan',
        params: IdParams,
        response: { 200: Plan },
      },
    },
    async (request) => plans.plans.get(request.params.id),
  );

  app.post(
    '/placement/plans/:id/apply',
    {
      config: { permission: 'host.maintenance', audit: false },
      schema: {
        tags: ['placement'],
        summary:
          'Apply a proposed plan: 202 with the task that runs its moves as migrate tasks; 409 ZEN_PLAN_STALE when its VMs have moved since',
        params: IdParams,
        response: { 202: TaskView },
      },
    },
    async (request, reply) =>
      reply.status(202).send(await plans.apply(request.params.id, actorOf(principalOf(request)))),
  );

  app.delete(
    '/placement/plans/:id',
    {
      config: { permission: 'host.maintenance', audit: 'placement.discard' },
      schema: {
        tags: ['placement'],
        summary: 'Discard a proposed plan',
        params: IdParams,
        response: { 200: Plan },
      },
    },
    async (request) => plans.discard(request.params.id),
  );

  app.post(
    '/hosts/:id/evacuate',
    {
      config: { permission: 'host.maintenance', audit: false },
      schema: {
        tags: ['placement'],
        summary:
          'Maintenance mode: every VM leaves the host (by id or name) by policy, in a planned order; 202 with the task (params: planId, predictedCompletionMs); the host is in maintenance once empty. 409 ZEN_NO_PLACEMENT when a VM has nowhere to go',
        params: IdParams,
        response: { 202: TaskView },
      },
    },
    async (request, reply) => {
      const { task } = await plane.evacuations.evacuate(
        request.params.id,
        actorOf(principalOf(request)),
      );
      return reply.status(202).send(task);
    },
  );

  app.post(
    '/hosts/:id/exit-maintenance',
    {
      config: { permission: 'host.maintenance', audit: 'host.exitMaintenance' },
      schema: {
        tags: ['placement'],
        summary: 'Take a host out of maintenance: placement may use it again',
        params: IdParams,
        response: { 200: Type.Object({ hostId: Type.String(), mode: Type.String() }) },
      },
    },
    async (request) =>
      plane.evacuations.exitMaintenance(request.params.id, actorOf(principalOf(request))),
  );
}
