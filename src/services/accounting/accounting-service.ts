/**
 * Accounting: rate card versions, VM ownership history, and reports that
 * meter the location history for any period (see metering.ts).
 */
import type { Clock } from '../../core/clock.js';
import { ZenithError } from '../../core/errors.js';
import { newId } from '../../core/ids.js';
import type { Selectable } from 'kysely';
import type { VmOwnershipTable } from '../../store/schema.js';
import type { Store } from '../../store/store.js';
import type { InventoryService } from '../inventory/inventory-service.js';
import type { PowerState } from '../inventory/model.js';
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
  loadAllocations,
  loadCreators,
  loadMeasured,
  meterHost,
  meterVm,
} from './report-inputs.js';
import {
  compileRateCard,
  type CompiledRateCard,
  type RateCardBody,
  type RateCardVersion,
} from './rate-card.js';
import { assertTimeZone } from './local-time.js';
import { usageFields } from './report-accumulator.js';
import type { EnergyReadings } from './energy.js';
import type { HostEnergy, HostMachineSamples } from './meter-input.js';
import type { Granularity } from './timeline.js';

export interface ReportRequest {
  from: number;
  to: number;
  granularity: Granularity;
  groupBy: Dimension;
  timeZone?: string;
  /** Only this VM (id or name). */
  vm?: string;
  owner?: string;
  group?: string;
  costCenter?: string;
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
  /**
   * Only when a rate card prices energy: per hypervisor host on a machine, the energy its machine
   * drew over the period (its BMC's sampled power draw) and its cost.
   */
  energy?: HostEnergy[];
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
    /** The machines' sampled power draw (their sensor history), for energy prices. */
    private readonly energyReadings?: EnergyReadings,
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

  /**
   * Withdraws a version that has not taken effect yet (a price change announced by mistake).
   * One that has taken effect priced the past and stays: ZEN_RATE_CARD_IN_EFFECT.
   */
  async withdrawRateCard(idOrVersion: string): Promise<RateCardVersion> {
    const card = await this.rateCard(idOrVersion);
    const now = this.clock.now();
    if (card.effectiveFrom <= now)
      throw new ZenithError(
        'ZEN_RATE_CARD_IN_EFFECT',
        `rate card version ${card.version} took effect on ${new Date(card.effectiveFrom).toISOString()}: add a new version instead`,
        { id: card.id, version: card.version, effectiveFrom: card.effectiveFrom, now },
      );
    await this.store.db
      .deleteFrom('rate_cards')
      .where('id', '=', card.id)
      .where('effective_from', '>', now)
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
    return rows.map((row) => ({ ...ownershipSpanOf(row), changedBy: row.changed_by }));
  }

  async report(request: ReportRequest): Promise<Report> {
    return (await this.#compute(request)).report;
  }

  async #compute(
    request: ReportRequest,
  ): Promise<{ report: Report; vmsByKey: Map<string, number> }> {
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
    const allocations = await loadAllocations(this.store.db, to);
    const measured = await loadMeasured(this.store.db, from, to);
    const creators = await loadCreators(this.store.db);
    const vms = new Map<string, MeterVm>();
    const hosts = new Map<string, MeterHost>();
    for (const row of intervalRows) {
      if (!vms.has(row.vm_id)) {
        const vm = this.inventory.index.get(row.vm_id);
        if (vm) vms.set(vm.id, meterVm(vm));
      }
      if (row.host_id && !hosts.has(row.host_id)) {
        const host = this.inventory.index.get(row.host_id);
        if (host) hosts.set(host.id, meterHost(host, this.inventory.index));
      }
    }
    const energy = cards.some((card) => card.pricesEnergy)
      ? await this.#energyOf(hosts, from, to)
      : undefined;
    const ownership = ownershipRows.map(ownershipSpanOf);
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
      allocations,
      measured,
      ...(energy ? { energy } : {}),
      filter: {
        ...(request.vm !== undefined
          ? { vmIds: new Set([this.inventory.resolve('vm', request.vm).id]) }
          : {}),
        ...(request.owner !== undefined ? { owner: request.owner } : {}),
        ...(request.group !== undefined ? { group: request.group } : {}),
        ...(request.costCenter !== undefined ? { costCenter: request.costCenter } : {}),
      },
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
    const report: Report = {
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
      ...(result.energy ? { energy: result.energy } : {}),
    };
    return { report, vmsByKey: result.vmsByKey };
  }

  /**
   * Every hypervisor host linked to a machine (those the report's VMs ran on, and the others: a
   * report shows each one's energy), and its machine's power samples around the period.
   */
  async #energyOf(
    hosts: Map<string, MeterHost>,
    from: number,
    to: number,
  ): Promise<{ maxGapMs: number; hosts: Map<string, HostMachineSamples> }> {
    const machineOf = new Map<string, string>();
    for (const host of this.inventory.index.ofKind('host')) {
      const machineId = host.computed['machine.id'];
      if (typeof machineId !== 'string') continue;
      machineOf.set(host.id, machineId);
      if (!hosts.has(host.id)) hosts.set(host.id, meterHost(host, this.inventory.index));
    }
    const readings = this.energyReadings;
    const samples = readings
      ? await readings.watts([...machineOf.values()], from, to)
      : new Map<string, never[]>();
    const energyHosts = new Map<string, HostMachineSamples>();
    for (const [hostId, machineId] of machineOf)
      energyHosts.set(hostId, { machineId, samples: samples.get(machineId) ?? [] });
    return { maxGapMs: readings?.maxGapMs ?? 0, hosts: energyHosts };
  }

  /** Showback: per group, the period's usage and cost (sums of the same atoms as the report). */
  async showback(request: { from: number; to: number; timeZone?: string }): Promise<{
    from: number;
    to: number;
    currency: string | null;
    minorDigits: number;
    rateCards: Report['rateCards'];
    groups: Array<Omit<ReportRow, 'bucketStart' | 'bucketEnd' | 'label' | 'machineEnergy'>>;
    totals: ReportRow['cost'];
  }> {
    const { report, vmsByKey } = await this.#compute({
      ...request,
      granularity: 'monthly',
      groupBy: 'group',
    });
    const groups = new Map<
      string,
      Omit<ReportRow, 'bucketStart' | 'bucketEnd' | 'label' | 'machineEnergy'>
    >();
    for (const row of report.rows) {
      const group = groups.get(row.key);
      if (!group) {
        const { bucketStart: _s, bucketEnd: _e, label: _l, machineEnergy: _m, ...rest } = row;
        groups.set(row.key, {
          ...rest,
          // Distinct VMs over the whole period, not per month.
          vms: vmsByKey.get(row.key) ?? row.vms,
          cost: { ...row.cost },
          measured: { ...row.measured },
        });
        continue;
      }
      for (const key of usageFields) group[key] += row[key];
      for (const key of Object.keys(group.cost) as Array<keyof ReportRow['cost']>)
        group.cost[key] = (group.cost[key] ?? 0) + (row.cost[key] ?? 0);
      if (row.energyKWh !== undefined) group.energyKWh = (group.energyKWh ?? 0) + row.energyKWh;
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

  async #creationOwnership(vmId: string): Promise<Ownership> {
    const creator = (await loadCreators(this.store.db)).get(vmId);
    return { owner: creator ?? unassigned, group: unassigned, costCenter: unassigned };
  }
}

/** A VM's ownership over a span of time, from its row (PostgreSQL may answer bigints as strings). */
function ownershipSpanOf(row: Selectable<VmOwnershipTable>): OwnershipSpan {
  return {
    vmId: row.vm_id,
    owner: row.owner,
    group: row.group_name,
    costCenter: row.cost_center,
    from: Number(row.from_ts),
    to: row.to_ts === null ? null : Number(row.to_ts),
  };
}
