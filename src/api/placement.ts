/**
 * Placement: where a VM would go and why, rebalancing and given moves as plans (scheduled so that
 * capacity and anti-affinity hold at every moment), applying them, and evacuating hosts.
 */
import { Type, type Static, type TProperties } from 'typebox';
import { FactValueInput, IdOrName, IdParams, Items, StringEnum, Tags } from './common.js';
import { operation } from './operation.js';
import { TaskView } from './tasks.js';

/** An object with at least these fields (more may come, e.g. from stored plans). */
const AtLeast = <P extends TProperties>(properties: P) =>
  Type.Object(properties, { additionalProperties: true });

export const Candidate = Type.Object({
  hostId: Type.String(),
  hostName: Type.String(),
  score: Type.Number(),
  loadAfter: Type.Number(),
  /** What the score is made of: strategy, cost, soft rules, preferences. */
  breakdown: Type.Optional(
    Type.Array(
      Type.Object({
        kind: StringEnum(['strategy', 'cost', 'rule', 'preference']),
        name: Type.String(),
        policy: Type.Optional(Type.String()),
        value: Type.Number(),
        weight: Type.Number(),
        points: Type.Number(),
      }),
    ),
  ),
});
export type Candidate = Static<typeof Candidate>;

export const Rejection = Type.Object({
  hostId: Type.String(),
  hostName: Type.String(),
  /** The first check the host failed: its kind, a sentence, and the figures of that kind. */
  reason: AtLeast({ kind: Type.String(), message: Type.String() }),
});
export type Rejection = Static<typeof Rejection>;

export const PlacementDecision = Type.Object({
  vm: Type.Object({
    id: Type.Union([Type.String(), Type.Null()]),
    name: Type.String(),
    cpu: Type.Number(),
    memoryBytes: Type.Number(),
    type: Type.Union([Type.String(), Type.Null()]),
  }),
  chosen: Type.Union([Candidate, Type.Null()]),
  /** The best candidates, best first. */
  candidates: Type.Array(Candidate),
  /** Every rejected host with the first check it failed. */
  rejected: Type.Array(Rejection),
  rejectedByReason: Type.Record(Type.String(), Type.Number()),
  hostsConsidered: Type.Number(),
  feasibleHosts: Type.Number(),
});
export type PlacementDecision = Static<typeof PlacementDecision>;

/** A VM not created yet, as the placement preview takes it. */
export const DraftVm = Type.Object(
  {
    name: Type.Optional(Type.String({ minLength: 1, maxLength: 63 })),
    cpus: Type.Integer({ minimum: 1, maximum: 512 }),
    memoryBytes: Type.Integer({ minimum: 16 * 1024 * 1024 }),
    diskBytes: Type.Optional(Type.Integer({ minimum: 0 })),
    type: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
    tags: Type.Optional(Tags),
    facts: Type.Optional(
      Type.Record(Type.String({ maxLength: 128 }), FactValueInput, { maxProperties: 64 }),
    ),
  },
  { additionalProperties: false },
);
export type DraftVm = Static<typeof DraftVm>;

const Imbalance = AtLeast({
  hosts: Type.Number(),
  meanLoad: Type.Number(),
  /** Standard deviation of the hosts' loads: the imbalance. */
  stddevLoad: Type.Number(),
  maxLoad: Type.Number(),
  minLoad: Type.Number(),
  /** Hosts without any VM. */
  emptyHosts: Type.Number(),
});

export const PlannedMove = AtLeast({
  vmId: Type.String(),
  vmName: Type.String(),
  fromHostId: Type.String(),
  fromHostName: Type.String(),
  toHostId: Type.String(),
  toHostName: Type.String(),
  memoryBytes: Type.Number(),
  /** The order in which the moves start. */
  order: Type.Number(),
  /** Predicted, in ms from the start of the plan. */
  startMs: Type.Number(),
  endMs: Type.Number(),
  bytes: Type.Number(),
  rateBytesPerSecond: Type.Number(),
  /** False when the guest dirties memory faster than the link carries: it will be throttled. */
  converges: Type.Boolean(),
  /** Rebalancing: how much the busier of the two hosts' load drops. */
  benefit: Type.Optional(Type.Number()),
});

const MoveOutcome = AtLeast({
  vmId: Type.String(),
  vmName: Type.String(),
  fromHostName: Type.String(),
  toHostName: Type.String(),
  taskId: Type.Union([Type.String(), Type.Null()]),
  state: StringEnum(['succeeded', 'failed', 'cancelled', 'skipped', 'already-there']),
  predictedMs: Type.Number(),
  /** Relative to the start of the execution. */
  startedAtMs: Type.Union([Type.Number(), Type.Null()]),
  endedAtMs: Type.Union([Type.Number(), Type.Null()]),
  error: Type.Optional(Type.Object({ code: Type.String(), message: Type.String() })),
});

export const planKinds = ['rebalance', 'evacuation', 'moves'] as const;
export const planStates = ['proposed', 'applying', 'applied', 'failed', 'discarded'] as const;

export const PlanView = Type.Object(
  {
    id: Type.String(),
    kind: StringEnum(planKinds),
    state: StringEnum(planStates),
    /** An evacuation: the host it empties. */
    hostId: Type.Union([Type.String(), Type.Null()]),
    /** Once applied: the task that runs it. */
    taskId: Type.Union([Type.String(), Type.Null()]),
    createdBy: Type.String(),
    createdAt: Type.Number(),
    updatedAt: Type.Number(),
    options: Type.Record(Type.String(), Type.Unknown()),
    /** In schedule order, each with its predicted start, end, bytes and bandwidth. */
    moves: Type.Array(PlannedMove),
    predictedCompletionMs: Type.Number(),
    peakConcurrency: Type.Number(),
    reordered: Type.Boolean(),
    /**
     * Hosts in standby (powered off by power management) that the plan powers on, waiting for
     * their hypervisors, before its moves run: the only room for some of them is there.
     */
    wakes: Type.Optional(
      Type.Array(
        AtLeast({ hostId: Type.String(), hostName: Type.String(), reason: Type.String() }),
      ),
    ),
    /** Rebalancing: the fleet's imbalance before and after the moves. */
    metrics: Type.Optional(
      AtLeast({
        before: Imbalance,
        after: Imbalance,
        hostsEmptied: Type.Array(Type.String()),
        bytesMoved: Type.Number(),
      }),
    ),
    /** What happened when it was applied: each move with its task, state and actual times. */
    outcome: Type.Optional(
      AtLeast({
        predictedCompletionMs: Type.Number(),
        actualCompletionMs: Type.Number(),
        succeeded: Type.Number(),
        failed: Type.Number(),
        moves: Type.Array(MoveOutcome),
        error: Type.Optional(Type.Object({ code: Type.String(), message: Type.String() })),
      }),
    ),
  },
  { additionalProperties: true },
);
export type PlanView = Static<typeof PlanView>;

export const previewPlacement = operation({
  method: 'POST',
  path: '/placement/preview',
  auth: 'inventory.read',
  tag: 'placement',
  summary:
    'Where a VM would go, and why: the chosen host, the best candidates with their scores, and for every rejected host the check or constraint that rejected it. vm is a new VM (size, type, tags, facts) or an existing one by id or name (where it could move).',
  body: Type.Object(
    {
      vm: Type.Union([IdOrName, DraftVm]),
      topCandidates: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000 })),
    },
    { additionalProperties: false },
  ),
  success: { 200: PlacementDecision },
  errors: [404, 409, 422],
});

export const rebalance = operation({
  method: 'POST',
  path: '/placement/rebalance',
  auth: 'host.maintenance',
  tag: 'placement',
  summary:
    'Compute a rebalancing plan: balance (lower the imbalance) or consolidate (empty hosts), at most maxMoves, each move bringing minBenefit; recommend stores it for approval, automatic applies it at once',
  body: Type.Object(
    {
      mode: Type.Optional(Type.Union([Type.Literal('balance'), Type.Literal('consolidate')])),
      maxMoves: Type.Optional(Type.Integer({ minimum: 1, maximum: 10_000 })),
      minBenefit: Type.Optional(Type.Number({ minimum: 0, maximum: 1 })),
      scope: Type.Optional(
        Type.Object(
          {
            kind: Type.Union([Type.Literal('cluster'), Type.Literal('datacenter')]),
            id: IdOrName,
          },
          { additionalProperties: false },
        ),
      ),
      consolidateBelow: Type.Optional(Type.Number({ minimum: 0, maximum: 1 })),
      targetLoad: Type.Optional(Type.Number({ minimum: 0.05, maximum: 1 })),
      /** Hosts in standby count as on: moves may go there, and applying the plan powers them on. */
      wakeStandby: Type.Optional(Type.Boolean()),
      apply: Type.Optional(Type.Union([Type.Literal('recommend'), Type.Literal('automatic')])),
    },
    { additionalProperties: false },
  ),
  success: { 201: Type.Object({ plan: PlanView, task: Type.Union([TaskView, Type.Null()]) }) },
  errors: [404, 409],
});

export const planMoves = operation({
  method: 'POST',
  path: '/placement/plans',
  auth: 'host.maintenance',
  tag: 'placement',
  summary:
    'Schedule given moves (VM to host, by id or name): ordered so that capacity and anti-affinity hold at every moment, or 409 ZEN_PLAN_INFEASIBLE naming the moves that wait on each other',
  body: Type.Object(
    {
      moves: Type.Array(
        Type.Object({ vm: IdOrName, to: IdOrName }, { additionalProperties: false }),
        { minItems: 1, maxItems: 10_000 },
      ),
    },
    { additionalProperties: false },
  ),
  success: { 201: PlanView },
  errors: [404, 409],
});

export const listPlans = operation({
  method: 'GET',
  path: '/placement/plans',
  auth: 'inventory.read',
  tag: 'placement',
  summary: 'Plans, newest first',
  query: Type.Object(
    {
      kind: Type.Optional(Type.Union(planKinds.map((kind) => Type.Literal(kind)))),
      state: Type.Optional(Type.Union(planStates.map((state) => Type.Literal(state)))),
      limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 500, default: 50 })),
    },
    { additionalProperties: false },
  ),
  success: { 200: Items(PlanView) },
});

export const getPlan = operation({
  method: 'GET',
  path: '/placement/plans/:id',
  auth: 'inventory.read',
  tag: 'placement',
  summary: 'One plan',
  params: IdParams,
  success: { 200: PlanView },
});

export const applyPlan = operation({
  method: 'POST',
  path: '/placement/plans/:id/apply',
  auth: 'host.maintenance',
  tag: 'placement',
  summary:
    'Apply a proposed plan: 202 with the task that runs its moves as migrate tasks; 409 ZEN_PLAN_STALE when its VMs have moved since',
  params: IdParams,
  success: { 202: TaskView },
  errors: [409],
});

export const discardPlan = operation({
  method: 'DELETE',
  path: '/placement/plans/:id',
  auth: 'host.maintenance',
  tag: 'placement',
  summary: 'Discard a proposed plan',
  params: IdParams,
  success: { 200: PlanView },
  errors: [409],
});

export const evacuateHost = operation({
  method: 'POST',
  path: '/hosts/:id/evacuate',
  auth: 'host.maintenance',
  tag: 'placement',
  summary:
    'Maintenance mode: every VM leaves the host (by id or name) by policy, in a planned order; 202 with the task (params: planId, predictedCompletionMs); the host is in maintenance once empty. 409 ZEN_NO_PLACEMENT when a VM has nowhere to go',
  params: IdParams,
  success: { 202: TaskView },
  errors: [409],
});

export const exitMaintenance = operation({
  method: 'POST',
  path: '/hosts/:id/exit-maintenance',
  auth: 'host.maintenance',
  tag: 'placement',
  summary: 'Take a host out of maintenance: placement may use it again',
  params: IdParams,
  success: { 200: Type.Object({ hostId: Type.String(), mode: Type.String() }) },
  errors: [409],
});

export const runPowerManagement = operation({
  method: 'POST',
  path: '/placement/power-management',
  auth: 'host.maintenance',
  tag: 'placement',
  summary:
    'Power management now, where a policy enables it: consolidate, then put each host left empty in standby and power it off through its BMC (confirmed), keeping minHostsOn on; 202 with the task (its result lists every host and why)',
  body: Type.Object(
    {
      scope: Type.Optional(
        Type.Object(
          {
            kind: Type.Union([Type.Literal('cluster'), Type.Literal('datacenter')]),
            id: IdOrName,
          },
          { additionalProperties: false },
        ),
      ),
    },
    { additionalProperties: false },
  ),
  success: { 202: TaskView },
  errors: [404, 409],
});
