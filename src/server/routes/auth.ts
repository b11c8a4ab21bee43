import { login, logout, myPermissions, whoAmI } from '../../api/auth.js';
import { isZenithError, ZenithError } from '../../core/errors.js';
import type { AuditService } from '../../services/audit/audit-service.js';
import type { AccessService } from '../../services/identity/access-service.js';
import { effectivePermissions } from '../../services/identity/effective-permissions.js';
import type { IdentityService } from '../../services/identity/identity-service.js';
import type { SessionService } from '../../services/identity/session-service.js';
import type { InventoryService } from '../../services/inventory/inventory-service.js';
import { actorOf, principalOf, sessionCookie } from '../auth.js';
import { noContent, serve, type Api } from '../route.js';

/** A page of the console holds at most a few hundred objects; more is a mistake, not a page. */
const maxObjectsPerAsk = 500;

export interface AuthRouteServices {
  identities: IdentityService;
  sessions: SessionService;
  access: AccessService;
  audit: AuditService;
  inventory: InventoryService;
}

export async function authRoutes(
  app: Api,
  { identities, sessions, access, audit, inventory }: AuthRouteServices,
): Promise<void> {
  serve(app, login, { audit: false }, async (request, reply) => {
    try {
      const session = await identities.login(
        request.body.username,
        request.body.password,
        request.ip,
      );
      await audit.append([
        {
          actor: { id: session.identity.id, kind: 'user', name: session.identity.name },
          action: 'auth.login',
          result: 'succeeded',
          requestId: request.id,
          params: { address: request.ip },
        },
      ]);
      const maxAge = session.info.expiresAt
        ? Math.floor((session.info.expiresAt - Date.now()) / 1000)
        : 43200;
      void reply.header(
        'set-cookie',
        `${sessionCookie}=${encodeURIComponent(session.token)}; HttpOnly; SameSite=Strict; Path=/; Max-Age=${maxAge}`,
      );
      return {
        token: session.token,
        expiresAt: session.info.expiresAt,
        identity: session.identity,
      };
    } catch (error) {
      const code = isZenithError(error) ? error.code : 'ZEN_INTERNAL';
      await audit.append([
        {
          actor: { id: 'anonymous', kind: 'anonymous', name: request.body.username },
          action: 'auth.login',
          result: 'failed',
          errorCode: code,
          requestId: request.id,
          params: { address: request.ip },
        },
      ]);
      throw error;
    }
  });
  serve(app, logout, { audit: 'auth.logout' }, async (request, reply) => {
    await sessions.revokeToken(principalOf(request).tokenId);
    void reply.header(
      'set-cookie',
      `${sessionCookie}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0`,
    );
    return noContent(reply);
  });
  serve(app, whoAmI, {}, async (request) => {
    const principal = principalOf(request);
    const identity = await identities.get(principal.id);
    return { ...identity, tokenId: principal.tokenId, actor: actorOf(principal) };
  });
  serve(app, myPermissions, {}, async (request) => {
    const ids = (request.query.objects ?? '')
      .split(',')
      .map((id) => id.trim())
      .filter((id) => id !== '');
    if (ids.length > maxObjectsPerAsk)
      throw new ZenithError(
        'ZEN_BAD_REQUEST',
        `ask about at most ${maxObjectsPerAsk} objects at once (${ids.length} given)`,
        { objects: ids.length, max: maxObjectsPerAsk },
      );
    const principal = principalOf(request);
    return effectivePermissions(
      access.graph,
      principal,
      ids,
      (id) => inventory.index.get(id) !== undefined,
    );
  });
}
