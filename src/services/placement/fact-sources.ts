/**
 * Where policy expressions read facts: inventory objects (with placement's
 * own figures laid over a host), and the identity asking. Also the lookups
 * that give a VM its resource group and a host its cluster and datacenter.
 */
import type { InventoryIndex } from '../inventory/inventory-index.js';
import type { FactValue, Facts, ManagedObject } from '../inventory/model.js';
import type { FactSource } from './policy/compiler.js';

function own(facts: Facts, key: string): FactValue | undefined {
  return Object.hasOwn(facts, key) ? facts[key] : undefined;
}

/** An object's facts: user.* from user facts, then extra figures, computed, discovered, built-ins. */
export class ObjectFacts implements FactSource {
  constructor(
    readonly object: ManagedObject,
    readonly extra: Facts | null = null,
  ) {}

  fact(key: string): FactValue | undefined {
    const object = this.object;
    if (key.startsWith('user.')) return own(object.userFacts, key);
    if (this.extra) {
      const value = own(this.extra, key);
      if (value !== undefined) return value;
    }
    const computed = own(object.computed, key);
    if (computed !== undefined) return computed;
    const discovered = own(object.facts, key);
    if (discovered !== undefined) return discovered;
    switch (key) {
      case 'name':
        return object.name;
      case 'id':
        return object.id;
      case 'kind':
        return object.kind;
      case 'status':
        return object.status;
      case 'tags':
        return object.tags;
      case 'parent':
        return object.parentId;
      case 'connection':
        return object.connectionId;
      default:
        return undefined;
    }
  }
}

/** A plain set of facts (the identity asking, a VM not created yet). */
export class PlainFacts implements FactSource {
  constructor(readonly facts: Facts) {}

  fact(key: string): FactValue | undefined {
    return own(this.facts, key);
  }
}

export interface Requester {
  id: string;
  name: string;
  kind: string;
  role?: string;
}

export function requesterFacts(requester: Requester | undefined): FactSource | undefined {
  if (!requester) return undefined;
  return new PlainFacts({
    id: requester.id,
    name: requester.name,
    kind: requester.kind,
    role: requester.role ?? null,
  });
}

/** The resource group a VM belongs to: the one its user.resourceGroup fact names (id or name). */
export function resourceGroupOf(
  index: InventoryIndex,
  reference: FactValue | undefined,
): ManagedObject | undefined {
  if (typeof reference !== 'string' || reference === '') return undefined;
  const byId = index.get(reference);
  if (byId) return byId.kind === 'resourceGroup' ? byId : undefined;
  return index.query({
    kind: 'resourceGroup',
    filters: [{ key: 'name', op: '=', values: [reference], text: `name=${reference}` }],
    limit: 1,
  }).items[0];
}

/** The cluster and datacenter above an object (a host may sit right under a datacenter, or under neither). */
export function ancestryOf(
  index: InventoryIndex,
  object: ManagedObject,
): { cluster: ManagedObject | undefined; datacenter: ManagedObject | undefined } {
  let cluster: ManagedObject | undefined;
  let datacenter: ManagedObject | undefined;
  let current = object.parentId ? index.get(object.parentId) : undefined;
  for (let depth = 0; current && depth < 8; depth++) {
    if (current.kind === 'cluster' && !cluster) cluster = current;
    if (current.kind === 'datacenter') {
      datacenter = current;
      break;
    }
    current = current.parentId ? index.get(current.parentId) : undefined;
  }
  return { cluster, datacenter };
}
