/**
 * Groups, custom roles and role bindings: stored, and mirrored into one
 * in-memory AccessGraph that answers every authorization decision. Each
 * change rebuilds the graph from the store, so what is enforced is always
 * what is stored.
 */
import type { Clock } from '../../core/clock.js';
import { ZenithError } from '../../core/errors.js';
import { isId, newId } from '../../core/ids.js';
import type { RoleBindingsTable } from '../../store/schema.js';
import type { Store } from '../../store/store.js';
import type { InventoryService } from '../inventory/inventory-service.js';
import { scopeResolverOf, type ScopeResolver } from '../inventory/scope-chain.js';
import type { Facts } from '../inventory/model.js';
import { ObjectFacts } from '../policy/fact-sources.js';
import {
  AccessGraph,
  type AccessFacts,
  type Asker,
  type Decision,
  type RoleBinding,
  type SubjectKind,
} from './access-graph.js';
import { compileBindingCondition } from './binding-conditions.js';
import { SubjectFacts, type SubjectIdentity } from './subject-facts.js';
import type { IdentityService } from './identity-service.js';
import {
  isPermission,
  isRoleName,
  permissions as allPermissions,
  roleNames,
  rolePermissions,
  type Permission,
} from './roles.js';
import { refuseTakenName, rowById } from '../../store/rows.js';

export interface Group {
  id: string;
  name: string;
  description: string | null;
  createdAt: number;
  members: Array<{ id: string; kind: SubjectKind; name: string }>;
}

export interface RoleView {
  name: string;
  description: string | null;
  permissions: Permission[];
  predefined: boolean;
}

const namePattern = /^[a-z][a-z0-9._-]{1,63}$/;

function checkName(what: string, name: string): void {
  if (!namePattern.test(name))
    throw new ZenithError(
      'ZEN_BAD_REQUEST',
      `'${name}' is not a valid ${what} name: 2–64 lower-case letters, digits and . _ -, starting with a letter`,
      { name },
    );
}

export class AccessService {
  #graph: AccessGraph;
  readonly #scopes: ScopeResolver;
  /** What binding conditions read as `subject.…`: identities' attributes. */
  readonly #subjects = new SubjectFacts();
  readonly #facts: AccessFacts;
  /** Called after each reload (a group, role or binding changed): live sessions look again. */
  readonly #onReloaded: () => void;

  constructor(
    private readonly store: Store,
    private readonly clock: Clock,
    private readonly identities: IdentityService,
    private readonly inventory: InventoryService,
    options: { onReloaded?: () => void } = {},
  ) {
    this.#onReloaded = options.onReloaded ?? (() => undefined);
    this.#scopes = scopeResolverOf(inventory.index);
    this.#facts = {
      subject: (id) => this.#subjects.get(id),
      object: (id) => {
        const object = inventory.index.get(id);
        return object ? new ObjectFacts(object) : undefined;
      },
    };
    this.#graph = new AccessGraph(this.#scopes, this.#facts);
  }

  /** An identity's attributes changed: conditions see them at once. */
  setSubjectAttributes(identity: SubjectIdentity, attributes: Facts): void {
    this.#subjects.set(identity, attributes);
  }

  get graph(): AccessGraph {
    return this.#graph;
  }

  async load(): Promise<void> {
    await this.#subjects.load(this.store);
    const graph = new AccessGraph(this.#scopes, this.#facts);
    for (const name of roleNames) graph.setRole(name, rolePermissions[name]);
    for (const row of await this.store.db.selectFrom('roles').selectAll().execute())
      graph.setRole(row.name, JSON.parse(row.permissions) as Permission[]);
    for (const row of await this.store.db.selectFrom('group_members').selectAll().execute())
      graph.addMember(row.group_id, row.member_id);
    for (const row of await this.store.db.selectFrom('role_bindings').selectAll().execute())
      graph.addBinding(bindingOf(row));
    this.#graph = graph;
    this.#onReloaded();
  }

  decide(asker: Asker, permission: Permission, objectId: string | null): Decision {
    return this.#graph.decide(asker, permission, objectId);
  }

  holdsAnywhere(asker: Asker, permission: Permission): boolean {
    return this.#graph.holdsAnywhere(asker, permission);
  }

  filter(asker: Asker, permission: Permission): (objectId: string) => boolean {
    return this.#graph.filter(asker, permission);
  }

  /** `zenith access explain`: the decision for a named identity, permission and object (by id or name). */
  async explain(identity: string, permission: string, object: string | null): Promise<Decision> {
    const subject = await this.identities.get(identity);
    if (!isPermission(permission))
      throw new ZenithError('ZEN_BAD_REQUEST', `unknown permission '${permission}'`, {
        permission,
        known: allPermissions,
      });
    const objectId = object === null ? null : this.inventory.lookup(object).id;
    return this.decide({ id: subject.id, role: subject.role }, permission, objectId);
  }

  // --- groups ---------------------------------------------------------------

  async createGroup(input: { name: string; description?: string | null }): Promise<Group> {
    checkName('group', input.name);
    await refuseTakenName(
      this.store.db,
      'groups',
      input.name,
      `a group named '${input.name}' exists`,
    );
    const now = this.clock.now();
    const row = {
      id: newId('group', now),
      name: input.name,
      description: input.description ?? null,
      created_at: now,
    };
    await this.store.db.insertInto('groups').values(row).execute();
    return this.getGroup(row.id);
  }

  async listGroups(): Promise<Group[]> {
    const rows = await this.store.db.selectFrom('groups').selectAll().orderBy('name').execute();
    return Promise.all(rows.map((row) => this.getGroup(row.id)));
  }

  async getGroup(idOrName: string): Promise<Group> {
    const row = await this.store.db
      .selectFrom('groups')
      .selectAll()
      .where(isId(idOrName, 'group') ? 'id' : 'name', '=', idOrName)
      .executeTakeFirst();
    if (!row) throw new ZenithError('ZEN_NOT_FOUND', `no group '${idOrName}'`, { group: idOrName });
    const members = await this.store.db
      .selectFrom('group_members')
      .selectAll()
      .where('group_id', '=', row.id)
      .orderBy('added_at')
      .execute();
    return {
      id: row.id,
      name: row.name,
      description: row.description,
      createdAt: Number(row.created_at),
      members: await Promise.all(
        members.map(async (m) => ({
          id: m.member_id,
          kind: m.member_kind as SubjectKind,
          name: await this.#subjectName(m.member_id, m.member_kind as SubjectKind),
        })),
      ),
    };
  }

  async deleteGroup(idOrName: string): Promise<Group> {
    const group = await this.getGroup(idOrName);
    await this.store.db.transaction().execute(async (tx) => {
      await tx.deleteFrom('group_members').where('group_id', '=', group.id).execute();
      await tx.deleteFrom('group_members').where('member_id', '=', group.id).execute();
      await tx.deleteFrom('role_bindings').where('subject_id', '=', group.id).execute();
      await tx.deleteFrom('quotas').where('group_id', '=', group.id).execute();
      await tx.deleteFrom('groups').where('id', '=', group.id).execute();
    });
    await this.load();
    return group;
  }

  async addMember(groupIdOrName: string, member: string): Promise<Group> {
    const group = await this.getGroup(groupIdOrName);
    const subject = await this.resolveSubject(member);
    if (this.#graph.wouldCycle(group.id, subject.id))
      throw new ZenithError(
        'ZEN_CONFLICT',
        `adding ${subject.name} to ${group.name} would make a group contain itself`,
        { group: group.id, member: subject.id },
      );
    if (!group.members.some((m) => m.id === subject.id))
      await this.store.db
        .insertInto('group_members')
        .values({
          group_id: group.id,
          member_id: subject.id,
          member_kind: subject.kind,
          added_at: this.clock.now(),
        })
        .execute();
    await this.load();
    return this.getGroup(group.id);
  }

  async removeMember(groupIdOrName: string, member: string): Promise<Group> {
    const group = await this.getGroup(groupIdOrName);
    const subject = await this.resolveSubject(member);
    const removed = await this.store.db
      .deleteFrom('group_members')
      .where('group_id', '=', group.id)
      .where('member_id', '=', subject.id)
      .executeTakeFirst();
    if (Number(removed.numDeletedRows) === 0)
      throw new ZenithError('ZEN_NOT_FOUND', `${subject.name} is not a member of ${group.name}`);
    await this.load();
    return this.getGroup(group.id);
  }

  /** A user, service identity or group, by id or name. */
  async resolveSubject(idOrName: string): Promise<{ id: string; kind: SubjectKind; name: string }> {
    if (isId(idOrName, 'group') || !(isId(idOrName, 'user') || isId(idOrName, 'service'))) {
      const group = await this.store.db
        .selectFrom('groups')
        .select(['id', 'name'])
        .where(isId(idOrName, 'group') ? 'id' : 'name', '=', idOrName)
        .executeTakeFirst();
      if (group) return { id: group.id, kind: 'group', name: group.name };
    }
    const identity = await this.identities.get(idOrName).catch((error: unknown) => {
      if (error instanceof ZenithError && error.code === 'ZEN_NOT_FOUND')
        throw new ZenithError('ZEN_NOT_FOUND', `no user, service identity or group '${idOrName}'`, {
          subject: idOrName,
        });
      throw error;
    });
    return { id: identity.id, kind: identity.kind, name: identity.name };
  }

  /**
   * After a directory login: the user is in exactly the Zenith groups its directory groups map to
   * (missing Zenith groups are created); groups no directory group maps to are left alone.
   */
  async syncDirectoryGroups(
    identityId: string,
    directoryGroups: string[],
    groupMap: Record<string, string>,
  ): Promise<void> {
    const wanted = new Set(directoryGroups.flatMap((g) => (groupMap[g] ? [groupMap[g]] : [])));
    for (const name of new Set(Object.values(groupMap))) {
      const group =
        (await this.getGroup(name).catch(() => null)) ??
        (wanted.has(name)
          ? await this.createGroup({ name, description: 'from the directory' })
          : null);
      if (!group) continue;
      const isMember = group.members.some((m) => m.id === identityId);
      if (wanted.has(name) && !isMember)
        await this.store.db
          .insertInto('group_members')
          .values({
            group_id: group.id,
            member_id: identityId,
            member_kind: 'user',
            added_at: this.clock.now(),
          })
          .execute();
      if (!wanted.has(name) && isMember)
        await this.store.db
          .deleteFrom('group_members')
          .where('group_id', '=', group.id)
          .where('member_id', '=', identityId)
          .execute();
    }
    await this.load();
  }

  /** An identity is gone: its memberships and bindings go with it. */
  async forgetSubject(subjectId: string): Promise<void> {
    await this.store.db.deleteFrom('group_members').where('member_id', '=', subjectId).execute();
    await this.store.db.deleteFrom('role_bindings').where('subject_id', '=', subjectId).execute();
    await this.load();
  }

  // --- roles ----------------------------------------------------------------

  async listRoles(): Promise<RoleView[]> {
    const predefined = roleNames.map((name) => ({
      name,
      description: null,
      permissions: [...rolePermissions[name]],
      predefined: true,
    }));
    const rows = await this.store.db.selectFrom('roles').selectAll().orderBy('name').execute();
    return [
      ...predefined,
      ...rows.map((row) => ({
        name: row.name,
        description: row.description,
        permissions: JSON.parse(row.permissions) as Permission[],
        predefined: false,
      })),
    ];
  }

  async getRole(name: string): Promise<RoleView> {
    const role = (await this.listRoles()).find((r) => r.name === name);
    if (!role) throw new ZenithError('ZEN_NOT_FOUND', `no role '${name}'`, { role: name });
    return role;
  }

  async createRole(input: {
    name: string;
    permissions: string[];
    description?: string | null;
  }): Promise<RoleView> {
    checkName('role', input.name);
    if (isRoleName(input.name) || (await this.getRole(input.name).catch(() => null)))
      throw new ZenithError('ZEN_CONFLICT', `a role named '${input.name}' exists`, {
        name: input.name,
      });
    const granted = this.#checkPermissions(input.permissions);
    await this.store.db
      .insertInto('roles')
      .values({
        id: newId('role', this.clock.now()),
        name: input.name,
        description: input.description ?? null,
        permissions: JSON.stringify(granted),
        created_at: this.clock.now(),
      })
      .execute();
    await this.load();
    return this.getRole(input.name);
  }

  async updateRole(name: string, changes: { permissions: string[] }): Promise<RoleView> {
    const role = await this.getRole(name);
    if (role.predefined)
      throw new ZenithError('ZEN_CONFLICT', `'${name}' is predefined and cannot be changed`);
    await this.store.db
      .updateTable('roles')
      .set({ permissions: JSON.stringify(this.#checkPermissions(changes.permissions)) })
      .where('name', '=', name)
      .execute();
    await this.load();
    return this.getRole(name);
  }

  async deleteRole(name: string): Promise<RoleView> {
    const role = await this.getRole(name);
    if (role.predefined)
      throw new ZenithError('ZEN_CONFLICT', `'${name}' is predefined and cannot be deleted`);
    const bound = await this.store.db
      .selectFrom('role_bindings')
      .select('id')
      .where('role', '=', name)
      .executeTakeFirst();
    if (bound)
      throw new ZenithError('ZEN_CONFLICT', `role '${name}' is still bound (${bound.id})`, {
        binding: bound.id,
      });
    await this.store.db.deleteFrom('roles').where('name', '=', name).execute();
    await this.load();
    return role;
  }

  #checkPermissions(requested: string[]): Permission[] {
    const unknown = requested.filter((p) => !isPermission(p));
    if (unknown.length > 0)
      throw new ZenithError('ZEN_BAD_REQUEST', `unknown permission(s): ${unknown.join(', ')}`, {
        unknown,
        known: allPermissions,
      });
    return [...new Set(requested as Permission[])];
  }

  // --- bindings -------------------------------------------------------------

  async listBindings(
    filter: { subjectId?: string; scopeId?: string } = {},
  ): Promise<RoleBinding[]> {
    let query = this.store.db.selectFrom('role_bindings').selectAll();
    if (filter.subjectId) query = query.where('subject_id', '=', filter.subjectId);
    if (filter.scopeId) query = query.where('scope_id', '=', filter.scopeId);
    return (await query.orderBy('created_at').orderBy('id').execute()).map(bindingOf);
  }

  async createBinding(
    input: { subject: string; role: string; scope?: string | null; condition?: string | null },
    createdBy: string,
  ): Promise<RoleBinding> {
    const condition = input.condition?.trim() ? input.condition : null;
    // Refused (ZEN_POLICY_SYNTAX / ZEN_POLICY_INVALID, with line and column) before anything is written.
    if (condition !== null) compileBindingCondition(condition);
    const subject = await this.resolveSubject(input.subject);
    await this.getRole(input.role);
    // Only absent or null means everywhere: an empty id names nothing (it is not a wildcard).
    if (input.scope === '')
      throw new ZenithError(
        'ZEN_BAD_REQUEST',
        'scope is empty: leave it out (or null) to bind everywhere',
        {
          field: 'scope',
        },
      );
    const scopeId = input.scope == null ? null : this.inventory.lookup(input.scope).id;
    const now = this.clock.now();
    const row = {
      id: newId('binding', now),
      subject_id: subject.id,
      subject_kind: subject.kind,
      role: input.role,
      scope_id: scopeId,
      condition,
      created_by: createdBy,
      created_at: now,
    };
    await this.store.db.insertInto('role_bindings').values(row).execute();
    await this.load();
    return bindingOf(row);
  }

  async deleteBinding(id: string): Promise<RoleBinding> {
    const row = await rowById(this.store.db, 'role_bindings', id, `no role binding ${id}`);
    await this.store.db.deleteFrom('role_bindings').where('id', '=', id).execute();
    await this.load();
    return bindingOf(row);
  }

  async #subjectName(id: string, kind: SubjectKind): Promise<string> {
    if (kind === 'group') {
      const row = await this.store.db
        .selectFrom('groups')
        .select('name')
        .where('id', '=', id)
        .executeTakeFirst();
      return row?.name ?? id;
    }
    return (await this.identities.get(id).catch(() => null))?.name ?? id;
  }
}

function bindingOf(row: RoleBindingsTable): RoleBinding {
  return {
    id: row.id,
    subjectId: row.subject_id,
    subjectKind: row.subject_kind as SubjectKind,
    role: row.role,
    scopeId: row.scope_id,
    condition: row.condition,
    createdBy: row.created_by,
    createdAt: Number(row.created_at),
  };
}
