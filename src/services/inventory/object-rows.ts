/** Conversion between ManagedObject and its table row. */
import type { ObjectsTable } from '../../store/schema.js';
import type { Facts, ManagedObject, ObjectKind, ObjectStatus } from './model.js';

interface StoredTags {
  discovered: string[];
  user: string[];
}

export function rowOf(
  object: ManagedObject,
  discoveredTags: string[],
  userTags: string[],
): ObjectsTable {
  const tags: StoredTags = { discovered: discoveredTags, user: userTags };
  return {
    id: object.id,
    kind: object.kind,
    name: object.name,
    parent_id: object.parentId,
    connection_id: object.connectionId,
    external_id: object.externalId,
    tags: JSON.stringify(tags),
    facts: JSON.stringify(object.facts),
    user_facts: JSON.stringify(object.userFacts),
    status: object.status,
    missing_since: object.missingSince,
    created_at: object.createdAt,
    updated_at: object.updatedAt,
  };
}

export interface LoadedObject {
  object: ManagedObject;
  discoveredTags: string[];
  userTags: string[];
}

export function objectOf(row: ObjectsTable): LoadedObject {
  const tags = JSON.parse(row.tags) as StoredTags;
  return {
    discoveredTags: tags.discovered,
    userTags: tags.user,
    object: {
      id: row.id,
      kind: row.kind as ObjectKind,
      name: row.name,
      parentId: row.parent_id,
      connectionId: row.connection_id,
      externalId: row.external_id,
      tags: unionTags(tags.discovered, tags.user),
      facts: JSON.parse(row.facts) as Facts,
      userFacts: JSON.parse(row.user_facts) as Facts,
      computed: {},
      status: row.status as ObjectStatus,
      missingSince: row.missing_since === null ? null : Number(row.missing_since),
      createdAt: Number(row.created_at),
      updatedAt: Number(row.updated_at),
    },
  };
}

export function unionTags(a: readonly string[], b: readonly string[]): string[] {
  return [...new Set([...a, ...b])].sort();
}
