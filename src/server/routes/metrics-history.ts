import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { FastifyInstance } from 'fastify';
import { Type } from 'typebox';
import type { ControlPlane } from '../../app/control-plane.js';
import { IdParams } from '../schemas.js';

const rate = Type.Union([Type.Number(), Type.Null()]);

/** Metrics of a VM over time, as chart points (the web console draws them). */
export async function metricsHistoryRoutes(
  root: FastifyInstance,
  plane: ControlPlane,
): Promise<void> {
  const app = root.withTypeProvider<TypeBoxTypeProvider>();
  app.get(
    '/vms/:id/metrics/history',
    {
      config: { permission: 'inventory.read', scope: [{ param: 'id', kind: 'vm' }] },
      schema: {
        tags: ['inventory'],
        summary:
          'Metrics of a VM over time: one point per step (start of the step, ms since the epoch), rates per second, null where nothing was measured',
        params: IdParams,
        querystring: Type.Object(
          {
            from: Type.Integer({ minimum: 0, description: 'ms since the epoch' }),
            to: Type.Integer({ minimum: 0, description: 'ms since the epoch' }),
            step: Type.Optional(
              Type.Integer({
                minimum: 1,
                maximum: 86_400 * 31,
                description: 'seconds; default 60',
              }),
            ),
          },
          { additionalProperties: false },
        ),
        response: {
          200: Type.Object({
            vmId: Type.String(),
            stepSeconds: Type.Integer(),
            points: Type.Array(
              Type.Object({
                at: Type.Number(),
                cpuPercent: rate,
                memoryUsedBytes: rate,
                diskReadBytesPerSec: rate,
                diskWriteBytesPerSec: rate,
                netRxBytesPerSec: rate,
                netTxBytesPerSec: rate,
              }),
            ),
          }),
        },
      },
    },
    async (request) => {
      const vm = plane.inventory.resolve('vm', request.params.id);
      const { from, to, step } = request.query;
      return plane.metrics.history(vm.id, { from, to, stepSeconds: step ?? 60 });
    },
  );
}
