import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { FastifyInstance } from 'fastify';
import { Type } from 'typebox';
import type { ControlPlane } from '../../services/control-plane.js';
import type { Requester } from '../../services/placement/fact-sources.js';
import type { Principal } from '../../services/identity/roles.js';
import { principalOf } from '../auth.js';
import { FactValue } from '../schemas.js';

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
      Type.Record(Type.String({ maxLength: 128 }), FactValue, { maxProperties: 64 }),
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
}
