/**
 * The authorization decision, in memory and pure: who is in which group
 * (groups nest), which role grants which permissions, and which binding puts
 * a subject in a role on a scope. A decision walks the object's scope chain
 * (the object, its ancestors, the resource groups that hold any of them) and
 * names the binding that allows, so every answer can be explained. A binding
 * may carry a condition over the facts of the subject and the object
 * (binding-conditions.ts): it grants only where the condition holds.
 */
import type { ScopeResolver } from '../inventory/scope-chain.js';
import type { CompiledExpression, FactSource } from '../policy/language/compiler.js';
import {
  compileBindingCondition,
  evaluateCondition,
  type ConditionOutcome,
} from './binding-conditions.js';
import type { Permission, RoleName } from './roles.js';

export type SubjectKind = 'user' | 'service' | 'group';

export interface RoleBinding {
  id: string;
  subjectId: string;
  subjectKind: SubjectKind;
  role: string;
  /** null: everything. */
  scopeId: string | null;
  /** A condition over subject.* and object.* (the policy language); null or absent: always. */
  condition?: string | null;
  createdBy: string;
  createdAt: number;
}

/** Where a decision reads the facts of the identity asking and of the object. */
export interface AccessFacts {
  subject(identityId: string): FactSource | undefined;
  object(objectId: string): FactSource | undefined;
}

const noFacts: AccessFacts = { subject: () => undefined, object: () => undefined };

/** Who asks: an identity and the predefined role it holds everywhere. */
export interface Asker {
  id: string;
  role: RoleName;
}

export interface Decision {
  allowed: boolean;
  permission: Permission;
  objectId: string | null;
  /** The binding that allows; `identity-role` stands for the identity's own predefined role. */
  binding: RoleBinding | null;
  /** The groups from the identity to the binding's subject, outermost last. */
  via: string[];
  reason: string;
  /** The conditions of bindings that reach the object, and how each came out (in the order tried). */
  conditions: ConditionOutcome[];
}

/** What a permission grants an asker: everywhere, or on these scopes (each with the binding that grants it). */
export interface Grant {
  global: { binding: RoleBinding; via: string[] } | null;
  scopes: Map<string, { binding: RoleBinding; via: string[] }>;
  /** Bindings with a condition: they grant only where it holds, so they are tried per object. */
  conditional: Array<{ binding: RoleBinding; via: string[]; condition: CompiledExpression }>;
}

const emptyGrant = (): Grant => ({ global: null, scopes: new Map(), conditional: [] });

export type { ScopeResolver } from '../inventory/scope-chain.js';

export class AccessGraph {
  readonly #roles = new Map<string, ReadonlySet<Permission>>();
  /** member id → the groups it is directly in. */
  readonly #groupsOf = new Map<string, Set<string>>();
  readonly #bindingsBySubject = new Map<string, RoleBinding[]>();
  readonly #grants = new Map<string, Map<Permission, Grant>>();
  readonly #conditions = new Map<string, CompiledExpression>();

  constructor(
    private readonly scopes: ScopeResolver,
    private readonly facts: AccessFacts = noFacts,
  ) {}

  setRole(name: string, permissions: Iterable<Permission>): void {
    this.#roles.set(name, new Set(permissions));
    this.#grants.clear();
  }

  rolePermissions(name: string): ReadonlySet<Permission> | undefined {
    return this.#roles.get(name);
  }

  addMember(groupId: string, memberId: string): void {
    let groups = this.#groupsOf.get(memberId);
    if (!groups) this.#groupsOf.set(memberId, (groups = new Set()));
    groups.add(groupId);
    this.#grants.clear();
  }

  /** Adds a binding; its condition is compiled here (a stored one that no longer compiles grants nothing). */
  addBinding(binding: RoleBinding): void {
    if (binding.condition) {
      try {
        this.#conditions.set(binding.id, compileBindingCondition(binding.condition));
      } catch {
        return;
      }
    }
    let list = this.#bindingsBySubject.get(binding.subjectId);
    if (!list) this.#bindingsBySubject.set(binding.subjectId, (list = []));
    list.push(binding);
    this.#grants.clear();
  }

  /** The object facts (`object.KEY` → KEY) that some binding's condition reads. */
  conditionObjectReads(): Set<string> {
    const keys = new Set<string>();
    for (const condition of this.#conditions.values())
      for (const read of condition.reads)
        if (read.startsWith('object.')) keys.add(read.slice('object.'.length));
    return keys;
  }

  /** Every group the subject is in, directly or through nested groups, each with the path that leads to it. */
  groupsOf(subjectId: string): Map<string, string[]> {
    const paths = new Map<string, string[]>();
    const queue: Array<{ id: string; path: string[] }> = [{ id: subjectId, path: [] }];
    while (queue.length > 0) {
      const { id, path } = queue.shift()!;
      for (const groupId of this.#groupsOf.get(id) ?? []) {
        if (paths.has(groupId) || groupId === subjectId) continue;
        const groupPath = [...path, groupId];
        paths.set(groupId, groupPath);
        queue.push({ id: groupId, path: groupPath });
      }
    }
    return paths;
  }

  /** Would adding `memberId` to `groupId` make a group contain itself? */
  wouldCycle(groupId: string, memberId: string): boolean {
    return groupId === memberId || this.groupsOf(groupId).has(memberId);
  }

  /** Every binding that applies to the asker: its own, its groups', and its predefined role (everywhere). */
  bindingsOf(asker: Asker): Array<{ binding: RoleBinding; via: string[] }> {
    const own: RoleBinding = {
      id: 'identity-role',
      subjectId: asker.id,
      subjectKind: 'user',
      role: asker.role,
      scopeId: null,
      createdBy: 'system',
      createdAt: 0,
    };
    const found = [{ binding: own, via: [] as string[] }];
    for (const binding of this.#bindingsBySubject.get(asker.id) ?? [])
      found.push({ binding, via: [] });
    for (const [groupId, path] of this.groupsOf(asker.id))
      for (const binding of this.#bindingsBySubject.get(groupId) ?? [])
        found.push({ binding, via: path });
    return found;
  }

  grantOf(asker: Asker, permission: Permission): Grant {
    const key = `${asker.id}\u0000${asker.role}`;
    let byPermission = this.#grants.get(key);
    if (!byPermission) {
      byPermission = new Map();
      for (const entry of this.bindingsOf(asker)) {
        for (const granted of this.#roles.get(entry.binding.role) ?? []) {
          let grant = byPermission.get(granted);
          if (!grant) byPermission.set(granted, (grant = emptyGrant()));
          const condition = this.#conditions.get(entry.binding.id);
          if (condition) grant.conditional.push({ ...entry, condition });
          else if (entry.binding.scopeId === null) grant.global ??= entry;
          else if (!grant.scopes.has(entry.binding.scopeId))
            grant.scopes.set(entry.binding.scopeId, entry);
        }
      }
      this.#grants.set(key, byPermission);
    }
    return byPermission.get(permission) ?? emptyGrant();
  }

  /** Does the asker hold the permission anywhere at all (the first, cheap gate of a request)? */
  holdsAnywhere(asker: Asker, permission: Permission): boolean {
    const grant = this.grantOf(asker, permission);
    return grant.global !== null || grant.scopes.size > 0 || grant.conditional.length > 0;
  }

  /** The decision for one permission on one object (null: on everything, i.e. a global binding is needed). */
  decide(asker: Asker, permission: Permission, objectId: string | null): Decision {
    const grant = this.grantOf(asker, permission);
    const conditions: ConditionOutcome[] = [];
    const allow = (hit: { binding: RoleBinding; via: string[] }): Decision => ({
      allowed: true,
      permission,
      objectId,
      binding: hit.binding,
      via: hit.via,
      reason:
        hit.binding.id === 'identity-role'
          ? `the identity's own role '${hit.binding.role}' grants ${permission} everywhere`
          : `binding ${hit.binding.id} gives ${hit.binding.subjectId} the role '${hit.binding.role}' on ${hit.binding.scopeId ?? 'everything'}${hit.binding.condition ? ` where ${hit.binding.condition}` : ''}`,
      conditions,
    });
    if (grant.global) return allow(grant.global);
    if (objectId !== null && grant.scopes.size > 0) {
      const hit = this.#reach(grant, objectId);
      if (hit) return allow(hit);
    }
    const reaching = grant.conditional.filter(
      (entry) =>
        entry.binding.scopeId === null ||
        (objectId !== null && this.#holds(entry.binding.scopeId, objectId)),
    );
    if (reaching.length > 0) {
      const subject = this.facts.subject(asker.id);
      const object = objectId === null ? undefined : this.facts.object(objectId);
      for (const entry of reaching) {
        const outcome = evaluateCondition(entry.binding.id, entry.condition, subject, object);
        conditions.push(outcome);
        if (outcome.held) return allow(entry);
      }
    }
    const scoped = [...grant.scopes.keys()];
    return {
      allowed: false,
      permission,
      objectId,
      binding: null,
      via: [],
      reason:
        conditions.length > 0
          ? `the condition${conditions.length > 1 ? 's' : ''} of ${conditions.map((c) => c.bindingId).join(', ')} did not hold for ${objectId ?? 'everything'}`
          : objectId === null
            ? `no role binding grants ${permission} on everything`
            : scoped.length > 0 || grant.conditional.length > 0
              ? `${permission} is granted on ${[...scoped, ...grant.conditional.map((c) => c.binding.scopeId ?? 'everything')].join(', ')}, none of which holds ${objectId}`
              : `no role binding grants ${permission} anywhere`,
      conditions,
    };
  }

  /** Does the scope hold the object (an ancestor, or a resource group that picks it or an ancestor)? */
  #holds(scopeId: string, objectId: string): boolean {
    const ancestors = this.scopes.ancestors(objectId);
    return ancestors.includes(scopeId) || this.scopes.picks(scopeId, ancestors);
  }

  /** A test for many objects at once (lists): the grant is looked up once. */
  filter(asker: Asker, permission: Permission): (objectId: string) => boolean {
    const grant = this.grantOf(asker, permission);
    if (grant.global) return () => true;
    if (grant.scopes.size === 0 && grant.conditional.length === 0) return () => false;
    if (grant.conditional.length > 0)
      return (objectId) => this.decide(asker, permission, objectId).allowed;
    // Resource groups and their selectors change with the inventory: a long-lived filter (an event
    // stream's) asks again which of the grant's scopes pick objects once a group has changed.
    let pickingAt = this.scopes.version();
    let picking = this.#picking(grant);
    return (objectId) => {
      if (this.scopes.version() !== pickingAt) {
        pickingAt = this.scopes.version();
        picking = this.#picking(grant);
      }
      return this.#reach(grant, objectId, picking) !== undefined;
    };
  }

  /** The grant's scopes that are resource groups picking objects besides their children. */
  #picking(grant: Grant): string[] {
    return [...grant.scopes.keys()].filter((id) => this.scopes.picksObjects(id));
  }

  /** The grant's entry whose scope holds the object: an ancestor first, then a resource group that picks it. */
  #reach(
    grant: Grant,
    objectId: string,
    picking?: string[],
  ): { binding: RoleBinding; via: string[] } | undefined {
    const ancestors = this.scopes.ancestors(objectId);
    for (const scopeId of ancestors) {
      const hit = grant.scopes.get(scopeId);
      if (hit) return hit;
    }
    for (const scopeId of picking ?? this.#picking(grant))
      if (this.scopes.picks(scopeId, ancestors)) return grant.scopes.get(scopeId);
    return undefined;
  }
}
