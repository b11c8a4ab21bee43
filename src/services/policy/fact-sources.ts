/**
 * Where policy expressions read facts: inventory objects (with placement's
 * own figures laid over a host), and the identity asking. Also the lookups
 * that give a VM its resource group and a host its cluster and datacenter.
 */
import type { InventoryIndex } from '../inventory/inventory-index.js';
import type { FactValue, Facts, ManagedObject } from '../inventory/model.js';
import type { FactSource } from './language/compiler.js';

/**
 * An object's facts, as factOf() reads them — user.* from user facts only;
 * otherwise extra figures, computed, discovered, built-ins — flattened once
 * into one record (objects in the index are replaced, never changed, so the
 * record stays true for this object).
 */
export class ObjectFacts implements FactSource {
  #flat: Map<string, FactValue> | undefined;

  constructor(
    readonly object: ManagedObject,
    readonly extra: Facts | null = null,
  ) {}

  fact(key: string): FactValue | undefined {
    return (this.#flat ??= this.#flatten()).get(key);
  }

  #flatten(): Map<string, FactValue> {
    const object = this.object;
    const flat = new Map<string, FactValue>([
      ['name', object.name],
      ['id', object.id],
      ['kind', object.kind],
      ['status', object.status],
      ['tags', object.tags],
      ['parent', object.parentId],
      ['connection', object.connectionId],
    ]);
    for (const layer of [object.facts, object.computed, this.extra ?? {}])
      for (const [key, value] of Object.entries(layer))
        if (!key.startsWith('user.')) flat.set(key, value);
    for (const [key, value] of Object.entries(object.userFacts))
      if (key.startsWith('user.')) flat.set(key, value);
    return flat;
  }
}

/** A plain set of facts (the identity asking, a VM not created yet). */
export class PlainFacts implements FactSource {
  readonly #facts: Map<string, FactValue>;

  constructor(readonly facts: Facts) {
    this.#facts = new Map(Object.entries(facts));
  }

  fact(key: string): FactValue | undefined {
    return this.#facts.get(key);
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
