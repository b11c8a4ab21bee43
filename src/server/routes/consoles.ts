import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { FastifyInstance } from 'fastify';
import { Type } from 'typebox';
import { isZenithError } from '../../core/errors.js';
import type { ControlPlane } from '../../services/control-plane.js';
import { actorOf, principalOf } from '../auth.js';

export async function consoleRoutes(root: FastifyInstance, plane: ControlPlane): Promise<void> {
  const app = root.withTypeProvider<TypeBoxTypeProvider>();
  app.post(
    '/vms/:id/console-tickets',
    {
      config: {
        permission: 'vm.console',
        audit: 'vm.console.ticket',
        scope: [{ param: 'id', kind: 'vm' }],
      },
      schema: {
        tags: ['consoles'],
        summary:
          "A single-use ticket (30 s) for the VM's serial or VNC console; open a WebSocket on the path it names",
        params: Type.Object(
          { id: Type.String({ minLength: 1, maxLength: 200 }) },
          { additionalProperties: false },
        ),
        body: Type.Object(
          { kind: Type.Optional(Type.Union([Type.Literal('serial'), Type.Literal('vnc')])) },
          { additionalProperties: false },
        ),
        response: {
          201: Type.Object({
            ticket: Type.String(),
            path: Type.String(),
            expiresAt: Type.Number(),
          }),
        },
      },
    },
    async (request, reply) => {
      const vm = plane.inventory.resolve('vm', request.params.id);
      return reply
        .status(201)
        .send(
          plane.consoles.issue(vm.id, request.body.kind ?? 'serial', actorOf(principalOf(request))),
        );
    },
  );
  app.get(
    '/consoles/:ticket',
    {
      websocket: true,
      // The single-use ticket in the path is the credential.
      config: { public: true },
      schema: {
        security: [],
        tags: ['consoles'],
        summary: 'WebSocket: the console bytes, both ways (binary frames)',
        params: Type.Object(
          { ticket: Type.String({ minLength: 16, maxLength: 64 }) },
          { additionalProperties: false },
        ),
      },
    },
    async (socket, request) => {
      const { ticket } = request.params;
      try {
        const { stream } = await plane.consoles.redeem(ticket, request.id);
        stream.on('data', (chunk: Buffer) => socket.send(chunk));
        stream.on('close', () => socket.close(1000, 'console closed'));
        stream.on('error', () => socket.close(1011, 'console error'));
        socket.on('message', (data: Buffer) => stream.write(data));
        socket.on('close', () => stream.destroy());
      } catch (error) {
        const code = isZenithError(error) ? error.code : 'ZEN_INTERNAL';
        const message = isZenithError(error) ? error.message : 'the console could not be opened';
        // 4401/4409/4500: application close codes carrying the Zenith code in the reason.
        socket.close(
          code === 'ZEN_UNAUTHENTICATED' ? 4401 : code === 'ZEN_INTERNAL' ? 4500 : 4409,
          `${code}: ${message}`.slice(0, 120),
        );
      }
    },
  );
}
