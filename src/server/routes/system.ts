import type { FastifyInstance } from 'fastify';
import { Type } from 'typebox';
import type { ControlPlane } from '../../app/control-plane.js';

export async function systemRoutes(app: FastifyInstance, plane: ControlPlane): Promise<void> {
  app.get(
    '/health',
    {
      config: { public: true },
      schema: {
        security: [],
        tags: ['system'],
        summary: 'Liveness and store reachability (no authentication)',
        response: {
          200: Type.Object({ status: Type.String(), version: Type.String(), store: Type.String() }),
        },
      },
    },
    async () => ({ status: 'ok', version: '0.1.0', store: plane.store.dialect }),
  );
  app.get('/openapi.json', { config: { public: true }, schema: { hide: true } }, async () =>
    app.swagger(),
  );
}
