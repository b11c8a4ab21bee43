/** Groups, roles, role bindings, and the explanation of an access decision. */
import { Type, type Static } from 'typebox';
import { PermissionName } from './auth.js';
import { IdOrName, IdParams, Items, StringEnum } from './common.js';
import { operation } from './operation.js';

const Name = Type.String({ minLength: 1, maxLength: 64 });
const SubjectKind = StringEnum(['user', 'service', 'group']);

export const GroupView = Type.Object({
  id: Type.String(),
  name: Type.String(),
  description: Type.Union([Type.String(), Type.Null()]),
  createdAt: Type.Number(),
  members: Type.Array(Type.Object({ id: Type.String(), kind: SubjectKind, name: Type.String() })),
});
export type GroupView = Static<typeof GroupView>;

export const RoleView = Type.Object({
  name: Type.String(),
  description: Type.Union([Type.String(), Type.Null()]),
  permissions: Type.Array(PermissionName),
  predefined: Type.Boolean(),
});
export type RoleView = Static<typeof RoleView>;

export const BindingView = Type.Object({
  id: Type.String(),
  subjectId: Type.String(),
  subjectKind: SubjectKind,
  role: Type.String(),
  /** null: everything. */
  scopeId: Type.Union([Type.String(), Type.Null()]),
  /** A condition over subject.* and object.* (the policy language); null: always. */
  condition: Type.Optional(Type.Union([Type.String(), Type.Null()])),
  createdBy: Type.String(),
  createdAt: Type.Number(),
});
export type BindingView = Static<typeof BindingView>;

const Permissions = Type.Array(Type.String({ maxLength: 64 }), { maxItems: 64 });

export const listGroups = operation({
  method: 'GET',
  path: '/groups',
  auth: 'identity.manage',
  tag: 'access',
  summary: 'Groups of users, service identities and other groups',
  success: { 200: Items(GroupView) },
});

export const createGroup = operation({
  method: 'POST',
  path: '/groups',
  auth: 'identity.manage',
  tag: 'access',
  summary: 'Create a group',
  body: Type.Object(
    { name: Name, description: Type.Optional(Type.String({ maxLength: 500 })) },
    { additionalProperties: false },
  ),
  success: { 201: GroupView },
  errors: [409],
});

export const getGroup = operation({
  method: 'GET',
  path: '/groups/:id',
  auth: 'identity.manage',
  tag: 'access',
  summary: 'One group by id or name, with its members',
  params: IdParams,
  success: { 200: GroupView },
});

export const deleteGroup = operation({
  method: 'DELETE',
  path: '/groups/:id',
  auth: 'identity.manage',
  tag: 'access',
  summary: 'Delete a group',
  params: IdParams,
  success: { 200: GroupView },
  errors: [409],
});

export const addGroupMember = operation({
  method: 'POST',
  path: '/groups/:id/members',
  auth: 'identity.manage',
  tag: 'access',
  summary: 'Add a user, service identity or group (by id or name)',
  params: IdParams,
  body: Type.Object({ member: IdOrName }, { additionalProperties: false }),
  success: { 200: GroupView },
  errors: [409],
});

export const removeGroupMember = operation({
  method: 'DELETE',
  path: '/groups/:id/members/:member',
  auth: 'identity.manage',
  tag: 'access',
  summary: 'Take a member out of a group',
  params: Type.Object({ id: IdOrName, member: IdOrName }, { additionalProperties: false }),
  success: { 200: GroupView },
});

export const listRoles = operation({
  method: 'GET',
  path: '/roles',
  auth: 'identity.manage',
  tag: 'access',
  summary: 'Predefined and custom roles with their permissions',
  success: { 200: Items(RoleView) },
});

export const createRole = operation({
  method: 'POST',
  path: '/roles',
  auth: 'identity.manage',
  tag: 'access',
  summary: 'Create a custom role',
  body: Type.Object(
    {
      name: Name,
      permissions: Permissions,
      description: Type.Optional(Type.String({ maxLength: 500 })),
    },
    { additionalProperties: false },
  ),
  success: { 201: RoleView },
  errors: [409],
});

export const getRole = operation({
  method: 'GET',
  path: '/roles/:id',
  auth: 'identity.manage',
  tag: 'access',
  summary: 'One role by name',
  params: IdParams,
  success: { 200: RoleView },
});

export const updateRole = operation({
  method: 'PATCH',
  path: '/roles/:id',
  auth: 'identity.manage',
  tag: 'access',
  summary: "Replace a custom role's permissions",
  params: IdParams,
  body: Type.Object({ permissions: Permissions }, { additionalProperties: false }),
  success: { 200: RoleView },
  errors: [409],
});

export const deleteRole = operation({
  method: 'DELETE',
  path: '/roles/:id',
  auth: 'identity.manage',
  tag: 'access',
  summary: 'Delete a custom role that no binding uses',
  params: IdParams,
  success: { 200: RoleView },
  errors: [409],
});

export const listBindings = operation({
  method: 'GET',
  path: '/role-bindings',
  auth: 'identity.manage',
  tag: 'access',
  summary: 'Role bindings, optionally of one subject or on one scope',
  query: Type.Object(
    { subject: Type.Optional(IdOrName), scope: Type.Optional(IdOrName) },
    { additionalProperties: false },
  ),
  success: { 200: Items(BindingView) },
  errors: [404, 409],
});

export const createBinding = operation({
  method: 'POST',
  path: '/role-bindings',
  auth: 'identity.manage',
  tag: 'access',
  summary:
    'Give a subject (user, service identity or group) a role on a scope (an object and its subtree, or everything when absent or null)',
  body: Type.Object(
    {
      subject: IdOrName,
      role: Name,
      scope: Type.Optional(Type.Union([IdOrName, Type.Null()])),
      condition: Type.Optional(
        Type.Union([Type.String({ maxLength: 4096 }), Type.Null()], {
          description:
            'grants the role only where this holds, e.g. subject.department == object.user.costCenter',
        }),
      ),
    },
    { additionalProperties: false },
  ),
  success: { 201: BindingView },
  errors: [404, 409],
});

export const deleteBinding = operation({
  method: 'DELETE',
  path: '/role-bindings/:id',
  auth: 'identity.manage',
  tag: 'access',
  summary: 'Delete a role binding',
  params: IdParams,
  success: { 200: BindingView },
});

export const Decision = Type.Object({
  allowed: Type.Boolean(),
  permission: Type.String(),
  objectId: Type.Union([Type.String(), Type.Null()]),
  /** The binding that allows; `identity-role` stands for the identity's own predefined role. */
  binding: Type.Union([BindingView, Type.Null()]),
  /** The groups from the identity to the binding's subject, outermost last. */
  via: Type.Array(Type.String()),
  reason: Type.String(),
  /** The conditions of bindings that reach the object, and how each came out (in the order tried). */
  conditions: Type.Array(
    Type.Object({
      bindingId: Type.String(),
      condition: Type.String(),
      held: Type.Boolean(),
      error: Type.Optional(Type.String()),
    }),
  ),
});

export const explainAccess = operation({
  method: 'GET',
  path: '/access/explain',
  auth: 'audit.read',
  tag: 'access',
  summary:
    'Would IDENTITY be allowed PERMISSION on OBJECT (or everywhere)? Names the binding that allows, or says why nothing does',
  query: Type.Object(
    {
      identity: IdOrName,
      permission: Type.String({ minLength: 1, maxLength: 64 }),
      object: Type.Optional(IdOrName),
    },
    { additionalProperties: false },
  ),
  success: { 200: Decision },
  errors: [404, 409],
});
