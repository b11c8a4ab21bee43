/**
 * Sites: named sets of hosts — a datacenter, a building, a region — between which VMs are
 * replicated and recovery plans run. A host belongs to one site at most. Sites are managed on
 * everything (replication.manage there): a site decides where a failover may put VMs, so no one
 * narrower may move hosts between them.
 */
import type { SiteView } from '../../api/replication.js';
import type { Clock } from '../../core/clock.js';
import { ZenithError } from '../../core/errors.js';
import { newId } from '../../core/ids.js';
import type { SitesTable } from '../../store/schema.js';
import type { Store } from '../../store/store.js';
import type { InventoryService } from '../inventory/inventory-service.js';

export interface SiteInput {
  name: string;
  description?: string | null;
  hosts: string[];
}

type SiteRow = SitesTable;

export class SiteService {
  constructor(private readonly deps: { store: Store; inventory: InventoryService; clock: Clock }) {}

  async list(): Promise<SiteView[]> {
    const rows = await this.deps.store.db.selectFrom('sites').selectAll().orderBy('name').execute();
    const members = await this.deps.store.db.selectFrom('site_hosts').selectAll().execute();
    return rows.map((row) =>
      this.#view(
        row,
        members.filter((m) => m.site_id === row.id).map((m) => m.host_id),
      ),
    );
  }

  async get(idOrName: string): Promise<SiteView> {
    const site = (await this.list()).find((s) => s.id === idOrName || s.name === idOrName);
    if (!site) throw new ZenithError('ZEN_NOT_FOUND', `no site '${idOrName}'`, { id: idOrName });
    return site;
  }

  /** The site a host belongs to (null: none). */
  async siteOf(hostId: string): Promise<{ id: string; name: string } | null> {
    const row = await this.deps.store.db
      .selectFrom('site_hosts')
      .innerJoin('sites', 'sites.id', 'site_hosts.site_id')
      .select(['sites.id', 'sites.name'])
      .where('site_hosts.host_id', '=', hostId)
      .executeTakeFirst();
    return row ?? null;
  }

  async create(input: SiteInput, by: string): Promise<SiteView> {
    const hosts = this.#hosts(input.hosts);
    const now = this.deps.clock.now();
    const id = newId('site', now);
    await this.deps.store.transaction(async (tx) => {
      if (
        await tx.selectFrom('sites').select('id').where('name', '=', input.name).executeTakeFirst()
      )
        throw new ZenithError('ZEN_CONFLICT', `a site named '${input.name}' exists`, {
          name: input.name,
        });
      await tx
        .insertInto('sites')
        .values({
          id,
          name: input.name,
          description: input.description ?? null,
          created_by: by,
          created_at: now,
          updated_at: now,
        })
        .execute();
      await this.#setHosts(tx, id, hosts);
    });
    return this.get(id);
  }

  async update(
    idOrName: string,
    input: { description?: string | null; hosts?: string[] },
  ): Promise<SiteView> {
    const site = await this.get(idOrName);
    const hosts = input.hosts ? this.#hosts(input.hosts) : null;
    await this.deps.store.transaction(async (tx) => {
      await tx
        .updateTable('sites')
        .set({
          ...(input.description !== undefined ? { description: input.description } : {}),
          updated_at: this.deps.clock.now(),
        })
        .where('id', '=', site.id)
        .execute();
      if (hosts) {
        await tx.deleteFrom('site_hosts').where('site_id', '=', site.id).execute();
        await this.#setHosts(tx, site.id, hosts);
      }
    });
    return this.get(site.id);
  }

  async remove(idOrName: string): Promise<void> {
    const site = await this.get(idOrName);
    await this.deps.store.transaction(async (tx) => {
      const plans = await tx
        .selectFrom('recovery_plans')
        .select('name')
        .where((eb) =>
          eb.or([eb('source_site_id', '=', site.id), eb('target_site_id', '=', site.id)]),
        )
        .execute();
      if (plans.length > 0)
        throw new ZenithError(
          'ZEN_CONFLICT',
          `recovery plans name the site ${site.name}: ${plans.map((p) => p.name).join(', ')}`,
          { plans: plans.map((p) => p.name) },
        );
      await tx.deleteFrom('site_hosts').where('site_id', '=', site.id).execute();
      await tx.deleteFrom('sites').where('id', '=', site.id).execute();
    });
  }

  /** The hosts named, as ids (ZEN_NOT_FOUND for one that is not a host). */
  #hosts(names: string[]): string[] {
    return [...new Set(names.map((name) => this.deps.inventory.resolve('host', name).id))];
  }

  async #setHosts(
    tx: Parameters<Parameters<Store['transaction']>[0]>[0],
    siteId: string,
    hosts: string[],
  ): Promise<void> {
    for (const hostId of hosts) {
      const other = await tx
        .selectFrom('site_hosts')
        .innerJoin('sites', 'sites.id', 'site_hosts.site_id')
        .select(['sites.name'])
        .where('site_hosts.host_id', '=', hostId)
        .executeTakeFirst();
      if (other)
        throw new ZenithError(
          'ZEN_CONFLICT',
          `${this.deps.inventory.index.get(hostId)?.name ?? hostId} belongs to the site ${other.name} already`,
          { hostId, site: other.name },
        );
      await tx.insertInto('site_hosts').values({ host_id: hostId, site_id: siteId }).execute();
    }
  }

  #view(row: SiteRow, hostIds: string[]): SiteView {
    return {
      id: row.id,
      name: row.name,
      description: row.description,
      hosts: hostIds.map((id) => ({ id, name: this.deps.inventory.index.get(id)?.name ?? id })),
      createdBy: row.created_by,
      createdAt: Number(row.created_at),
      updatedAt: Number(row.updated_at),
    };
  }
}
