export type Dialect = 'sqlite' | 'postgres';

/** What a migration may need to know about the database it runs on. */
export interface MigrationContext {
  dialect: Dialect;
}
