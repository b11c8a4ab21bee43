import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { FastifyInstance } from 'fastify';
import { Type } from 'typebox';
import { dimensions, type Dimension } from '../../services/accounting/metering.js';
import { reportCsv } from '../../services/accounting/report-csv.js';
import type { ControlPlane } from '../../app/control-plane.js';
import { FactValue, IdParams } from '../schemas.js';

const name = Type.String({ minLength: 1, maxLength: 128 });
const decimal = Type.String({ pattern: '^[0-9]{1,12}(\\.[0-9]{1,12})?$', maxLength: 32 });
const match = Type.Optional(
  Type.Record(Type.String({ maxLength: 128 }), Type.Union([FactValue, Type.Array(FactValue)]), {
    maxProperties: 32,
  }),
);

const RateCardInput = Type.Object(
  {
    effectiveFrom: Type.Integer({ minimum: 0, description: 'Milliseconds since the epoch' }),
    currency: Type.String({ pattern: '^[A-Z]{3}$' }),
    timeZone: Type.String({ minLength: 1, maxLength: 64, description: 'IANA zone of the windows' }),
    note: Type.Optional(Type.String({ maxLength: 500 })),
    windows: Type.Optional(
      Type.Array(
        Type.Object(
          {
            name,
            days: Type.Array(
              Type.String({ enum: ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'] }),
              {
                minItems: 1,
                maxItems: 7,
              },
            ),
            hours: Type.Tuple([
              Type.Integer({ minimum: 0, maximum: 24 }),
              Type.Integer({ minimum: 0, maximum: 24 }),
            ]),
          },
          { additionalProperties: false },
        ),
        { maxItems: 32 },
      ),
    ),
    rates: Type.Array(
      Type.Object(
        {
          match,
          window: Type.Optional(name),
          vcpuHour: Type.Optional(decimal),
          memoryGiBHour: Type.Optional(decimal),
          diskGiBHour: Type.Optional(decimal),
        },
        { additionalProperties: false },
      ),
      { maxItems: 500 },
    ),
    fixed: Type.Optional(
      Type.Array(Type.Object({ name, match, monthly: decimal }, { additionalProperties: false }), {
        maxItems: 200,
      }),
    ),
    discounts: Type.Optional(
      Type.Array(
        Type.Object(
          { group: name, percent: Type.String({ pattern: '^[0-9]{1,3}(\\.[0-9]{1,2})?$' }) },
          { additionalProperties: false },
        ),
        { maxItems: 500 },
      ),
    ),
  },
  { additionalProperties: false },
);

const ReportQuery = Type.Object(
  {
    from: Type.Integer({ minimum: 0 }),
    to: Type.Integer({ minimum: 0 }),
    granularity: Type.Optional(
      Type.String({ enum: ['hourly', 'daily', 'monthly'], default: 'daily' }),
    ),
    groupBy: Type.Optional(Type.String({ enum: [...dimensions], default: 'vm' })),
    timeZone: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
    format: Type.Optional(Type.String({ enum: ['json', 'csv'], default: 'json' })),
    vm: Type.Optional(Type.String({ minLength: 1, maxLength: 256, description: 'VM id or name' })),
    owner: Type.Optional(name),
    group: Type.Optional(name),
    costCenter: Type.Optional(name),
  },
  { additionalProperties: false },
);

export async function accountingRoutes(root: FastifyInstance, plane: ControlPlane): Promise<void> {
  const app = root.withTypeProvider<TypeBoxTypeProvider>();
  const { accounting } = plane;

  app.get(
    '/accounting/rate-cards',
    {
      config: { permission: 'accounting.read' },
      schema: { tags: ['accounting'], summary: 'Every rate card version, oldest first' },
    },
    async () => ({ items: await accounting.rateCards() }),
  );
  app.get(
    '/accounting/rate-cards/:id',
    {
      config: { permission: 'accounting.read' },
      schema: {
        tags: ['accounting'],
        summary: 'One rate card version by id or number',
        params: IdParams,
      },
    },
    async (request) => accounting.rateCard(request.params.id),
  );
  app.post(
    '/accounting/rate-cards',
    {
      config: { permission: 'accounting.manage', audit: 'accounting.rate-card.add' },
      schema: {
        tags: ['accounting'],
        summary:
          'Add a rate card version; it takes effect at effectiveFrom (now or later, after the latest)',
        body: RateCardInput,
      },
    },
    async (request, reply) => {
      const { effectiveFrom, ...body } = request.body;
      const card = await accounting.addRateCard(
        { effectiveFrom, body: body },
        request.principal!.id,
      );
      return reply.status(201).send(card);
    },
  );
  app.delete(
    '/accounting/rate-cards/:id',
    {
      config: { permission: 'accounting.manage', audit: 'accounting.rate-card.withdraw' },
      schema: {
        tags: ['accounting'],
        summary:
          'Withdraw a rate card version (by id or number) that has not taken effect yet; ZEN_RATE_CARD_IN_EFFECT once it has',
        params: IdParams,
      },
    },
    async (request) => accounting.withdrawRateCard(request.params.id),
  );
  app.get(
    '/vms/:id/ownership',
    {
      config: { permission: 'accounting.read', scope: [{ param: 'id', kind: 'vm' }] },
      schema: {
        tags: ['accounting'],
        summary: 'Ownership history of a VM, newest first',
        params: IdParams,
      },
    },
    async (request) => ({ items: await accounting.ownershipHistory(request.params.id) }),
  );
  app.put(
    '/vms/:id/ownership',
    {
      config: {
        permission: 'accounting.manage',
        audit: 'accounting.ownership.set',
        scope: [{ param: 'id', kind: 'vm' }],
      },
      schema: {
        tags: ['accounting'],
        summary:
          'Change owner, group or cost center from now on (the previous ones stay in the history)',
        params: IdParams,
        body: Type.Object(
          {
            owner: Type.Optional(name),
            group: Type.Optional(name),
            costCenter: Type.Optional(name),
          },
          { additionalProperties: false, minProperties: 1 },
        ),
      },
    },
    async (request) =>
      accounting.setOwnership(request.params.id, request.body, request.principal!.name),
  );
  app.get(
    '/accounting/report',
    {
      config: { permission: 'accounting.read' },
      schema: {
        tags: ['accounting'],
        summary:
          'Usage and cost per VM, owner, group, cost center, cluster, host or hypervisor (JSON or CSV)',
        querystring: ReportQuery,
      },
    },
    async (request, reply) => {
      const q = request.query;
      const report = await accounting.report({
        from: q.from,
        to: q.to,
        granularity: (q.granularity ?? 'daily') as 'hourly' | 'daily' | 'monthly',
        groupBy: (q.groupBy ?? 'vm') as Dimension,
        ...(q.timeZone ? { timeZone: q.timeZone } : {}),
        ...(q.vm !== undefined ? { vm: q.vm } : {}),
        ...(q.owner !== undefined ? { owner: q.owner } : {}),
        ...(q.group !== undefined ? { group: q.group } : {}),
        ...(q.costCenter !== undefined ? { costCenter: q.costCenter } : {}),
      });
      if (q.format === 'csv') return reply.type('text/csv; charset=utf-8').send(reportCsv(report));
      return report;
    },
  );
  app.get(
    '/accounting/showback',
    {
      config: { permission: 'accounting.read' },
      schema: {
        tags: ['accounting'],
        summary: 'Showback: cost and usage per group over a period',
        querystring: Type.Object(
          {
            from: Type.Integer({ minimum: 0 }),
            to: Type.Integer({ minimum: 0 }),
            timeZone: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
          },
          { additionalProperties: false },
        ),
      },
    },
    async (request) => accounting.showback(request.query),
  );
}
