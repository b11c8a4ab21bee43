import { Type } from 'typebox';
import { createConsoleTicket } from '../../api/consoles.js';
import { errorCatalogue, isZenithError, type ErrorCode } from '../../core/errors.js';
import type { ConsoleService } from '../../services/consoles/console-service.js';
import type { AccessService } from '../../services/identity/access-service.js';
import type { SessionEnd } from '../../services/identity/live-sessions.js';
import type { SessionService } from '../../services/identity/session-service.js';
import type { InventoryService } from '../../services/inventory/inventory-service.js';
import { principalOf } from '../auth.js';
import { serve, type Api } from '../route.js';

/**
 * WebSocket close codes of a console: 4000 + the HTTP status of the Zenith code for 401 and 403
 * (credentials, permission), 4500 for an internal error, 4409 for anything else; the reason is
 * `CODE: message`.
 */
function closeCodeOf(code: ErrorCode): number {
  const status = errorCatalogue[code].status;
  if (status === 401 || status === 403) return 4000 + status;
  return code === 'ZEN_INTERNAL' ? 4500 : 4409;
}

const closeReason = (reason: SessionEnd) => `${reason.code}: ${reason.message}`.slice(0, 120);

export interface ConsoleRouteServices {
  consoles: ConsoleService;
  inventory: InventoryService;
  access: AccessService;
  sessions: SessionService;
}

export async function consoleRoutes(
  app: Api,
  { consoles, inventory, access, sessions }: ConsoleRouteServices,
): Promise<void> {
  serve(
    app,
    createConsoleTicket,
    { audit: 'vm.console.ticket', scope: [{ param: 'id', kind: 'vm' }] },
    async (request, reply) => {
      const vm = inventory.resolve('vm', request.params.id);
      return reply
        .status(201)
        .send(consoles.issue(vm.id, request.body.kind ?? 'serial', principalOf(request)));
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
        const opened = await consoles.redeem(ticket, request.id);
        const { stream, vmId, vmName } = opened;
        let principal = opened.principal;
        const close = (reason: SessionEnd) => {
          socket.close(closeCodeOf(reason.code), closeReason(reason));
          stream.destroy();
        };
        const mayStillUse = () => access.decide(principal, 'vm.console', vmId).allowed;
        const lostAccess = (): SessionEnd => ({
          code: 'ZEN_FORBIDDEN',
          message: `${principal.name} may no longer use the console of ${vmName}`,
        });
        // A live session of the ticket's token: revoked, disabled, or no longer allowed, it closes.
        const release = sessions.live.open({
          identityId: principal.id,
          tokenId: principal.tokenId,
          end: close,
          accessChanged: (role) => {
            if (role) principal = { ...principal, role };
            if (mayStillUse()) return;
            release();
            close(lostAccess());
          },
        });
        stream.on('data', (chunk: Buffer) => socket.send(chunk));
        stream.on('close', () => socket.close(1000, 'console closed'));
        stream.on('error', () => socket.close(1011, 'console error'));
        socket.on('message', (data: Buffer) => stream.write(data));
        socket.on('close', () => {
          release();
          stream.destroy();
        });
        // The client went away while the console was being opened: its close has been and gone.
        if (socket.readyState !== socket.OPEN) {
          release();
          stream.destroy();
          return;
        }
        // Access changed, or the token ended while the console was being opened.
        if (!mayStillUse()) {
          release();
          close(lostAccess());
          return;
        }
        const ending = await sessions.tokenEnding(principal.tokenId);
        if (ending) {
          release();
          close(ending);
        }
      } catch (error) {
        const code = isZenithError(error) ? error.code : 'ZEN_INTERNAL';
        const message = isZenithError(error) ? error.message : 'the console could not be opened';
        socket.close(closeCodeOf(code), closeReason({ code, message }));
      }
    },
  );
}
