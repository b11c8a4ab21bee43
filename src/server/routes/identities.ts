import { createToken, listTokens, revokeToken } from '../../api/tokens.js';
import {
  createUser,
  deleteUser,
  getUser,
  listUsers,
  setPassword,
  updateUser,
} from '../../api/users.js';
import type { Clock } from '../../core/clock.js';
import { ZenithError } from '../../core/errors.js';
import { assertId } from '../../core/ids.js';
import type { AccessService } from '../../services/identity/access-service.js';
import type { IdentityService } from '../../services/identity/identity-service.js';
import type { SessionService } from '../../services/identity/session-service.js';
import type { Principal } from '../../services/identity/roles.js';
import { principalOf } from '../auth.js';
import { noContent, serve, type Api } from '../route.js';

export interface IdentityRouteServices {
  identities: IdentityService;
  sessions: SessionService;
  access: AccessService;
  clock: Clock;
}

export async function identityRoutes(
  app: Api,
  { identities, sessions, access, clock }: IdentityRouteServices,
): Promise<void> {
  const isAdministrator = (principal: Principal) =>
    access.decide(principal, 'identity.manage', null).allowed;

  serve(app, listUsers, {}, async () => ({ items: await identities.list() }));
  serve(app, getUser, {}, async (request) => identities.get(request.params.id));
  serve(app, createUser, { audit: 'identity.create' }, async (request, reply) => {
    const body = request.body;
    if ((body.kind ?? 'user') === 'service') {
      const created = await identities.createService({
        name: body.name,
        role: body.role,
        displayName: body.displayName ?? null,
      });
      return reply.status(201).send({
        identity: created.identity,
        token: created.token.token,
        tokenInfo: created.token.info,
      });
    }
    if (!body.password)
      throw new ZenithError('ZEN_BAD_REQUEST', 'a user needs a password (or use kind: service)');
    return reply.status(201).send({
      identity: await identities.createUser({
        name: body.name,
        password: body.password,
        role: body.role,
        displayName: body.displayName ?? null,
      }),
    });
  });
  serve(app, updateUser, { audit: 'identity.update' }, async (request) =>
    identities.update(request.params.id, request.body),
  );
  serve(app, deleteUser, { audit: 'identity.delete' }, async (request) => {
    const target = await identities.get(request.params.id);
    if (target.id === principalOf(request).id)
      throw new ZenithError('ZEN_CONFLICT', 'you cannot delete yourself');
    const removed = await identities.remove(target.id);
    await access.forgetSubject(removed.id);
    return removed;
  });
  serve(app, setPassword, { audit: 'identity.password' }, async (request, reply) => {
    const principal = principalOf(request);
    const target = await identities.get(
      request.params.id === 'me' ? principal.id : request.params.id,
    );
    if (target.id === principal.id) {
      // A session alone must not be enough to take the account: the current password is asked.
      if (request.body.currentPassword === undefined)
        throw new ZenithError(
          'ZEN_BAD_REQUEST',
          'changing your own password needs your current one (currentPassword)',
          { field: 'currentPassword' },
        );
      await identities.changeOwnPassword(
        principal,
        request.body.currentPassword,
        request.body.password,
        request.ip,
      );
    } else {
      // Someone else's, for whoever may not manage identities: as if there were no such user.
      if (!isAdministrator(principal))
        throw new ZenithError('ZEN_NOT_FOUND', `no identity '${request.params.id}'`, {
          identity: request.params.id,
        });
      await identities.setPassword(target.id, request.body.password);
    }
    return noContent(reply);
  });

  // Tokens: everyone manages their own; administrators see and revoke all.
  serve(app, listTokens, {}, async (request) => {
    const principal = principalOf(request);
    if (request.query.all && !isAdministrator(principal))
      throw new ZenithError('ZEN_FORBIDDEN', 'only administrators list every token', {
        permission: 'identity.manage',
      });
    return { items: await sessions.listTokens(request.query.all ? undefined : principal.id) };
  });
  serve(app, createToken, { audit: 'token.create' }, async (request, reply) => {
    const principal = principalOf(request);
    const days = request.body.expiresInDays;
    const issued = await sessions.createToken(
      principal.id,
      request.body.name,
      days ? clock.now() + days * 86_400_000 : null,
    );
    return reply.status(201).send({ token: issued.token, info: issued.info });
  });
  serve(app, revokeToken, { audit: 'token.revoke' }, async (request) => {
    const principal = principalOf(request);
    const token = await sessions.getToken(assertId(request.params.id, 'token'));
    if (token.identityId !== principal.id && !isAdministrator(principal))
      throw new ZenithError('ZEN_NOT_FOUND', `no token ${token.id}`);
    return sessions.revokeToken(token.id);
  });
}
