/** Logging in and out, and who the caller is and may be. */
import { Type } from 'typebox';
import { ActorView, NoContent, NullableInstant, StringEnum } from './common.js';
import { operation } from './operation.js';
import { permissions, roleNames } from './permissions.js';

export const PermissionName = StringEnum(permissions);
export const RoleName = StringEnum(roleNames);

export const Password = Type.String({ minLength: 1, maxLength: 1024 });

export const IdentityView = Type.Object({
  id: Type.String(),
  kind: StringEnum(['user', 'service']),
  name: Type.String(),
  displayName: Type.Union([Type.String(), Type.Null()]),
  role: RoleName,
  /** local (password here) or ldap (password in the directory). */
  source: Type.String(),
  /** Facts about the identity (a user's department), read by binding conditions as subject.*. */
  attributes: Type.Record(Type.String(), Type.Unknown()),
  disabled: Type.Boolean(),
  createdAt: Type.Number(),
});

export const EffectivePermissions = Type.Object({
  /** Held on everything. */
  global: Type.Array(PermissionName),
  /** Held on these scopes (an object and its subtree, or a resource group), beyond the global ones. */
  scoped: Type.Array(
    Type.Object({ scopeId: Type.String(), permissions: Type.Array(PermissionName) }),
  ),
  /** For each object asked about that exists and may be read: every permission that holds on it. */
  objects: Type.Record(Type.String(), Type.Array(PermissionName)),
  /** Objects asked about that do not exist or that may not be read (the two look alike). */
  missing: Type.Array(Type.String()),
});

export const login = operation({
  method: 'POST',
  path: '/auth/login',
  auth: 'public',
  tag: 'auth',
  summary: 'Log in with a user name and password; answers a session token (also set as a cookie)',
  body: Type.Object(
    { username: Type.String({ minLength: 1, maxLength: 64 }), password: Password },
    { additionalProperties: false },
  ),
  success: {
    200: Type.Object({ token: Type.String(), expiresAt: NullableInstant, identity: IdentityView }),
  },
  errors: [401, 429, 503],
});

export const logout = operation({
  method: 'POST',
  path: '/auth/logout',
  auth: 'self',
  tag: 'auth',
  summary: 'Ends this session (revokes the token used)',
  success: { 204: NoContent },
});

export const whoAmI = operation({
  method: 'GET',
  path: '/auth/me',
  auth: 'self',
  tag: 'auth',
  summary: 'Who am I, with which role',
  success: {
    200: Type.Object({ ...IdentityView.properties, tokenId: Type.String(), actor: ActorView }),
  },
  errors: [404],
});

export const myPermissions = operation({
  method: 'GET',
  path: '/auth/me/permissions',
  auth: 'self',
  tag: 'auth',
  summary:
    'What I may do: permissions held everywhere, the scopes bindings reach with what they grant, and for each object of ?objects=ID,ID (at most 500) every permission that holds on it (objects that do not exist or that I may not read are listed as missing)',
  query: Type.Object(
    { objects: Type.Optional(Type.String({ maxLength: 40_000 })) },
    { additionalProperties: false },
  ),
  success: { 200: EffectivePermissions },
});
