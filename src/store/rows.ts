/**
 * Reading the rows of the tables the services keep: one by its id, every one by name, and whether
 * a name is taken.
 */
import type { Kysely, Selectable } from 'kysely';
import { ZenithError } from '../core/errors.js';
import type { Database } from './schema.js';
import type { Db } from './store.js';

/** The tables whose rows are named by a text `id`. */
export type TableWithId = {
  [T in keyof Database]: Database[T] extends { id: string } ? T : never;
}[keyof Database];

/** The tables whose rows also have a `name`. */
export type TableWithName = {
  [T in keyof Database]: Database[T] extends { name: string } ? T : never;
}[keyof Database];

/** The row of `table` whose id is `id`, or undefined when there is none. */
export async function findRowById<T extends TableWithId>(
  db: Db,
  table: T,
  id: string,
): Promise<Selectable<Database[T]> | undefined> {
  // Every table named here has a text id: read as one of such tables, the query is the same.
  const tables = db as unknown as Kysely<Record<string, { id: string }>>;
  const name: string = table;
  return (await tables.selectFrom(name).selectAll().where('id', '=', id).executeTakeFirst()) as
    Selectable<Database[T]> | undefined;
}

/** The row of `table` whose id is `id`; ZEN_NOT_FOUND saying `notFound` when there is none. */
export async function rowById<T extends TableWithId>(
  db: Db,
  table: T,
  id: string,
  notFound: string,
): Promise<Selectable<Database[T]>> {
  const row = await findRowById(db, table, id);
  if (!row) throw new ZenithError('ZEN_NOT_FOUND', notFound, { id });
  return row;
}

/** Every row of `table`, in the order of their names. */
export async function rowsByName<T extends TableWithName>(
  db: Db,
  table: T,
): Promise<Array<Selectable<Database[T]>>> {
  // Every table named here has a name: read as one of such tables, the query is the same.
  const tables = db as unknown as Kysely<Record<string, { name: string }>>;
  const name: string = table;
  return (await tables.selectFrom(name).selectAll().orderBy('name').execute()) as Array<
    Selectable<Database[T]>
  >;
}

/** Refuses (ZEN_CONFLICT saying `taken`) a name a row of `table` already has. */
export async function refuseTakenName<T extends TableWithName>(
  db: Db,
  table: T,
  name: string,
  taken: string,
): Promise<void> {
  // Every table named here has a name: read as one of such tables, the query is the same.
  const tables = db as unknown as Kysely<Record<string, { id: string; name: string }>>;
  const from: string = table;
  const clash = await tables
    .selectFrom(from)
    .select('id')
    .where('name', '=', name)
    .executeTakeFirst();
  if (clash) throw new ZenithError('ZEN_CONFLICT', taken, { name });
}
