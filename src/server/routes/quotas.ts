/** Quotas per group: set and clear them (identity.manage), read usage against them (members too). */
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { FastifyInstance } from 'fastify';
import { Type } from 'typebox';
import { ZenithError } from '../../core/errors.js';
import type { ControlPlane } from '../../app/control-plane.js';
import { principalOf } from '../auth.js';
import { IdParams } from '../schemas.js';

// Null first: the server coerces types, and tried as an integer first, null would become 0.
const Limit = Type.Union([Type.Null(), Type.Integer({ minimum: 0 })]);
const Amounts = Type.Object({
  vcpus: Type.Number(),
  memoryBytes: Type.Number(),
  diskBytes: Type.Number(),
  vms: Type.Number(),
});
const Limits = Type.Object({ vcpus: Limit, memoryBytes: Limit, diskBytes: Limit, vms: Limit });

const QuotaView = Type.Object({
  groupId: Type.String(),
  groupName: Type.String(),
  limits: Limits,
  used: Amounts,
  reserved: Amounts,
  available: Limits,
  covers: Type.Array(Type.String()),
  updatedBy: Type.String(),
  updatedAt: Type.Number(),
});

export async function quotaRoutes(root: FastifyInstance, plane: ControlPlane): Promise<void> {
  const app = root.withTypeProvider<TypeBoxTypeProvider>();
  const { quotas } = plane;

  app.get(
    '/quotas',
    {
      config: { permission: 'identity.manage' },
      schema: {
        tags: ['quotas'],
        summary: 'Every group quota with its usage',
        response: { 200: Type.Object({ items: Type.Array(QuotaView) }) },
      },
    },
    async () => ({ items: await quotas.list() }),
  );
  app.get(
    '/groups/:id/quota',
    {
      // Members of the group (however deep) read their own usage; so do those who manage identities.
      config: { permission: 'self' },
      schema: {
        tags: ['quotas'],
        summary:
          "A group's quota: limits, used (its present VMs and its nested groups'), reserved (tasks under way) and available",
        params: IdParams,
        response: { 200: QuotaView },
      },
    },
    async (request) => {
      const principal = principalOf(request);
      const group = await plane.access.getGroup(request.params.id);
      // Whoever may not read it learns no more than for a group that does not exist.
      if (
        !quotas.isMember(principal.id, group.id) &&
        !plane.access.decide(principal, 'identity.manage', null).allowed &&
        !plane.access.decide(principal, 'audit.read', null).allowed
      )
        throw new ZenithError('ZEN_NOT_FOUND', `no group '${request.params.id}'`, {
          group: request.params.id,
        });
      return quotas.get(group.id);
    },
  );
  app.put(
    '/groups/:id/quota',
    {
      config: { permission: 'identity.manage', audit: 'quota.set' },
      schema: {
        tags: ['quotas'],
        summary:
          "Set a group's limits (the ones given; null: no limit). A request must fit the quota of its group and of every group above it",
        params: IdParams,
        body: Type.Object(
          {
            vcpus: Type.Optional(Limit),
            memoryBytes: Type.Optional(Limit),
            diskBytes: Type.Optional(Limit),
            vms: Type.Optional(Limit),
          },
          { additionalProperties: false },
        ),
        response: { 200: QuotaView },
      },
    },
    async (request) => quotas.set(request.params.id, request.body, principalOf(request).name),
  );
  app.delete(
    '/groups/:id/quota',
    {
      config: { permission: 'identity.manage', audit: 'quota.clear' },
      schema: { tags: ['quotas'], params: IdParams, response: { 200: QuotaView } },
    },
    async (request) => quotas.clear(request.params.id),
  );
}
