/**
 * Accounting: rate card versions, VM ownership history, and reports that
 * meter the location history for any period (see metering.ts).
 */
import type { Clock } from '../../core/clock.js';
import { ZenithError } from '../../core/errors.js';
import { newId } from '../../core/ids.js';
import type { Store } from '../../store/store.js';
import type { InventoryService } from '../inventory/inventory-service.js';
import type { ManagedObject, PowerState } from '../inventory/model.js';
import {
  meter,
  type Dimension,
  type MeterHost,
  type MeterVm,
  type Ownership,
  type OwnershipSpan,
  type ReportRow,
} from './metering.js';
import {
  compileRateCard,
  type CompiledRateCard,
  type RateCardBody,
  type RateCardVersion,
} from './rate-card.js';
import { assertTimeZone } from './local-time.js';
import type { Granularity } from './timeline.js';

export interface ReportRequest {
  from: number;
  to: number;
  granularity: Granularity;
  groupBy: Dimension;
  timeZone?: string;
}

export interface Report {
  from: number;
  to: number;
  granularity: Granularity;
  groupBy: Dimension;
  timeZone: string;
  currency: string | null;
  minorDigits: number;
  /** The rate card versions that priced this report. */
  rateCards: Array<{ id: string; version: number; effectiveFrom: number }>;
  rows: ReportRow[];
  totals: ReportRow['cost'];
}

export interface OwnershipRecord extends Ownership {
  vmId: string;
  from: number;
  to: number | null;
  changedBy: string;
}

const unassigned = 'unassigned';
const maxPeriodMs = 400 * 86_400_000;

export class AccountingService {
  constructor(
    private readonly store: Store,
    private readonly inventory: InventoryService,
    private readonly clock: Clock,
  ) {}

  async rateCards(): Promise<RateCardVersion[]> {
    const rows = await this.store.db
      .selectFrom('rate_cards')
      .selectAll()
      .orderBy('version')
      .execute();
    return rows.map((row) => ({
      id: row.id,
      version: Number(row.version),
      effectiveFrom: Number(row.effective_from),
      body: JSON.parse(row.body) as RateCardBody,
      createdBy: row.created_by,
      createdAt: Number(row.created_at),
    }));
  }

  async rateCard(idOrVersion: string): Promise<RateCardVersion> {
    const card = (await this.rateCards()).find(
      (c) => c.id === idOrVersion || String(c.version) === idOrVersion,
    );
    if (!card)
      throw new ZenithError('ZEN_NOT_FOUND', `no rate card version ${idOrVersion}`, {
        id: idOrVersion,
      });
    return card;
  }

  /**
   * Adds a version. Versions never change; a new one takes effect at its date.
   * Only the first may start in the past: later ones start now or later and
   * after the latest, so periods already reported keep their prices.
   */
  async addRateCard(
    input: { effectiveFrom: number; body: RateCardBody },
    createdBy: string,
  ): Promise<RateCardVersion> {
    const now = this.clock.now();
    const existing = await this.rateCards();
    const latest = existing[existing.length - 1];
    const card: RateCardVersion = {
      id: newId('rateCard', now),
      version: (latest?.version ?? 0) + 1,
      effectiveFrom: input.effectiveFrom,
      body: input.body,
      createdBy,
      createdAt: now,
    };
    compileRateCard(card);
    if (latest) {
      if (input.body.currency !== existing[0]!.body.currency)
        throw new ZenithError(
          'ZEN_CONFLICT',
          `every rate card version must use ${existing[0]!.body.currency}`,
          {
            currency: input.body.currency,
          },
        );
      if (input.effectiveFrom < now || input.effectiveFrom <= latest.effectiveFrom)
        throw new ZenithError(
          'ZEN_CONFLICT',
          'a new rate card version must take effect now or later, and after the latest version: past periods keep their prices',
          { effectiveFrom: input.effectiveFrom, latestEffectiveFrom: latest.effectiveFrom, now },
        );
    }
    await this.store.db
      .insertInto('rate_cards')
      .values({
        id: card.id,
        version: card.version,
        effective_from: card.effectiveFrom,
        body: JSON.stringify(card.body),
        created_by: createdBy,
        created_at: now,
      })
      .execute();
    return card;
  }

  /** Changes the owner, group or cost center of a VM from now on; the previous ones stay in the history. */
  async setOwnership(
    vmId: string,
    change: Partial<Ownership>,
    changedBy: string,
  ): Promise<OwnershipRecord> {
    const vm = this.inventory.get(vmId);
    if (vm.kind !== 'vm')
      throw new ZenithError('ZEN_NOT_FOUND', `${vmId} is not a VM`, { id: vmId });
    const now = this.clock.now();
    // Read before the transaction: SQLite has one connection, which the transaction holds.
    const creation = await this.#creationOwnership(vm.id);
    return this.store.transaction(async (tx) => {
      const open = await tx
        .selectFrom('vm_ownership')
        .selectAll()
        .where('vm_id', '=', vm.id)
        .where('to_ts', 'is', null)
        .executeTakeFirst();
      const current = open
        ? { owner: open.owner, group: open.group_name, costCenter: open.cost_center }
        : creation;
      const next: Ownership = {
        owner: change.owner ?? current.owner,
        group: change.group ?? current.group,
        costCenter: change.costCenter ?? current.costCenter,
      };
      if (open) {
        if (Number(open.from_ts) === now)
          await tx.deleteFrom('vm_ownership').where('id', '=', open.id).execute();
        else
          await tx
            .updateTable('vm_ownership')
            .set({ to_ts: now })
            .where('id', '=', open.id)
            .execute();
      } else if (vm.createdAt < now) {
        // The time before the first explicit record belongs to the default owner: keep it as history too.
        await tx
          .insertInto('vm_ownership')
          .values({
            vm_id: vm.id,
            owner: current.owner,
            group_name: current.group,
            cost_center: current.costCenter,
            from_ts: vm.createdAt,
            to_ts: now,
            changed_by: 'system',
          })
          .execute();
      }
      await tx
        .insertInto('vm_ownership')
        .values({
          vm_id: vm.id,
          owner: next.owner,
          group_name: next.group,
          cost_center: next.costCenter,
          from_ts: now,
          to_ts: null,
          changed_by: changedBy,
        })
        .execute();
      return { vmId: vm.id, ...next, from: now, to: null, changedBy };
    });
  }

  async ownershipHistory(vmId: string): Promise<OwnershipRecord[]> {
    const vm = this.inventory.get(vmId);
    const rows = await this.store.db
      .selectFrom('vm_ownership')
      .selectAll()
      .where('vm_id', '=', vm.id)
      .orderBy('from_ts', 'desc')
      .orderBy('id', 'desc')
      .execute();
    if (rows.length === 0)
      return [
        {
          vmId: vm.id,
          ...(await this.#creationOwnership(vm.id)),
          from: vm.createdAt,
          to: null,
          changedBy: 'system',
        },
      ];
    return rows.map((row) => ({
      vmId: row.vm_id,
      owner: row.owner,
      group: row.group_name,
      costCenter: row.cost_center,
      from: Number(row.from_ts),
      to: row.to_ts === null ? null : Number(row.to_ts),
      changedBy: row.changed_by,
    }));
  }

  async report(request: ReportRequest): Promise<Report> {
    const timeZone = request.timeZone ?? 'UTC';
    assertTimeZone(timeZone);
    if (!(request.from < request.to))
      throw new ZenithError('ZEN_BAD_REQUEST', 'the period must end after it starts', {
        from: request.from,
        to: request.to,
      });
    if (request.to - request.from > maxPeriodMs)
      throw new ZenithError('ZEN_BAD_REQUEST', 'a report covers at most 400 days', {
        from: request.from,
        to: request.to,
      });
    const { from, to } = request;
    const versions = await this.rateCards();
    const cards: CompiledRateCard[] = versions.map(compileRateCard);
    const intervalRows = await this.store.db
      .selectFrom('location_history')
      .select(['vm_id', 'host_id', 'power_state', 'from_ts', 'to_ts'])
      .where('from_ts', '<', to)
      .where((eb) => eb.or([eb('to_ts', 'is', null), eb('to_ts', '>', from)]))
      .orderBy('vm_id')
      .orderBy('from_ts')
      .orderBy('id')
      .execute();
    const ownershipRows = await this.store.db
      .selectFrom('vm_ownership')
      .selectAll()
      .where('from_ts', '<', to)
      .where((eb) => eb.or([eb('to_ts', 'is', null), eb('to_ts', '>', from)]))
      .orderBy('vm_id')
      .orderBy('from_ts')
      .orderBy('id')
      .execute();
    // Measured usage: the 5-minute rollups of the metrics history that cover some time.
    const measuredRows = await this.store.db
      .selectFrom('vm_metric_rollups')
      .select([
        'vm_id',
        'bucket_start',
        'span_ms',
        'cpu_ms',
        'disk_read_bytes',
        'disk_write_bytes',
        'net_span_ms',
        'net_rx_bytes',
        'net_tx_bytes',
      ])
      .where('bucket_start', '>=', from)
      .where('bucket_start', '<', to)
      .where('span_ms', '>', 0)
      .orderBy('vm_id')
      .orderBy('bucket_start')
      .execute();
    const creators = await this.#creators();
    const vms = new Map<string, MeterVm>();
    const hosts = new Map<string, MeterHost>();
    for (const row of intervalRows) {
      if (!vms.has(row.vm_id)) {
        const vm = this.inventory.index.get(row.vm_id);
        if (vm) vms.set(vm.id, meterVm(vm));
      }
      if (row.host_id && !hosts.has(row.host_id)) {
        const host = this.inventory.index.get(row.host_id);
        if (host) hosts.set(host.id, this.#meterHost(host));
      }
    }
    const ownership: OwnershipSpan[] = ownershipRows.map((row) => ({
      vmId: row.vm_id,
      owner: row.owner,
      group: row.group_name,
      costCenter: row.cost_center,
      from: Number(row.from_ts),
      to: row.to_ts === null ? null : Number(row.to_ts),
    }));
    const defaults = new Map<string, Ownership>();
    const result = meter({
      from,
      to,
      now: this.clock.now(),
      granularity: request.granularity,
      groupBy: request.groupBy,
      timeZone,
      cards,
      vms,
      hosts,
      intervals: intervalRows.map((row) => ({
        vmId: row.vm_id,
        hostId: row.host_id,
        powerState: row.power_state as PowerState,
        from: Number(row.from_ts),
        to: row.to_ts === null ? null : Number(row.to_ts),
      })),
      ownership,
      measured: measuredRows.map((row) => ({
        vmId: row.vm_id,
        at: Number(row.bucket_start),
        cpuMs: Number(row.cpu_ms),
        diskReadBytes: Number(row.disk_read_bytes),
        diskWriteBytes: Number(row.disk_write_bytes),
        netSpanMs: Number(row.net_span_ms),
        netRxBytes: Number(row.net_rx_bytes),
        netTxBytes: Number(row.net_tx_bytes),
      })),
      defaultOwnership: (vmId) => {
        let owner = defaults.get(vmId);
        if (!owner) {
          const creator = creators.get(vmId);
          owner = { owner: creator ?? unassigned, group: unassigned, costCenter: unassigned };
          defaults.set(vmId, owner);
        }
        return owner;
      },
    });
    const first = versions[0];
    return {
      from,
      to,
      granularity: request.granularity,
      groupBy: request.groupBy,
      timeZone,
      currency: first?.body.currency ?? null,
      minorDigits: cards[0]?.minorDigits ?? 2,
      rateCards: result.cardsUsed.map((i) => {
        const card = versions[i]!;
        return { id: card.id, version: card.version, effectiveFrom: card.effectiveFrom };
      }),
      rows: result.rows,
      totals: result.totals,
    };
  }

  /** Showback: per group, the period's usage and cost (sums of the same atoms as the report). */
  async showback(request: { from: number; to: number; timeZone?: string }): Promise<{
    from: number;
    to: number;
    currency: string | null;
    minorDigits: number;
    rateCards: Report['rateCards'];
    groups: Array<Omit<ReportRow, 'bucketStart' | 'bucketEnd' | 'label'>>;
    totals: ReportRow['cost'];
  }> {
    const report = await this.report({ ...request, granularity: 'monthly', groupBy: 'group' });
    const groups = new Map<string, Omit<ReportRow, 'bucketStart' | 'bucketEnd' | 'label'>>();
    for (const row of report.rows) {
      const group = groups.get(row.key);
      if (!group) {
        const { bucketStart: _s, bucketEnd: _e, label: _l, ...rest } = row;
        groups.set(row.key, { ...rest, cost: { ...row.cost }, measured: { ...row.measured } });
        continue;
      }
      group.vms = Math.max(group.vms, row.vms);
      for (const key of [
        'runningMs',
        'suspendedMs',
        'stoppedMs',
        'vcpuMs',
        'memoryMiBMs',
        'diskMiBMs',
      ] as const)
        group[key] += row[key];
      for (const key of Object.keys(group.cost) as Array<keyof ReportRow['cost']>)
        group.cost[key] += row.cost[key];
      for (const key of Object.keys(group.measured) as Array<keyof ReportRow['measured']>) {
        const value = row.measured[key];
        if (value !== null) group.measured[key] = (group.measured[key] ?? 0) + value;
      }
    }
    return {
      from: report.from,
      to: report.to,
      currency: report.currency,
      minorDigits: report.minorDigits,
      rateCards: report.rateCards,
      groups: [...groups.values()].sort(
        (a, b) => b.cost.total - a.cost.total || a.key.localeCompare(b.key),
      ),
      totals: report.totals,
    };
  }

  #meterHost(host: ManagedObject): MeterHost {
    const cluster = host.parentId ? this.inventory.index.get(host.parentId) : undefined;
    const datacenter = cluster?.parentId ? this.inventory.index.get(cluster.parentId) : undefined;
    const clusterName = cluster?.kind === 'cluster' ? cluster.name : '(none)';
    return {
      id: host.id,
      name: host.name,
      cluster: clusterName,
      hypervisor: String(host.facts['hypervisor.type'] ?? '(unknown)'),
      facts: {
        ...host.facts,
        ...host.userFacts,
        host: host.name,
        'host.id': host.id,
        cluster: clusterName,
        'cluster.id': cluster?.id ?? null,
        datacenter: datacenter?.name ?? null,
      },
    };
  }

  /** The identity whose request created each VM (vm.create and vm.clone tasks that succeeded). */
  async #creators(): Promise<Map<string, string>> {
    const tasks = await this.store.db
      .selectFrom('tasks')
      .select(['owner_id', 'result'])
      .where('kind', 'in', ['vm.create', 'vm.clone'])
      .where('state', '=', 'succeeded')
      .execute();
    if (tasks.length === 0) return new Map();
    const names = new Map(
      (await this.store.db.selectFrom('identities').select(['id', 'name']).execute()).map((r) => [
        r.id,
        r.name,
      ]),
    );
    const creators = new Map<string, string>();
    for (const task of tasks) {
      const vmId = task.result ? (JSON.parse(task.result) as { vmId?: unknown }).vmId : undefined;
      if (typeof vmId === 'string') creators.set(vmId, names.get(task.owner_id) ?? task.owner_id);
    }
    return creators;
  }

  async #creationOwnership(vmId: string): Promise<Ownership> {
    const creator = (await this.#creators()).get(vmId);
    return { owner: creator ?? unassigned, group: unassigned, costCenter: unassigned };
  }
}

function meterVm(vm: ManagedObject): MeterVm {
  const number = (key: string) => {
    const value = vm.facts[key];
    return typeof value === 'number' && value > 0 ? value : 0;
  };
  return {
    id: vm.id,
    name: vm.name,
    cpus: Math.round(number('cpu.count')),
    // Allocations are metered in whole MiB (rounded up), so every product stays an exact integer.
    memoryMiB: Math.ceil(number('memory.bytes') / 2 ** 20),
    diskMiB: Math.ceil(number('disk.totalBytes') / 2 ** 20),
    facts: { ...vm.facts, ...vm.userFacts },
    tags: vm.tags,
  };
}
