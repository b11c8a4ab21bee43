import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { FastifyInstance } from 'fastify';
import { Type } from 'typebox';
import { ZenithError } from '../../core/errors.js';
import { assertId } from '../../core/ids.js';
import type { ControlPlane } from '../../app/control-plane.js';
import type { Principal } from '../../services/identity/roles.js';
import { principalOf } from '../auth.js';
import { FactValueInput, IdentityView, IdParams, Password, Role, TokenView } from '../schemas.js';

export async function identityRoutes(root: FastifyInstance, plane: ControlPlane): Promise<void> {
  const app = root.withTypeProvider<TypeBoxTypeProvider>();
  const { identities } = plane;
  const isAdministrator = (principal: Principal) =>
    plane.access.decide(principal, 'identity.manage', null).allowed;

  app.get(
    '/users',
    {
      config: { permission: 'identity.manage' },
      schema: {
        tags: ['identity'],
        summary: 'People and service identities',
        response: { 200: Type.Object({ items: Type.Array(IdentityView) }) },
      },
    },
    async () => ({
      items: await identities.list(),
    }),
  );
  app.get(
    '/users/:id',
    {
      config: { permission: 'identity.manage' },
      schema: { tags: ['identity'], params: IdParams, response: { 200: IdentityView } },
    },
    async (request) => identities.get(request.params.id),
  );
  app.post(
    '/users',
    {
      config: { permission: 'identity.manage', audit: 'identity.create' },
      schema: {
        tags: ['identity'],
        summary:
          'Create a local user (with a password) or a service identity (answers its first API token, shown once)',
        body: Type.Object(
          {
            name: Type.String({ minLength: 2, maxLength: 64 }),
            role: Role,
            kind: Type.Optional(Type.Union([Type.Literal('user'), Type.Literal('service')])),
            password: Type.Optional(Password),
            displayName: Type.Optional(Type.String({ maxLength: 200 })),
          },
          { additionalProperties: false },
        ),
      },
    },
    async (request, reply) => {
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
    },
  );
  app.patch(
    '/users/:id',
    {
      config: { permission: 'identity.manage', audit: 'identity.update' },
      schema: {
        tags: ['identity'],
        params: IdParams,
        body: Type.Object(
          {
            role: Type.Optional(Role),
            disabled: Type.Optional(Type.Boolean()),
            displayName: Type.Optional(Type.Union([Type.String({ maxLength: 200 }), Type.Null()])),
            // Merged; a null removes one. Binding conditions read them as subject.<name>.
            attributes: Type.Optional(
              Type.Record(Type.String({ maxLength: 64 }), FactValueInput, { maxProperties: 64 }),
            ),
          },
          { additionalProperties: false },
        ),
        response: { 200: IdentityView },
      },
    },
    async (request) => identities.update(request.params.id, request.body),
  );
  app.delete(
    '/users/:id',
    {
      config: { permission: 'identity.manage', audit: 'identity.delete' },
      schema: { tags: ['identity'], params: IdParams, response: { 200: IdentityView } },
    },
    async (request) => {
      const target = await identities.get(request.params.id);
      if (target.id === principalOf(request).id)
        throw new ZenithError('ZEN_CONFLICT', 'you cannot delete yourself');
      const removed = await identities.remove(target.id);
      await plane.access.forgetSubject(removed.id);
      return removed;
    },
  );
  app.post(
    '/users/:id/password',
    {
      config: { permission: 'self', audit: 'identity.password' },
      schema: {
        tags: ['identity'],
        summary:
          "Set a password: your own (with currentPassword), or anyone's as an administrator. Ends that user's other sessions and revokes their API tokens",
        params: IdParams,
        body: Type.Object(
          { password: Password, currentPassword: Type.Optional(Password) },
          { additionalProperties: false },
        ),
      },
    },
    async (request, reply) => {
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
      return reply.status(204).send();
    },
  );

  // Tokens: everyone manages their own; administrators see and revoke all.
  app.get(
    '/tokens',
    {
      config: { permission: 'self' },
      schema: {
        tags: ['identity'],
        summary: 'Your tokens and sessions (all of them with ?all=true, administrators only)',
        querystring: Type.Object(
          { all: Type.Optional(Type.Boolean()) },
          { additionalProperties: false },
        ),
        response: { 200: Type.Object({ items: Type.Array(TokenView) }) },
      },
    },
    async (request) => {
      const principal = principalOf(request);
      if (request.query.all && !isAdministrator(principal))
        throw new ZenithError('ZEN_FORBIDDEN', 'only administrators list every token', {
          permission: 'identity.manage',
        });
      return { items: await identities.listTokens(request.query.all ? undefined : principal.id) };
    },
  );
  app.post(
    '/tokens',
    {
      config: { permission: 'self', audit: 'token.create' },
      schema: {
        tags: ['identity'],
        summary:
          'Create an API token for yourself; the secret is in the answer once and never again',
        body: Type.Object(
          {
            name: Type.String({ minLength: 1, maxLength: 64 }),
            expiresInDays: Type.Optional(Type.Integer({ minimum: 1, maximum: 3650 })),
          },
          { additionalProperties: false },
        ),
      },
    },
    async (request, reply) => {
      const principal = principalOf(request);
      const days = request.body.expiresInDays;
      const issued = await identities.createToken(
        principal.id,
        request.body.name,
        days ? plane.clock.now() + days * 86_400_000 : null,
      );
      return reply.status(201).send({ token: issued.token, info: issued.info });
    },
  );
  app.delete(
    '/tokens/:id',
    {
      config: { permission: 'self', audit: 'token.revoke' },
      schema: { tags: ['identity'], params: IdParams, response: { 200: TokenView } },
    },
    async (request) => {
      const principal = principalOf(request);
      const token = await identities.getToken(assertId(request.params.id, 'token'));
      if (token.identityId !== principal.id && !isAdministrator(principal))
        throw new ZenithError('ZEN_NOT_FOUND', `no token ${token.id}`);
      return identities.revokeToken(token.id);
    },
  );
}
