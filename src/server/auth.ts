/**
 * Authentication and authorization for every route. A route must declare
 * either `config.public` or the `config.permission` it needs; the server
 * refuses to start with a route that declares neither.
 */
import type { FastifyInstance, FastifyRequest, RouteOptions } from 'fastify';
import { ZenithError } from '../core/errors.js';
import type { Actor } from '../services/audit/audit-service.js';
import type { IdentityService } from '../services/identity/identity-service.js';
import { can, type Permission, type Principal } from '../services/identity/roles.js';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Reachable without credentials (health, login, the API document). */
    public?: boolean;
    /** The permission the caller's role must grant; 'self' = any authenticated identity. */
    permission?: Permission | 'self';
    /** The audit action name for a mutating route; false when the route audits itself (tasks). */
    audit?: string | false;
  }
  interface FastifyRequest {
    principal: Principal | null;
  }
  interface FastifyReply {
    /** The code of the error this reply carries, for the audit record. */
    zenithErrorCode: string | null;
  }
}

export const sessionCookie = 'zenith_session';

export function actorOf(principal: Principal): Actor {
  return { id: principal.id, kind: principal.kind, name: principal.name };
}

export function principalOf(request: FastifyRequest): Principal {
  if (!request.principal) throw new ZenithError('ZEN_UNAUTHENTICATED', 'authentication required');
  return request.principal;
}

function presentedToken(request: FastifyRequest): string | undefined {
  const header = request.headers.authorization;
  if (header) {
    const [scheme, value] = header.split(' ', 2);
    if (scheme?.toLowerCase() !== 'bearer' || !value)
      throw new ZenithError('ZEN_UNAUTHENTICATED', "use 'Authorization: Bearer <token>'");
    return value.trim();
  }
  const cookie = request.headers.cookie;
  if (cookie) {
    for (const part of cookie.split(';')) {
      const [name, ...rest] = part.trim().split('=');
      if (name !== sessionCookie) continue;
      try {
        return decodeURIComponent(rest.join('='));
      } catch {
        throw new ZenithError('ZEN_UNAUTHENTICATED', 'the session cookie is malformed');
      }
    }
  }
  return undefined;
}

export function installAuth(app: FastifyInstance, identities: IdentityService): void {
  app.decorateRequest('principal', null);
  app.decorateReply('zenithErrorCode', null);
  app.addHook('onRoute', (route: RouteOptions) => {
    const config = route.config as { public?: boolean; permission?: string } | undefined;
    if (route.url.startsWith('/api/') && !config?.public && !config?.permission) {
      throw new Error(
        `route ${route.method.toString()} ${route.url} declares neither public nor a permission`,
      );
    }
  });
  // onRequest: before the body is parsed or validated, so an anonymous caller learns nothing.
  app.addHook('onRequest', async (request) => {
    const config = request.routeOptions.config;
    if (config.public || !request.routeOptions.url) return;
    const token = presentedToken(request);
    if (!token)
      throw new ZenithError(
        'ZEN_UNAUTHENTICATED',
        'authentication required: log in (zenith login) or send an API token',
      );
    request.principal = await identities.authenticate(token);
    const needed = config.permission;
    if (needed && needed !== 'self' && !can(request.principal, needed)) {
      throw new ZenithError(
        'ZEN_FORBIDDEN',
        `your role (${request.principal.role}) does not grant ${needed}`,
        { permission: needed, role: request.principal.role },
      );
    }
  });
}
