/** People and service identities, their passwords. */
import { Type } from 'typebox';
import { IdentityView, Password } from './auth.js';
import { FactValueInput, IdParams, Items, NoContent } from './common.js';
import { operation } from './operation.js';
import { TokenView } from './tokens.js';

/** A role a user or service identity is given (the agent role is for agents only). */
export const UserRole = Type.Union([
  Type.Literal('none'),
  Type.Literal('admin'),
  Type.Literal('operator'),
  Type.Literal('viewer'),
]);

export const listUsers = operation({
  method: 'GET',
  path: '/users',
  auth: 'identity.manage',
  tag: 'identity',
  summary: 'People and service identities',
  success: { 200: Items(IdentityView) },
});

export const getUser = operation({
  method: 'GET',
  path: '/users/:id',
  auth: 'identity.manage',
  tag: 'identity',
  summary: 'One identity by id or name',
  params: IdParams,
  success: { 200: IdentityView },
});

export const createUser = operation({
  method: 'POST',
  path: '/users',
  auth: 'identity.manage',
  tag: 'identity',
  summary:
    'Create a local user (with a password) or a service identity (answers its first API token, shown once)',
  body: Type.Object(
    {
      name: Type.String({ minLength: 2, maxLength: 64 }),
      role: UserRole,
      kind: Type.Optional(Type.Union([Type.Literal('user'), Type.Literal('service')])),
      password: Type.Optional(Password),
      displayName: Type.Optional(Type.String({ maxLength: 200 })),
    },
    { additionalProperties: false },
  ),
  success: {
    201: Type.Object({
      identity: IdentityView,
      /** A service identity's first API token (shown once), absent for a user. */
      token: Type.Optional(Type.String()),
      tokenInfo: Type.Optional(TokenView),
    }),
  },
  errors: [409],
});

export const updateUser = operation({
  method: 'PATCH',
  path: '/users/:id',
  auth: 'identity.manage',
  tag: 'identity',
  summary: "Change an identity's role, display name, attributes, or disable it",
  params: IdParams,
  body: Type.Object(
    {
      role: Type.Optional(UserRole),
      disabled: Type.Optional(Type.Boolean()),
      displayName: Type.Optional(Type.Union([Type.String({ maxLength: 200 }), Type.Null()])),
      // Merged; a null removes one. Binding conditions read them as subject.<name>.
      attributes: Type.Optional(
        Type.Record(Type.String({ maxLength: 64 }), FactValueInput, { maxProperties: 64 }),
      ),
    },
    { additionalProperties: false },
  ),
  success: { 200: IdentityView },
  errors: [409],
});

export const deleteUser = operation({
  method: 'DELETE',
  path: '/users/:id',
  auth: 'identity.manage',
  tag: 'identity',
  summary: 'Remove an identity (not yourself); its tokens end',
  params: IdParams,
  success: { 200: IdentityView },
  errors: [409],
});

export const setPassword = operation({
  method: 'POST',
  path: '/users/:id/password',
  auth: 'self',
  tag: 'identity',
  summary:
    "Set a password: your own (with currentPassword), or anyone's as an administrator. Ends that user's other sessions and revokes their API tokens",
  params: IdParams,
  body: Type.Object(
    { password: Password, currentPassword: Type.Optional(Password) },
    { additionalProperties: false },
  ),
  success: { 204: NoContent },
  errors: [403, 409, 429],
});
