/**
 * The authorization decision, in memory and pure: who is in which group
 * (groups nest), which role grants which permissions, and which binding puts
 * a subject in a role on a scope. A decision walks the object's scope chain
 * (the object, its ancestors, the resource groups that hold any of them) and
 * names the binding that allows, so every answer can be explained.
 */
import type { ScopeResolver } from '../inventory/scope-chain.js';
import type { Permission, RoleName } from './roles.js';

export type SubjectKind = 'user' | 'service' | 'group';

export interface RoleBinding {
  id: string;
  subjectId: string;
  subjectKind: SubjectKind;
  role: string;
  /** null: everything. */
  scopeId: string | null;
  createdBy: string;
  createdAt: number;
}

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
}

/** What a permission grants an asker: everywhere, or on these scopes (each with the binding that grants it). */
export interface Grant {
  global: { binding: RoleBinding; via: string[] } | null;
  scopes: Map<string, { binding: RoleBinding; via: string[] }>;
}

export type { ScopeResolver } from '../inventory/scope-chain.js';

export class AccessGraph {
  readonly #roles = new Map<string, ReadonlySet<Permission>>();
  /** member id → the groups it is directly in. */
  readonly #groupsOf = new Map<string, Set<string>>();
  readonly #bindingsBySubject = new Map<string, RoleBinding[]>();
  readonly #grants = new Map<string, Map<Permission, Grant>>();

  constructor(private readonly scopes: ScopeResolver) {}

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

  addBinding(binding: RoleBinding): void {
    let list = this.#bindingsBySubject.get(binding.subjectId);
    if (!list) this.#bindingsBySubject.set(binding.subjectId, (list = []));
    list.push(binding);
    this.#grants.clear();
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
          if (!grant) byPermission.set(granted, (grant = { global: null, scopes: new Map() }));
          if (entry.binding.scopeId === null) grant.global ??= entry;
          else if (!grant.scopes.has(entry.binding.scopeId))
            grant.scopes.set(entry.binding.scopeId, entry);
        }
      }
      this.#grants.set(key, byPermission);
    }
    return byPermission.get(permission) ?? { global: null, scopes: new Map() };
  }

  /** Does the asker hold the permission anywhere at all (the first, cheap gate of a request)? */
  holdsAnywhere(asker: Asker, permission: Permission): boolean {
    const grant = this.grantOf(asker, permission);
    return grant.global !== null || grant.scopes.size > 0;
  }

  /** The decision for one permission on one object (null: on everything, i.e. a global binding is needed). */
  decide(asker: Asker, permission: Permission, objectId: string | null): Decision {
    const grant = this.grantOf(asker, permission);
    const allow = (hit: { binding: RoleBinding; via: string[] }): Decision => ({
      allowed: true,
      permission,
      objectId,
      binding: hit.binding,
      via: hit.via,
      reason:
        hit.binding.id === 'identity-role'
          ? `the identity's own role '${hit.binding.role}' grants ${permission} everywhere`
          : `binding ${hit.binding.id} gives ${hit.binding.subjectId} the role '${hit.binding.role}' on ${hit.binding.scopeId ?? 'everything'}`,
    });
    if (grant.global) return allow(grant.global);
    if (objectId !== null && grant.scopes.size > 0) {
      const hit = this.#reach(grant, objectId);
      if (hit) return allow(hit);
    }
    return {
      allowed: false,
      permission,
      objectId,
      binding: null,
      via: [],
      reason:
        objectId === null
          ? `no role binding grants ${permission} on everything`
          : grant.scopes.size > 0
            ? `${permission} is granted on ${[...grant.scopes.keys()].join(', ')}, none of which holds ${objectId}`
            : `no role binding grants ${permission} anywhere`,
    };
  }

  /** A test for many objects at once (lists): the grant is looked up once. */
  filter(asker: Asker, permission: Permission): (objectId: string) => boolean {
    const grant = this.grantOf(asker, permission);
    if (grant.global) return () => true;
    if (grant.scopes.size === 0) return () => false;
    // Resource groups and their selectors change with the inventory: asked per list, not cached.
    const bySelector = this.#bySelector(grant);
    return (objectId) => this.#reach(grant, objectId, bySelector) !== undefined;
  }

  /** The grant's entry whose scope holds the object: an ancestor first, then a selecting resource group. */
  #bySelector(grant: Grant): boolean {
    return [...grant.scopes.keys()].some((id) => this.scopes.reachesBySelector(id));
  }

  #reach(
    grant: Grant,
    objectId: string,
    bySelector?: boolean,
  ): { binding: RoleBinding; via: string[] } | undefined {
    const ancestors = this.scopes.ancestors(objectId);
    for (const scopeId of ancestors) {
      const hit = grant.scopes.get(scopeId);
      if (hit) return hit;
    }
    if (!(bySelector ?? this.#bySelector(grant))) return undefined;
    for (const scopeId of this.scopes.groupsHolding(ancestors)) {
      const hit = grant.scopes.get(scopeId);
      if (hit) return hit;
    }
    return undefined;
  }
}
