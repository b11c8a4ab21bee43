/** API tokens and sessions: everyone manages their own; administrators see and revoke all. */
import { Type } from 'typebox';
import { IdParams, Items, NullableInstant, StringEnum } from './common.js';
import { operation } from './operation.js';

export const TokenView = Type.Object({
  id: Type.String(),
  identityId: Type.String(),
  kind: StringEnum(['session', 'api']),
  name: Type.String(),
  createdAt: Type.Number(),
  expiresAt: NullableInstant,
  lastUsedAt: NullableInstant,
  revokedAt: NullableInstant,
});

export const listTokens = operation({
  method: 'GET',
  path: '/tokens',
  auth: 'self',
  tag: 'identity',
  summary: 'Your tokens and sessions (all of them with ?all=true, administrators only)',
  query: Type.Object({ all: Type.Optional(Type.Boolean()) }, { additionalProperties: false }),
  success: { 200: Items(TokenView) },
  errors: [403],
});

export const createToken = operation({
  method: 'POST',
  path: '/tokens',
  auth: 'self',
  tag: 'identity',
  summary: 'Create an API token for yourself; the secret is in the answer once and never again',
  body: Type.Object(
    {
      name: Type.String({ minLength: 1, maxLength: 64 }),
      expiresInDays: Type.Optional(Type.Integer({ minimum: 1, maximum: 3650 })),
    },
    { additionalProperties: false },
  ),
  success: { 201: Type.Object({ token: Type.String(), info: TokenView }) },
});

export const revokeToken = operation({
  method: 'DELETE',
  path: '/tokens/:id',
  auth: 'self',
  tag: 'identity',
  summary: 'Revoke a token or end a session: your own, or anyone’s as an administrator',
  params: IdParams,
  success: { 200: TokenView },
});
