/** Schemas declared once: validation, TypeScript types and the OpenAPI document all come from here. */
import { Type, type Static, type TSchema } from 'typebox';

export const ErrorBody = Type.Object(
  {
    error: Type.Object({
      code: Type.String(),
      message: Type.String(),
      details: Type.Record(Type.String(), Type.Unknown()),
    }),
  },
  { $id: 'ErrorBody' },
);

/** The longest id or name a path takes (characters); the server accepts such a path segment (see buildApp). */
export const maxPathIdLength = 200;

export const IdParams = Type.Object(
  { id: Type.String({ minLength: 1, maxLength: maxPathIdLength }) },
  { additionalProperties: false },
);
export type IdParams = Static<typeof IdParams>;

/** A fact value in an answer (serialized by branch, so a one-item list stays a list). */
export const FactValue = Type.Union([
  Type.String(),
  Type.Number(),
  Type.Boolean(),
  Type.Array(Type.String()),
  Type.Null(),
]);

/**
 * A fact value in a request: one schema with a list of types. JSON bodies are validated without
 * type coercion (see request-validation.ts), so 1 stays 1 and "1" stays "1"; the list (rather than
 * a union) also keeps that true should the schema ever be used in a coerced part (a query string).
 */
export const FactValueInput = Type.Unsafe<string | number | boolean | string[] | null>({
  type: ['string', 'number', 'boolean', 'array', 'null'],
  items: { type: 'string' },
});

export const ManagedObjectView = Type.Object({
  id: Type.String(),
  kind: Type.String(),
  name: Type.String(),
  parentId: Type.Union([Type.String(), Type.Null()]),
  connectionId: Type.Union([Type.String(), Type.Null()]),
  externalId: Type.Union([Type.String(), Type.Null()]),
  tags: Type.Array(Type.String()),
  facts: Type.Record(Type.String(), FactValue),
  userFacts: Type.Record(Type.String(), FactValue),
  computed: Type.Record(Type.String(), FactValue),
  status: Type.String(),
  missingSince: Type.Union([Type.Number(), Type.Null()]),
  simulated: Type.Boolean(),
  createdAt: Type.Number(),
  updatedAt: Type.Number(),
});

export const ListQuery = Type.Object(
  {
    filter: Type.Optional(
      Type.Array(Type.String({ maxLength: 512 }), {
        maxItems: 32,
        description: 'KEY OP VALUE terms, all must hold (repeat the parameter)',
      }),
    ),
    tag: Type.Optional(Type.Array(Type.String({ maxLength: 128 }), { maxItems: 32 })),
    sort: Type.Optional(Type.String({ maxLength: 128, pattern: '^-?[a-zA-Z][a-zA-Z0-9_.:-]*$' })),
    cursor: Type.Optional(Type.String({ maxLength: 2048 })),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, default: 100 })),
  },
  { additionalProperties: false },
);
export type ListQuery = Static<typeof ListQuery>;

export function Page<T extends TSchema>(item: T) {
  return Type.Object({
    items: Type.Array(item),
    nextCursor: Type.Union([Type.String(), Type.Null()]),
  });
}

export const TaskView = Type.Object({
  id: Type.String(),
  kind: Type.String(),
  targetId: Type.Union([Type.String(), Type.Null()]),
  ownerId: Type.String(),
  state: Type.String(),
  progress: Type.Number(),
  progressMessage: Type.Union([Type.String(), Type.Null()]),
  progressDetails: Type.Union([
    Type.Record(Type.String(), Type.Union([Type.Number(), Type.String()])),
    Type.Null(),
  ]),
  params: Type.Record(Type.String(), Type.Unknown()),
  result: Type.Unknown(),
  error: Type.Union([Type.Object({ code: Type.String(), message: Type.String() }), Type.Null()]),
  attempt: Type.Number(),
  createdAt: Type.Number(),
  startedAt: Type.Union([Type.Number(), Type.Null()]),
  endedAt: Type.Union([Type.Number(), Type.Null()]),
});

export const LocationView = Type.Object({
  vmId: Type.String(),
  hostId: Type.Union([Type.String(), Type.Null()]),
  hostName: Type.Union([Type.String(), Type.Null()]),
  powerState: Type.String(),
  from: Type.Number(),
  to: Type.Union([Type.Number(), Type.Null()]),
});

export const IdentityView = Type.Object({
  id: Type.String(),
  kind: Type.String(),
  name: Type.String(),
  displayName: Type.Union([Type.String(), Type.Null()]),
  role: Type.String(),
  source: Type.String(),
  /** Facts about the identity (a user's department), read by binding conditions as subject.*. */
  attributes: Type.Record(Type.String(), Type.Unknown()),
  disabled: Type.Boolean(),
  createdAt: Type.Number(),
});

export const TokenView = Type.Object({
  id: Type.String(),
  identityId: Type.String(),
  kind: Type.String(),
  name: Type.String(),
  createdAt: Type.Number(),
  expiresAt: Type.Union([Type.Number(), Type.Null()]),
  lastUsedAt: Type.Union([Type.Number(), Type.Null()]),
  revokedAt: Type.Union([Type.Number(), Type.Null()]),
});

export const Role = Type.Union([
  Type.Literal('none'),
  Type.Literal('admin'),
  Type.Literal('operator'),
  Type.Literal('viewer'),
]);
export const Password = Type.String({ minLength: 1, maxLength: 1024 });
