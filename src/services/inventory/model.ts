import type { FactValue, Facts, ObjectKind, PowerState } from '../../hypervisors/driver.js';

export type { FactValue, Facts, ObjectKind, PowerState } from '../../hypervisors/driver.js';

export type ObjectStatus = 'present' | 'missing';

/** A managed object as the inventory holds it (and the API shows it). */
export interface ManagedObject {
  id: string;
  kind: ObjectKind;
  name: string;
  parentId: string | null;
  connectionId: string | null;
  externalId: string | null;
  tags: string[];
  /** Discovered from the hypervisor: read-only for users. */
  facts: Facts;
  /** Written by users, always under user.* */
  userFacts: Facts;
  /** Derived by Zenith (location.*, vms.*): read-only. */
  computed: Facts;
  status: ObjectStatus;
  missingSince: number | null;
  createdAt: number;
  updatedAt: number;
}

export interface LocationInterval {
  vmId: string;
  hostId: string | null;
  powerState: PowerState;
  from: number;
  to: number | null;
  /** Why it came there, when Zenith moved it for a reason: 'failover'. */
  reason?: string;
}

/**
 * A fact of a set by its key, if the set has it: its own keys only (`constructor`, `toString` and
 * `__proto__` of every object are no facts).
 */
export function ownFact(facts: Facts, key: string): FactValue | undefined {
  return Object.hasOwn(facts, key) ? facts[key] : undefined;
}

/** Reads a fact by its full key: user.* from user facts, then computed, then discovered, then built-ins. */
export function factOf(object: ManagedObject, key: string): FactValue | undefined {
  if (key.startsWith('user.')) return ownFact(object.userFacts, key);
  if (Object.hasOwn(object.computed, key)) return object.computed[key];
  if (Object.hasOwn(object.facts, key)) return object.facts[key];
  switch (key) {
    case 'name':
      return object.name;
    case 'kind':
      return object.kind;
    case 'status':
      return object.status;
    case 'id':
      return object.id;
    case 'parent':
      return object.parentId;
    case 'connection':
      return object.connectionId;
    case 'tags':
      return object.tags;
    default:
      return undefined;
  }
}

export const userFactKey = /^user\.[a-zA-Z][a-zA-Z0-9_-]*(\.[a-zA-Z][a-zA-Z0-9_-]*)*$/;
export const tagPattern = /^[a-zA-Z0-9][a-zA-Z0-9_.:/=-]{0,127}$/;
