import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { FastifyInstance } from 'fastify';
import { Type } from 'typebox';
import type { ControlPlane } from '../../app/control-plane.js';

export async function auditRoutes(root: FastifyInstance, plane: ControlPlane): Promise<void> {
  const app = root.withTypeProvider<TypeBoxTypeProvider>();
  app.get(
    '/audit',
    {
      config: { permission: 'audit.read' },
      schema: {
        tags: ['audit'],
        summary:
          'Audit records, newest first (read-only: records cannot be changed through the API)',
        querystring: Type.Object(
          {
            actorId: Type.Optional(Type.String({ maxLength: 64 })),
            actorName: Type.Optional(Type.String({ maxLength: 200 })),
            targetId: Type.Optional(Type.String({ maxLength: 64 })),
            action: Type.Optional(
              Type.String({ maxLength: 64, description: 'Action prefix, e.g. vm.' }),
            ),
            since: Type.Optional(Type.Integer({ minimum: 0 })),
            until: Type.Optional(Type.Integer({ minimum: 0 })),
            cursor: Type.Optional(
              Type.Integer({ minimum: 1, description: 'Sequence number: records before it' }),
            ),
            limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, default: 100 })),
          },
          { additionalProperties: false },
        ),
      },
    },
    async (request) => {
      const q = request.query;
      const limit = q.limit ?? 100;
      const items = await plane.audit.list({
        limit,
        ...(q.cursor !== undefined ? { beforeSeq: q.cursor } : {}),
        ...(q.actorId ? { actorId: q.actorId } : {}),
        ...(q.actorName ? { actorName: q.actorName } : {}),
        ...(q.targetId ? { targetId: q.targetId } : {}),
        ...(q.action ? { action: q.action } : {}),
        ...(q.since !== undefined ? { since: q.since } : {}),
        ...(q.until !== undefined ? { until: q.until } : {}),
      });
      return { items, nextCursor: items.length === limit ? items[items.length - 1]!.seq : null };
    },
  );
  app.post(
    '/audit/verify',
    {
      config: { permission: 'audit.read', audit: 'audit.verify' },
      schema: {
        tags: ['audit'],
        summary:
          'Re-compute the hash chain; names the first record that was edited, deleted or reordered',
      },
    },
    async () => plane.audit.verify(),
  );
}
