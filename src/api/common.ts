/** Shapes many operations share: ids, fact values, pages of lists and the list query. */
import { Type, type Static, type TSchema } from 'typebox';

/** The longest id or name a path takes (characters); the server accepts such a path segment. */
export const maxPathIdLength = 200;

/**
 * An object named by its id or its name, in a path, a body or a query. Never empty: an empty id
 * would otherwise read as "none" (a role binding with scope "" would reach everything).
 */
export const IdOrName = Type.String({ minLength: 1, maxLength: maxPathIdLength });

export const IdParams = Type.Object({ id: IdOrName }, { additionalProperties: false });
export type IdParams = Static<typeof IdParams>;

/** A fact value in an answer (serialized by branch, so a one-item list stays a list). */
export const FactValue = Type.Union([
  Type.String(),
  Type.Number(),
  Type.Boolean(),
  Type.Array(Type.String()),
  Type.Null(),
]);
export type FactValue = Static<typeof FactValue>;

/**
 * A fact value in a request: one schema with a list of types. JSON bodies are validated without
 * type coercion (see server/request-validation.ts), so 1 stays 1 and "1" stays "1"; the list
 * (rather than a union) also keeps that true should the schema ever be used in a coerced part.
 */
export const FactValueInput = Type.Unsafe<FactValue>({
  type: ['string', 'number', 'boolean', 'array', 'null'],
  items: { type: 'string' },
});

/** User facts (user.* keys; null deletes one) as a request sets them. */
export const FactsInput = Type.Record(Type.String({ maxLength: 128 }), FactValueInput, {
  maxProperties: 64,
});

export const Tags = Type.Array(Type.String({ maxLength: 128 }), { maxItems: 64 });

/** One of a few strings, as a plain string schema with an enum (serialized as a string, typed as the union). */
export function StringEnum<const T extends readonly string[]>(
  values: T,
  options: { description?: string; default?: T[number] } = {},
) {
  return Type.Unsafe<T[number]>({ type: 'string', enum: [...values], ...options });
}

/** Milliseconds since the epoch. */
export const Instant = Type.Number({ description: 'ms since the epoch' });
export const NullableInstant = Type.Union([Instant, Type.Null()]);
export const NullableString = Type.Union([Type.String(), Type.Null()]);

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

/** A page of a list: `nextCursor` continues it (`cursor=`), null at the end. */
export function Page<T extends TSchema>(item: T) {
  return Type.Object({
    items: Type.Array(item),
    nextCursor: Type.Union([Type.String(), Type.Null()]),
  });
}

/** A whole list (not paginated). */
export function Items<T extends TSchema>(item: T) {
  return Type.Object({ items: Type.Array(item) });
}

/** The answer of 204: nothing. */
export const NoContent = Type.Null({ description: 'No content' });

/** Who did something, as the audit trail and tasks name them. */
export const ActorView = Type.Object({
  id: Type.String(),
  kind: Type.String(),
  name: Type.String(),
});
export type ActorView = Static<typeof ActorView>;

/** A period of history read as chart points: from and to (ms since the epoch), a step in seconds. */
export const HistoryQuery = Type.Object(
  {
    from: Type.Integer({ minimum: 0, description: 'ms since the epoch' }),
    to: Type.Integer({ minimum: 0, description: 'ms since the epoch' }),
    step: Type.Optional(
      Type.Integer({ minimum: 1, maximum: 86_400 * 31, description: 'seconds; default 60' }),
    ),
  },
  { additionalProperties: false },
);
