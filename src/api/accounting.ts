/** Usage and cost: rate card versions, VM ownership over time, reports and showback. */
import { Type, type Static } from 'typebox';
import { FactValue, IdParams, Items, NullableInstant, StringEnum } from './common.js';
import { operation } from './operation.js';

const name = Type.String({ minLength: 1, maxLength: 128 });
const decimal = Type.String({ pattern: '^[0-9]{1,12}(\\.[0-9]{1,12})?$', maxLength: 32 });
const match = Type.Optional(
  Type.Record(Type.String({ maxLength: 128 }), Type.Union([FactValue, Type.Array(FactValue)]), {
    maxProperties: 32,
  }),
);

/** What a rate card says (prices as decimal text in major units); effectiveFrom is beside it. */
export const RateCardBody = Type.Object(
  {
    currency: Type.String({ pattern: '^[A-Z]{3}$' }),
    timeZone: Type.String({ minLength: 1, maxLength: 64, description: 'IANA zone of the windows' }),
    note: Type.Optional(Type.String({ maxLength: 500 })),
    windows: Type.Optional(
      Type.Array(
        Type.Object(
          {
            name,
            days: Type.Array(
              Type.String({ enum: ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'] }),
              { minItems: 1, maxItems: 7 },
            ),
            hours: Type.Tuple([
              Type.Integer({ minimum: 0, maximum: 24 }),
              Type.Integer({ minimum: 0, maximum: 24 }),
            ]),
          },
          { additionalProperties: false },
        ),
        { maxItems: 32 },
      ),
    ),
    rates: Type.Array(
      Type.Object(
        {
          match,
          window: Type.Optional(name),
          vcpuHour: Type.Optional(decimal),
          memoryGiBHour: Type.Optional(decimal),
          diskGiBHour: Type.Optional(decimal),
          /** Per kWh the host's machine draws (its BMC's power readings), shared by its VMs. */
          kWh: Type.Optional(decimal),
        },
        { additionalProperties: false },
      ),
      { maxItems: 500 },
    ),
    fixed: Type.Optional(
      Type.Array(Type.Object({ name, match, monthly: decimal }, { additionalProperties: false }), {
        maxItems: 200,
      }),
    ),
    discounts: Type.Optional(
      Type.Array(
        Type.Object(
          { group: name, percent: Type.String({ pattern: '^[0-9]{1,3}(\\.[0-9]{1,2})?$' }) },
          { additionalProperties: false },
        ),
        { maxItems: 500 },
      ),
    ),
  },
  { additionalProperties: false },
);

const RateCardInput = Type.Object(
  {
    effectiveFrom: Type.Integer({ minimum: 0, description: 'Milliseconds since the epoch' }),
    ...RateCardBody.properties,
  },
  { additionalProperties: false },
);

export const RateCardVersion = Type.Object({
  id: Type.String(),
  version: Type.Number(),
  effectiveFrom: Type.Number(),
  body: RateCardBody,
  createdBy: Type.String(),
  createdAt: Type.Number(),
});
export type RateCardVersion = Static<typeof RateCardVersion>;

export const OwnershipRecord = Type.Object({
  vmId: Type.String(),
  owner: Type.String(),
  group: Type.String(),
  costCenter: Type.String(),
  from: Type.Number(),
  to: NullableInstant,
  changedBy: Type.String(),
});
export type OwnershipRecord = Static<typeof OwnershipRecord>;

/** A cost split by what it is for, in minor currency units (integers). */
export const CostBreakdown = Type.Object({
  vcpu: Type.Number(),
  memory: Type.Number(),
  disk: Type.Number(),
  fixed: Type.Number(),
  discount: Type.Number(),
  /** The share of the energy of the hosts' machines; only when a rate card prices energy (kWh). */
  energy: Type.Optional(Type.Number()),
  total: Type.Number(),
});
export type CostBreakdown = Static<typeof CostBreakdown>;

const measuredValue = Type.Union([Type.Number(), Type.Null()]);
/** Usage the VMs' drivers measured (metrics history); null where no sample covers the row. */
export const MeasuredUsage = Type.Object({
  cpuSeconds: measuredValue,
  diskReadBytes: measuredValue,
  diskWriteBytes: measuredValue,
  netRxBytes: measuredValue,
  netTxBytes: measuredValue,
});
export type MeasuredUsage = Static<typeof MeasuredUsage>;

/** What a row sums: VMs, time in each power state, resource·time (ms), cost and measured usage. */
const rowFigures = {
  key: Type.String(),
  vms: Type.Number(),
  runningMs: Type.Number(),
  suspendedMs: Type.Number(),
  stoppedMs: Type.Number(),
  vcpuMs: Type.Number(),
  memoryMiBMs: Type.Number(),
  diskMiBMs: Type.Number(),
  /** Minor currency units. */
  cost: CostBreakdown,
  measured: MeasuredUsage,
  /** The VMs' share of their machines' energy (kWh); only when a rate card prices energy. */
  energyKWh: Type.Optional(Type.Number()),
};

export const ReportRow = Type.Object({
  bucketStart: Type.Number(),
  bucketEnd: Type.Number(),
  label: Type.String(),
  ...rowFigures,
  /** Grouped by host, energy priced, a host on a machine: what the machine drew in the bucket and its cost (minor units). */
  machineEnergy: Type.Optional(Type.Object({ kWh: Type.Number(), cost: Type.Number() })),
});
export type ReportRow = Static<typeof ReportRow>;

export const dimensions = [
  'vm',
  'owner',
  'group',
  'costCenter',
  'cluster',
  'host',
  'hypervisor',
] as const;
export type Dimension = (typeof dimensions)[number];
export const granularities = ['hourly', 'daily', 'monthly'] as const;
export type Granularity = (typeof granularities)[number];

const PricedBy = Type.Array(
  Type.Object({ id: Type.String(), version: Type.Number(), effectiveFrom: Type.Number() }),
  { description: 'The rate card versions that priced it' },
);

/** What a host's machine drew over a report's period (sampled from its BMC) and its cost. */
export const HostEnergy = Type.Object({
  hostId: Type.String(),
  hostName: Type.String(),
  machineId: Type.String(),
  kWh: Type.Number(),
  /** The part of the period the machine's samples cover (gaps are not guessed). */
  coveredMs: Type.Number(),
  /** Minor currency units. */
  cost: Type.Number(),
  /** The cost of what it drew while no VM ran on it (in no VM's share). */
  unsharedCost: Type.Number(),
});

export const Report = Type.Object({
  from: Type.Number(),
  to: Type.Number(),
  granularity: StringEnum(granularities),
  groupBy: StringEnum(dimensions),
  timeZone: Type.String(),
  currency: Type.Union([Type.String(), Type.Null()]),
  minorDigits: Type.Number(),
  rateCards: PricedBy,
  rows: Type.Array(ReportRow),
  totals: CostBreakdown,
  /** Only when a rate card prices energy: per hypervisor host on a machine, its energy over the period. */
  energy: Type.Optional(Type.Array(HostEnergy)),
});
export type Report = Static<typeof Report>;

export const Showback = Type.Object({
  from: Type.Number(),
  to: Type.Number(),
  currency: Type.Union([Type.String(), Type.Null()]),
  minorDigits: Type.Number(),
  rateCards: PricedBy,
  groups: Type.Array(Type.Object(rowFigures)),
  totals: CostBreakdown,
});
export type Showback = Static<typeof Showback>;

export const listRateCards = operation({
  method: 'GET',
  path: '/accounting/rate-cards',
  auth: 'accounting.read',
  tag: 'accounting',
  summary: 'Every rate card version, oldest first',
  success: { 200: Items(RateCardVersion) },
});

export const getRateCard = operation({
  method: 'GET',
  path: '/accounting/rate-cards/:id',
  auth: 'accounting.read',
  tag: 'accounting',
  summary: 'One rate card version by id or number',
  params: IdParams,
  success: { 200: RateCardVersion },
});

export const addRateCard = operation({
  method: 'POST',
  path: '/accounting/rate-cards',
  auth: 'accounting.manage',
  tag: 'accounting',
  summary:
    'Add a rate card version; it takes effect at effectiveFrom (now or later, after the latest)',
  body: RateCardInput,
  success: { 201: RateCardVersion },
  errors: [409],
});

export const withdrawRateCard = operation({
  method: 'DELETE',
  path: '/accounting/rate-cards/:id',
  auth: 'accounting.manage',
  tag: 'accounting',
  summary:
    'Withdraw a rate card version (by id or number) that has not taken effect yet; ZEN_RATE_CARD_IN_EFFECT once it has',
  params: IdParams,
  success: { 200: RateCardVersion },
  errors: [409],
});

export const vmOwnershipHistory = operation({
  method: 'GET',
  path: '/vms/:id/ownership',
  auth: 'accounting.read',
  tag: 'accounting',
  summary: 'Ownership history of a VM, newest first',
  params: IdParams,
  success: { 200: Items(OwnershipRecord) },
});

export const setVmOwnership = operation({
  method: 'PUT',
  path: '/vms/:id/ownership',
  auth: 'accounting.manage',
  tag: 'accounting',
  summary: 'Change owner, group or cost center from now on (the previous ones stay in the history)',
  params: IdParams,
  body: Type.Object(
    { owner: Type.Optional(name), group: Type.Optional(name), costCenter: Type.Optional(name) },
    { additionalProperties: false, minProperties: 1 },
  ),
  success: { 200: OwnershipRecord },
});

export const accountingReport = operation({
  method: 'GET',
  path: '/accounting/report',
  auth: 'accounting.read',
  tag: 'accounting',
  summary:
    'Usage and cost per VM, owner, group, cost center, cluster, host or hypervisor (JSON or CSV)',
  query: Type.Object(
    {
      from: Type.Integer({ minimum: 0 }),
      to: Type.Integer({ minimum: 0 }),
      granularity: Type.Optional(Type.String({ enum: [...granularities], default: 'daily' })),
      groupBy: Type.Optional(Type.String({ enum: [...dimensions], default: 'vm' })),
      timeZone: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
      format: Type.Optional(Type.String({ enum: ['json', 'csv'], default: 'json' })),
      vm: Type.Optional(
        Type.String({ minLength: 1, maxLength: 256, description: 'VM id or name' }),
      ),
      owner: Type.Optional(name),
      group: Type.Optional(name),
      costCenter: Type.Optional(name),
    },
    { additionalProperties: false },
  ),
  success: { 200: Report },
  errors: [404, 422],
  csv: true,
});

export const showback = operation({
  method: 'GET',
  path: '/accounting/showback',
  auth: 'accounting.read',
  tag: 'accounting',
  summary: 'Showback: cost and usage per group over a period',
  query: Type.Object(
    {
      from: Type.Integer({ minimum: 0 }),
      to: Type.Integer({ minimum: 0 }),
      timeZone: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
    },
    { additionalProperties: false },
  ),
  success: { 200: Showback },
  errors: [422],
});
