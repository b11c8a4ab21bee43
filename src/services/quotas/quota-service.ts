/**
 * Quotas per group: vCPUs, memory, disk and number of VMs. Usage is derived,
 * never counted: the present VMs a group owns (their open ownership record
 * in accounting names the group) plus the reservations of its queued and
 * running tasks. A request must fit the quota of its group and of every
 * group that group is nested in. Reserving happens in the transaction that
 * records the task, under row locks on the quotas concerned (PostgreSQL;
 * SQLite runs one transaction at a time), so two concurrent requests cannot
 * both overrun a quota.
 */
import { sql } from 'kysely';
import type { Clock } from '../../core/clock.js';
import { ZenithError } from '../../core/errors.js';
import type { Facts } from '../../hypervisors/driver.js';
import type { QuotasTable } from '../../store/schema.js';
import type { Db, Store, Tx } from '../../store/store.js';
import type { Actor } from '../audit/audit-service.js';
import type { AccessService } from '../identity/access-service.js';
import { GroupTree } from './group-tree.js';

export const quotaResources = ['vcpus', 'memoryBytes', 'diskBytes', 'vms'] as const;
export type QuotaResource = (typeof quotaResources)[number];
export type Amounts = Record<QuotaResource, number>;
/** null: no limit. */
export type Limits = Record<QuotaResource, number | null>;

export interface QuotaView {
  groupId: string;
  groupName: string;
  limits: Limits;
  /** What the present VMs of the group and its nested groups take. */
  used: Amounts;
  /** What queued and running tasks of those groups hold. */
  reserved: Amounts;
  /** limit − used − reserved (never below 0); null where there is no limit. */
  available: Limits;
  /** The groups whose VMs count here: the group and every group nested in it. */
  covers: string[];
  updatedBy: string;
  updatedAt: number;
}

/** The group a new VM belongs to, as a request resolved it. */
export interface OwningGroup {
  id: string;
  name: string;
}

const zero = (): Amounts => ({ vcpus: 0, memoryBytes: 0, diskBytes: 0, vms: 0 });

/** What one VM takes, from its facts. */
export function amountsOfVm(facts: Facts): Amounts {
  const number = (key: string) => {
    const value = facts[key];
    return typeof value === 'number' && value > 0 ? value : 0;
  };
  return {
    vcpus: number('cpu.count'),
    memoryBytes: number('memory.bytes'),
    diskBytes: number('disk.totalBytes'),
    vms: 1,
  };
}

function add(to: Amounts, amounts: Amounts): void {
  for (const resource of quotaResources) to[resource] += amounts[resource];
}

function limitsOf(row: QuotasTable): Limits {
  const limit = (value: number | null) => (value === null ? null : Number(value));
  return {
    vcpus: limit(row.vcpus),
    memoryBytes: limit(row.memory_bytes),
    diskBytes: limit(row.disk_bytes),
    vms: limit(row.vms),
  };
}

export class QuotaService {
  constructor(
    private readonly store: Store,
    private readonly clock: Clock,
    private readonly access: AccessService,
  ) {}

  // --- the group a request acts for ------------------------------------------

  /**
   * The group a VM created by `actor` belongs to: the one named (the actor must be in it, directly or
   * through nested groups), else the actor's only group; null for an actor in no group.
   */
  async owningGroup(actor: Actor, requested: string | undefined): Promise<OwningGroup | null> {
    const memberOf = this.access.graph.groupsOf(actor.id);
    if (requested !== undefined) {
      const group = await this.access.getGroup(requested);
      if (!memberOf.has(group.id))
        throw new ZenithError(
          'ZEN_FORBIDDEN',
          `${actor.name} is not a member of group ${group.name}, so cannot create VMs for it`,
          { group: group.name },
        );
      return { id: group.id, name: group.name };
    }
    const direct = [...memberOf].filter(([, path]) => path.length === 1).map(([id]) => id);
    if (direct.length === 0) return null;
    const tree = await this.#tree(this.store.db);
    if (direct.length > 1)
      throw new ZenithError(
        'ZEN_GROUP_REQUIRED',
        `${actor.name} is in several groups; name the one the VM belongs to with the group field`,
        { groups: direct.map((id) => tree.names.get(id) ?? id).sort() },
      );
    const id = direct[0]!;
    return { id, name: tree.names.get(id) ?? id };
  }

  /** The group that owns a VM now (its open ownership record), if that names a Zenith group. */
  async groupOfVm(vmId: string): Promise<OwningGroup | null> {
    const open = await this.store.db
      .selectFrom('vm_ownership')
      .select('group_name')
      .where('vm_id', '=', vmId)
      .where('to_ts', 'is', null)
      .executeTakeFirst();
    if (!open) return null;
    const group = await this.store.db
      .selectFrom('groups')
      .select(['id', 'name'])
      .where('name', '=', open.group_name)
      .executeTakeFirst();
    return group ?? null;
  }

  // --- reservations ------------------------------------------------------------

  /**
   * Inside the transaction that records task `taskId`: refuses with ZEN_QUOTA_EXCEEDED if `amounts`
   * do not fit a quota on the group's path to the root, else holds them for the task.
   */
  async reserve(tx: Tx, taskId: string, group: OwningGroup, amounts: Amounts): Promise<void> {
    const tree = await this.#tree(tx);
    const quotas = await this.#lockQuotas(tx, tree.above(group.id));
    if (quotas.length > 0) {
      const usage = await this.#usage(
        tx,
        tree,
        quotas.map((q) => q.group_id),
      );
      for (const quota of quotas) {
        const limits = limitsOf(quota);
        const { used, reserved } = usage.get(quota.group_id)!;
        for (const resource of quotaResources) {
          const limit = limits[resource];
          const requested = amounts[resource];
          if (limit === null || requested <= 0) continue;
          if (used[resource] + reserved[resource] + requested > limit) {
            const name = tree.names.get(quota.group_id) ?? quota.group_id;
            throw new ZenithError(
              'ZEN_QUOTA_EXCEEDED',
              `group ${name}'s quota of ${limit} ${resource} is exceeded: ${used[resource]} used, ${reserved[resource]} reserved, ${requested} requested`,
              {
                group: name,
                ...(name !== group.name ? { requestedFor: group.name } : {}),
                resource,
                limit,
                used: used[resource],
                reserved: reserved[resource],
                requested,
              },
            );
          }
        }
      }
    }
    await tx
      .insertInto('quota_reservations')
      .values({
        task_id: taskId,
        group_id: group.id,
        vcpus: amounts.vcpus,
        memory_bytes: amounts.memoryBytes,
        disk_bytes: amounts.diskBytes,
        vms: amounts.vms,
        created_at: this.clock.now(),
      })
      .execute();
  }

  /** The task failed or was cancelled: what it held is free again. */
  async release(taskId: string): Promise<void> {
    await this.store.db.deleteFrom('quota_reservations').where('task_id', '=', taskId).execute();
  }

  /**
   * The VM exists: it belongs to the group from its creation on, and the task's reservation ends, in one
   * transaction under the same locks as reserve() (so a concurrent request sees the VM or the
   * reservation, never neither and never both).
   */
  async settle(
    taskId: string,
    group: OwningGroup,
    vm: { id: string; createdAt: number; owner: string } | null,
  ): Promise<void> {
    await this.store.transaction(async (tx) => {
      const tree = await this.#tree(tx);
      await this.#lockQuotas(tx, tree.above(group.id));
      if (vm) {
        const open = await tx
          .selectFrom('vm_ownership')
          .select('id')
          .where('vm_id', '=', vm.id)
          .where('to_ts', 'is', null)
          .executeTakeFirst();
        if (!open)
          await tx
            .insertInto('vm_ownership')
            .values({
              vm_id: vm.id,
              owner: vm.owner,
              group_name: group.name,
              // The group is the VM's cost center until someone assigns another.
              cost_center: group.name,
              from_ts: vm.createdAt,
              to_ts: null,
              changed_by: 'system',
            })
            .execute();
      }
      await tx.deleteFrom('quota_reservations').where('task_id', '=', taskId).execute();
    });
  }

  // --- quotas --------------------------------------------------------------------

  async set(
    groupIdOrName: string,
    change: Partial<Record<QuotaResource, number | null>>,
    by: string,
  ): Promise<QuotaView> {
    const group = await this.access.getGroup(groupIdOrName);
    const given = quotaResources.filter((r) => change[r] !== undefined);
    if (given.length === 0)
      throw new ZenithError(
        'ZEN_BAD_REQUEST',
        `a quota needs at least one of ${quotaResources.join(', ')} (null: no limit)`,
      );
    for (const resource of given) {
      const value = change[resource];
      if (value !== null && (!Number.isSafeInteger(value) || value! < 0))
        throw new ZenithError(
          'ZEN_BAD_REQUEST',
          `${resource} must be a whole number of at least 0, or null for no limit`,
          { [resource]: value },
        );
    }
    const now = this.clock.now();
    await this.store.transaction(async (tx) => {
      const current = (await this.#lockQuotas(tx, new Set([group.id])))[0];
      const limits = current
        ? limitsOf(current)
        : { vcpus: null, memoryBytes: null, diskBytes: null, vms: null };
      for (const resource of given) limits[resource] = change[resource] ?? null;
      const row = {
        vcpus: limits.vcpus,
        memory_bytes: limits.memoryBytes,
        disk_bytes: limits.diskBytes,
        vms: limits.vms,
        updated_by: by,
        updated_at: now,
      };
      if (current)
        await tx.updateTable('quotas').set(row).where('group_id', '=', group.id).execute();
      else
        await tx
          .insertInto('quotas')
          .values({ group_id: group.id, ...row })
          .execute();
    });
    return this.get(group.id);
  }

  async get(groupIdOrName: string): Promise<QuotaView> {
    const group = await this.access.getGroup(groupIdOrName);
    const row = await this.store.db
      .selectFrom('quotas')
      .selectAll()
      .where('group_id', '=', group.id)
      .executeTakeFirst();
    if (!row)
      throw new ZenithError('ZEN_NOT_FOUND', `group ${group.name} has no quota`, {
        group: group.name,
      });
    return (await this.#views([row]))[0]!;
  }

  async list(): Promise<QuotaView[]> {
    const rows = await this.store.db.selectFrom('quotas').selectAll().execute();
    return (await this.#views(rows)).sort((a, b) => a.groupName.localeCompare(b.groupName));
  }

  async clear(groupIdOrName: string): Promise<QuotaView> {
    const view = await this.get(groupIdOrName);
    await this.store.db.deleteFrom('quotas').where('group_id', '=', view.groupId).execute();
    return view;
  }

  /** May this identity read the group's quota? Members may, however deep; so may quota managers. */
  isMember(identityId: string, groupId: string): boolean {
    return this.access.graph.groupsOf(identityId).has(groupId);
  }

  async #views(rows: QuotasTable[]): Promise<QuotaView[]> {
    const tree = await this.#tree(this.store.db);
    const usage = await this.#usage(
      this.store.db,
      tree,
      rows.map((r) => r.group_id),
    );
    return rows.map((row) => {
      const limits = limitsOf(row);
      const { used, reserved } = usage.get(row.group_id)!;
      const available = { ...limits };
      for (const resource of quotaResources) {
        const limit = limits[resource];
        if (limit !== null)
          available[resource] = Math.max(0, limit - used[resource] - reserved[resource]);
      }
      return {
        groupId: row.group_id,
        groupName: tree.names.get(row.group_id) ?? row.group_id,
        limits,
        used,
        reserved,
        available,
        covers: [...tree.below(row.group_id)].map((id) => tree.names.get(id) ?? id).sort(),
        updatedBy: row.updated_by,
        updatedAt: Number(row.updated_at),
      };
    });
  }

  async #tree(db: Db | Tx): Promise<GroupTree> {
    const groups = await db.selectFrom('groups').select(['id', 'name']).execute();
    const nesting = await db
      .selectFrom('group_members')
      .select(['group_id', 'member_id'])
      .where('member_kind', '=', 'group')
      .execute();
    return new GroupTree(
      new Map(groups.map((g) => [g.id, g.name])),
      nesting.map((n) => ({ parentId: n.group_id, childId: n.member_id })),
    );
  }

  /** The quota rows of these groups, locked until the transaction ends (in group id order: no deadlocks). */
  async #lockQuotas(tx: Tx, groupIds: Set<string>): Promise<QuotasTable[]> {
    if (groupIds.size === 0) return [];
    const query = tx
      .selectFrom('quotas')
      .selectAll()
      .where('group_id', 'in', [...groupIds])
      .orderBy('group_id');
    return this.store.dialect === 'postgres' ? query.forUpdate().execute() : query.execute();
  }

  /**
   * Per owning group: the sums of its present VMs' vCPUs, memory and disk, and their number, computed in
   * the database (a check reads a few rows, not every VM's facts). A fact that is absent, not a number
   * or negative counts 0, as amountsOfVm reads it.
   */
  async #ownedSums(
    db: Db | Tx,
    names: string[],
  ): Promise<
    Array<{
      group_name: string;
      vcpus: string | number | null;
      memory_bytes: string | number | null;
      disk_bytes: string | number | null;
      vms: string | number;
    }>
  > {
    if (this.store.dialect === 'postgres') {
      // Each VM's facts parsed once (a materialized CTE), not once per fact.
      const fact = (key: string) =>
        sql`case when jsonb_typeof(f -> ${key}) = 'number' and (f -> ${key})::numeric > 0 then (f -> ${key})::numeric else 0 end`;
      const result = await sql<{
        group_name: string;
        vcpus: string | null;
        memory_bytes: string | null;
        disk_bytes: string | null;
        vms: string;
      }>`with owned as materialized (
          select o.group_name, v.facts::jsonb as f
          from vm_ownership o join objects v on v.id = o.vm_id
          where o.to_ts is null and v.kind = 'vm' and v.status = 'present'
            and o.group_name in (${sql.join(names)})
        )
        select group_name, sum(${fact('cpu.count')}) as vcpus,
          sum(${fact('memory.bytes')}) as memory_bytes,
          sum(${fact('disk.totalBytes')}) as disk_bytes, count(*) as vms
        from owned group by group_name`.execute(db);
      return result.rows;
    }
    const fact = (key: string) => {
      const path = `$."${key}"`;
      return sql<number>`case when json_type(v.facts, ${path}) in ('integer', 'real') and json_extract(v.facts, ${path}) > 0 then json_extract(v.facts, ${path}) else 0 end`;
    };
    return db
      .selectFrom('vm_ownership as o')
      .innerJoin('objects as v', 'v.id', 'o.vm_id')
      .select([
        'o.group_name',
        sql<number>`sum(${fact('cpu.count')})`.as('vcpus'),
        sql<number>`sum(${fact('memory.bytes')})`.as('memory_bytes'),
        sql<number>`sum(${fact('disk.totalBytes')})`.as('disk_bytes'),
        sql<number>`count(*)`.as('vms'),
      ])
      .where('o.to_ts', 'is', null)
      .where('v.kind', '=', 'vm')
      .where('v.status', '=', 'present')
      .where('o.group_name', 'in', names)
      .groupBy('o.group_name')
      .execute();
  }

  /** Used and reserved amounts under each of these groups (each counts itself and its nested groups). */
  async #usage(
    db: Db | Tx,
    tree: GroupTree,
    groupIds: string[],
  ): Promise<Map<string, { used: Amounts; reserved: Amounts }>> {
    const below = new Map(groupIds.map((id) => [id, tree.below(id)]));
    const concerned = new Set([...below.values()].flatMap((set) => [...set]));
    const names = [...concerned].map((id) => tree.names.get(id)).filter((n) => n !== undefined);
    const result = new Map(groupIds.map((id) => [id, { used: zero(), reserved: zero() }]));
    if (concerned.size === 0) return result;
    // Reservations first: a task settles by writing ownership and ending its reservation together.
    const reservations = await db
      .selectFrom('quota_reservations as r')
      .innerJoin('tasks as t', 't.id', 'r.task_id')
      .select(['r.group_id', 'r.vcpus', 'r.memory_bytes', 'r.disk_bytes', 'r.vms'])
      .where('r.group_id', 'in', [...concerned])
      .where('t.state', 'in', ['queued', 'running'])
      .execute();
    const vms = names.length === 0 ? [] : await this.#ownedSums(db, names);
    const idOfName = new Map([...tree.names].map(([id, name]) => [name, id]));
    for (const [quotaGroup, groups] of below) {
      const entry = result.get(quotaGroup)!;
      for (const r of reservations)
        if (groups.has(r.group_id))
          add(entry.reserved, {
            vcpus: Number(r.vcpus),
            memoryBytes: Number(r.memory_bytes),
            diskBytes: Number(r.disk_bytes),
            vms: Number(r.vms),
          });
      for (const owned of vms) {
        const id = idOfName.get(owned.group_name);
        if (id !== undefined && groups.has(id))
          add(entry.used, {
            vcpus: Number(owned.vcpus ?? 0),
            memoryBytes: Number(owned.memory_bytes ?? 0),
            diskBytes: Number(owned.disk_bytes ?? 0),
            vms: Number(owned.vms),
          });
      }
    }
    return result;
  }
}
