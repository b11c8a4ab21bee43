/** Groups, roles, role bindings and the explanation of a decision. */
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { FastifyInstance } from 'fastify';
import { Type } from 'typebox';
import { assertId } from '../../core/ids.js';
import type { ControlPlane } from '../../app/control-plane.js';
import { principalOf } from '../auth.js';
import { IdParams } from '../schemas.js';

const Name = Type.String({ minLength: 1, maxLength: 64 });

const GroupView = Type.Object({
  id: Type.String(),
  name: Type.String(),
  description: Type.Union([Type.String(), Type.Null()]),
  createdAt: Type.Number(),
  members: Type.Array(Type.Object({ id: Type.String(), kind: Type.String(), name: Type.String() })),
});

const RoleView = Type.Object({
  name: Type.String(),
  description: Type.Union([Type.String(), Type.Null()]),
  permissions: Type.Array(Type.String()),
  predefined: Type.Boolean(),
});

const BindingView = Type.Object({
  id: Type.String(),
  subjectId: Type.String(),
  subjectKind: Type.String(),
  role: Type.String(),
  scopeId: Type.Union([Type.String(), Type.Null()]),
  /** A condition over subject.* and object.* (the policy language); null: always. */
  condition: Type.Optional(Type.Union([Type.String(), Type.Null()])),
  createdBy: Type.String(),
  createdAt: Type.Number(),
});

const Permissions = Type.Array(Type.String({ maxLength: 64 }), { maxItems: 64 });

export async function accessRoutes(root: FastifyInstance, plane: ControlPlane): Promise<void> {
  const app = root.withTypeProvider<TypeBoxTypeProvider>();
  const { access } = plane;
  const manage = { permission: 'identity.manage' } as const;

  app.get(
    '/groups',
    {
      config: manage,
      schema: {
        tags: ['access'],
        summary: 'Groups of users, service identities and other groups',
        response: { 200: Type.Object({ items: Type.Array(GroupView) }) },
      },
    },
    async () => ({ items: await access.listGroups() }),
  );
  app.post(
    '/groups',
    {
      config: { ...manage, audit: 'group.create' },
      schema: {
        tags: ['access'],
        body: Type.Object(
          { name: Name, description: Type.Optional(Type.String({ maxLength: 500 })) },
          { additionalProperties: false },
        ),
        response: { 201: GroupView },
      },
    },
    async (request, reply) => reply.status(201).send(await access.createGroup(request.body)),
  );
  app.get(
    '/groups/:id',
    {
      config: manage,
      schema: { tags: ['access'], params: IdParams, response: { 200: GroupView } },
    },
    async (request) => access.getGroup(request.params.id),
  );
  app.delete(
    '/groups/:id',
    {
      config: { ...manage, audit: 'group.delete' },
      schema: { tags: ['access'], params: IdParams, response: { 200: GroupView } },
    },
    async (request) => access.deleteGroup(request.params.id),
  );
  app.post(
    '/groups/:id/members',
    {
      config: { ...manage, audit: 'group.addMember' },
      schema: {
        tags: ['access'],
        summary: 'Add a user, service identity or group (by id or name)',
        params: IdParams,
        body: Type.Object(
          { member: Type.String({ minLength: 1, maxLength: 200 }) },
          { additionalProperties: false },
        ),
        response: { 200: GroupView },
      },
    },
    async (request) => access.addMember(request.params.id, request.body.member),
  );
  app.delete(
    '/groups/:id/members/:member',
    {
      config: { ...manage, audit: 'group.removeMember' },
      schema: {
        tags: ['access'],
        params: Type.Object(
          {
            id: Type.String({ minLength: 1, maxLength: 200 }),
            member: Type.String({ minLength: 1, maxLength: 200 }),
          },
          { additionalProperties: false },
        ),
        response: { 200: GroupView },
      },
    },
    async (request) => access.removeMember(request.params.id, request.params.member),
  );

  app.get(
    '/roles',
    {
      config: manage,
      schema: {
        tags: ['access'],
        summary: 'Predefined and custom roles with their permissions',
        response: { 200: Type.Object({ items: Type.Array(RoleView) }) },
      },
    },
    async () => ({ items: await access.listRoles() }),
  );
  app.post(
    '/roles',
    {
      config: { ...manage, audit: 'role.create' },
      schema: {
        tags: ['access'],
        body: Type.Object(
          {
            name: Name,
            permissions: Permissions,
            description: Type.Optional(Type.String({ maxLength: 500 })),
          },
          { additionalProperties: false },
        ),
        response: { 201: RoleView },
      },
    },
    async (request, reply) => reply.status(201).send(await access.createRole(request.body)),
  );
  app.get(
    '/roles/:id',
    {
      config: manage,
      schema: { tags: ['access'], params: IdParams, response: { 200: RoleView } },
    },
    async (request) => access.getRole(request.params.id),
  );
  app.patch(
    '/roles/:id',
    {
      config: { ...manage, audit: 'role.update' },
      schema: {
        tags: ['access'],
        summary: "Replace a custom role's permissions",
        params: IdParams,
        body: Type.Object({ permissions: Permissions }, { additionalProperties: false }),
        response: { 200: RoleView },
      },
    },
    async (request) => access.updateRole(request.params.id, request.body),
  );
  app.delete(
    '/roles/:id',
    {
      config: { ...manage, audit: 'role.delete' },
      schema: { tags: ['access'], params: IdParams, response: { 200: RoleView } },
    },
    async (request) => access.deleteRole(request.params.id),
  );

  app.get(
    '/role-bindings',
    {
      config: manage,
      schema: {
        tags: ['access'],
        summary: 'Role bindings, optionally of one subject or on one scope',
        querystring: Type.Object(
          {
            subject: Type.Optional(Type.String({ maxLength: 200 })),
            scope: Type.Optional(Type.String({ maxLength: 200 })),
          },
          { additionalProperties: false },
        ),
        response: { 200: Type.Object({ items: Type.Array(BindingView) }) },
      },
    },
    async (request) => {
      const q = request.query;
      const subjectId = q.subject ? (await access.resolveSubject(q.subject)).id : undefined;
      const scopeId = q.scope ? plane.inventory.lookup(q.scope).id : undefined;
      return {
        items: await access.listBindings({
          ...(subjectId ? { subjectId } : {}),
          ...(scopeId ? { scopeId } : {}),
        }),
      };
    },
  );
  app.post(
    '/role-bindings',
    {
      config: { ...manage, audit: 'roleBinding.create' },
      schema: {
        tags: ['access'],
        summary:
          'Give a subject (user, service identity or group) a role on a scope (an object and its subtree, or everything when absent)',
        body: Type.Object(
          {
            subject: Type.String({ minLength: 1, maxLength: 200 }),
            role: Name,
            scope: Type.Optional(Type.Union([Type.String({ maxLength: 200 }), Type.Null()])),
            condition: Type.Optional(
              Type.Union([Type.String({ maxLength: 4096 }), Type.Null()], {
                description:
                  'grants the role only where this holds, e.g. subject.department == object.user.costCenter',
              }),
            ),
          },
          { additionalProperties: false },
        ),
        response: { 201: BindingView },
      },
    },
    async (request, reply) =>
      reply.status(201).send(await access.createBinding(request.body, principalOf(request).id)),
  );
  app.delete(
    '/role-bindings/:id',
    {
      config: { ...manage, audit: 'roleBinding.delete' },
      schema: { tags: ['access'], params: IdParams, response: { 200: BindingView } },
    },
    async (request) => access.deleteBinding(assertId(request.params.id, 'binding')),
  );

  app.get(
    '/access/explain',
    {
      config: { permission: 'audit.read' },
      schema: {
        tags: ['access'],
        summary:
          'Would IDENTITY be allowed PERMISSION on OBJECT (or everywhere)? Names the binding that allows, or says why nothing does',
        querystring: Type.Object(
          {
            identity: Type.String({ minLength: 1, maxLength: 200 }),
            permission: Type.String({ minLength: 1, maxLength: 64 }),
            object: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
          },
          { additionalProperties: false },
        ),
        response: {
          200: Type.Object({
            allowed: Type.Boolean(),
            permission: Type.String(),
            objectId: Type.Union([Type.String(), Type.Null()]),
            binding: Type.Union([BindingView, Type.Null()]),
            via: Type.Array(Type.String()),
            reason: Type.String(),
            conditions: Type.Array(
              Type.Object({
                bindingId: Type.String(),
                condition: Type.String(),
                held: Type.Boolean(),
                error: Type.Optional(Type.String()),
              }),
            ),
          }),
        },
      },
    },
    async (request) =>
      access.explain(
        request.query.identity,
        request.query.permission,
        request.query.object ?? null,
      ),
  );
}
