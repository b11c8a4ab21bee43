import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { FastifyInstance } from 'fastify';
import { Type } from 'typebox';
import { isZenithError, ZenithError } from '../../core/errors.js';
import type { ControlPlane } from '../../app/control-plane.js';
import { effectivePermissions } from '../../services/identity/effective-permissions.js';
import { actorOf, principalOf, sessionCookie } from '../auth.js';
import { IdentityView, Password } from '../schemas.js';

/** A page of the console holds at most a few hundred objects; more is a mistake, not a page. */
const maxObjectsPerAsk = 500;

export async function authRoutes(root: FastifyInstance, plane: ControlPlane): Promise<void> {
  const app = root.withTypeProvider<TypeBoxTypeProvider>();
  app.post(
    '/auth/login',
    {
      config: { public: true, audit: false },
      schema: {
        security: [],
        tags: ['auth'],
        summary:
          'Log in with a user name and password; answers a session token (also set as a cookie)',
        body: Type.Object(
          { username: Type.String({ minLength: 1, maxLength: 64 }), password: Password },
          { additionalProperties: false },
        ),
        response: {
          200: Type.Object({
            token: Type.String(),
            expiresAt: Type.Union([Type.Number(), Type.Null()]),
            identity: IdentityView,
          }),
        },
      },
    },
    async (request, reply) => {
      try {
        const session = await plane.identities.login(
          request.body.username,
          request.body.password,
          request.ip,
        );
        await plane.audit.append([
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
        await plane.audit.append([
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
    },
  );
  app.post(
    '/auth/logout',
    {
      config: { permission: 'self', audit: 'auth.logout' },
      schema: { tags: ['auth'], summary: 'Ends this session (revokes the token used)' },
    },
    async (request, reply) => {
      await plane.identities.revokeToken(principalOf(request).tokenId);
      void reply.header(
        'set-cookie',
        `${sessionCookie}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0`,
      );
      return reply.status(204).send();
    },
  );
  app.get(
    '/auth/me',
    {
      config: { permission: 'self' },
      schema: { tags: ['auth'], summary: 'Who am I, with which role' },
    },
    async (request) => {
      const principal = principalOf(request);
      const identity = await plane.identities.get(principal.id);
      return { ...identity, tokenId: principal.tokenId, actor: actorOf(principal) };
    },
  );
  app.get(
    '/auth/me/permissions',
    {
      config: { permission: 'self' },
      schema: {
        tags: ['auth'],
        summary:
          'What I may do: permissions held everywhere, the scopes bindings reach with what they grant, and for each object of ?objects=ID,ID (at most 500) every permission that holds on it (objects that do not exist or that I may not read are listed as missing)',
        querystring: Type.Object(
          { objects: Type.Optional(Type.String({ maxLength: 40_000 })) },
          { additionalProperties: false },
        ),
        response: {
          200: Type.Object({
            global: Type.Array(Type.String()),
            scoped: Type.Array(
              Type.Object({ scopeId: Type.String(), permissions: Type.Array(Type.String()) }),
            ),
            objects: Type.Record(Type.String(), Type.Array(Type.String())),
            missing: Type.Array(Type.String()),
          }),
        },
      },
    },
    async (request) => {
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
        plane.access.graph,
        principal,
        ids,
        (id) => plane.inventory.index.get(id) !== undefined,
      );
    },
  );
}
