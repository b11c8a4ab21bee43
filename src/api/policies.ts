/** Placement policies: saved documents compiled when saved, tried as drafts, and those in force for a VM. */
import { Type, type Static, type TProperties } from 'typebox';
import { IdOrName, IdParams, Items, StringEnum } from './common.js';
import { operation } from './operation.js';
import { PlacementDecision } from './placement.js';

/** An object with at least these fields (more may come, e.g. from stored documents). */
const AtLeast = <P extends TProperties>(properties: P) =>
  Type.Object(properties, { additionalProperties: true });

const Name = Type.String({ minLength: 1, maxLength: 64 });
const Expression = Type.String({ minLength: 1, maxLength: 16_384 });
const Weight = Type.Number({ minimum: -1000, maximum: 1000 });

const MigrationSettings = Type.Object(
  {
    maxPerHost: Type.Optional(Type.Integer({ minimum: 1, maximum: 64 })),
    maxTotal: Type.Optional(Type.Integer({ minimum: 1, maximum: 10_000 })),
    hostBandwidthBytesPerSecond: Type.Optional(Type.Number({ minimum: 1e6, maximum: 1e12 })),
    interClusterBandwidthBytesPerSecond: Type.Optional(
      Type.Number({ minimum: 1e6, maximum: 1e12 }),
    ),
    interDatacenterBandwidthBytesPerSecond: Type.Optional(
      Type.Number({ minimum: 1e6, maximum: 1e12 }),
    ),
    maxDowntimeMs: Type.Optional(Type.Integer({ minimum: 1, maximum: 60_000 })),
    defaultDirtyBytesPerSecond: Type.Optional(Type.Number({ minimum: 0, maximum: 1e11 })),
  },
  { additionalProperties: false },
);

const Rule = Type.Object(
  {
    name: Name,
    kind: Type.Union([
      Type.Literal('separate'),
      Type.Literal('together'),
      Type.Literal('onHosts'),
      Type.Literal('offHosts'),
    ]),
    vms: Type.Optional(Expression),
    groupBy: Type.Optional(Expression),
    hosts: Type.Optional(Expression),
    hard: Type.Boolean(),
    weight: Type.Optional(Type.Number({ minimum: 0, maximum: 1000 })),
  },
  { additionalProperties: false },
);

/** High availability: per cluster, overridden per resource group and per VM, field by field. */
const HaSettings = Type.Object(
  {
    enabled: Type.Optional(Type.Boolean()),
    /** Restart order: highest first; disabled: never restarted. Default medium. */
    restartPriority: Type.Optional(
      StringEnum(['highest', 'high', 'medium', 'low', 'lowest', 'disabled']),
    ),
    /** Order group: a lower group runs (or its timeout passes) before a higher one starts. */
    restartOrder: Type.Optional(Type.Integer({ minimum: 1, maximum: 100 })),
    restartOrderTimeoutSeconds: Type.Optional(Type.Integer({ minimum: 0, maximum: 3600 })),
    /** What an agent cut off from the control plane (its storage still there) does with its VMs. */
    isolationResponse: Type.Optional(StringEnum(['leave-running', 'shutdown', 'power-off'])),
    vmMonitoring: Type.Optional(
      Type.Object(
        {
          enabled: Type.Boolean(),
          maxRestarts: Type.Optional(Type.Integer({ minimum: 0, maximum: 100 })),
          windowMinutes: Type.Optional(Type.Integer({ minimum: 1, maximum: 10_080 })),
        },
        { additionalProperties: false },
      ),
    ),
    /** Admission control (global, datacenter, cluster policies only). */
    hostFailuresToTolerate: Type.Optional(Type.Integer({ minimum: 0, maximum: 100 })),
    failureDetectionSeconds: Type.Optional(Type.Number({ minimum: 1, maximum: 600 })),
    selfFenceSeconds: Type.Optional(Type.Number({ minimum: 2, maximum: 3600 })),
  },
  { additionalProperties: false },
);

/** Replication by policy: the VMs it is in force for are replicated to a host of the site. */
const ReplicationPolicySettings = Type.Object(
  {
    enabled: Type.Optional(Type.Boolean()),
    targetSite: Type.Optional(IdOrName),
    rpoSeconds: Type.Optional(Type.Integer({ minimum: 60, maximum: 86_400 })),
    intervalSeconds: Type.Optional(Type.Integer({ minimum: 5, maximum: 86_400 })),
    keepPoints: Type.Optional(Type.Integer({ minimum: 1, maximum: 24 })),
    /** interval (default) or sync (every write mirrored to the replica: RPO 0). */
    mode: Type.Optional(StringEnum(['interval', 'sync'] as const)),
  },
  { additionalProperties: false },
);

const Settings = Type.Object(
  {
    cpuOvercommit: Type.Optional(Type.Number({ minimum: 0.1, maximum: 64 })),
    memoryOvercommit: Type.Optional(Type.Number({ minimum: 0.1, maximum: 4 })),
    strategy: Type.Optional(Type.Union([Type.Literal('spread'), Type.Literal('pack')])),
    strategyWeight: Type.Optional(Type.Number({ minimum: 0, maximum: 1000 })),
    costWeight: Type.Optional(Type.Number({ minimum: 0, maximum: 1000 })),
    migration: Type.Optional(MigrationSettings),
    /**
     * Power management (off unless enabled): empty hosts are powered off through their BMCs, and
     * powered on again when a placement needs their room.
     */
    ha: Type.Optional(HaSettings),
    /**
     * Replication by policy (replication.manage on everything to set): every VM the policy is in
     * force for that is not replicated yet is replicated to a host of `targetSite`.
     */
    replication: Type.Optional(ReplicationPolicySettings),
    powerManagement: Type.Optional(
      Type.Object(
        {
          enabled: Type.Boolean(),
          /** Hosts kept on in the scope, however empty (default 1). */
          minHostsOn: Type.Optional(Type.Integer({ minimum: 0, maximum: 10_000 })),
          /** How a host is powered off: shutdown (ACPI, default) or off. */
          action: Type.Optional(Type.Union([Type.Literal('shutdown'), Type.Literal('off')])),
          /**
           * A host on above this load (the busier of CPU and memory, 0–1; default 0.8) makes a run
           * power a host in standby on and balance onto it; consolidation fills hosts up to it.
           */
          highLoad: Type.Optional(Type.Number({ minimum: 0.1, maximum: 1 })),
          /** Run it every so many minutes (global policies only); absent: on request only. */
          everyMinutes: Type.Optional(Type.Integer({ minimum: 1, maximum: 10_080 })),
        },
        { additionalProperties: false },
      ),
    ),
  },
  { additionalProperties: false },
);

export const PolicyBody = Type.Object(
  {
    name: Name,
    description: Type.Optional(Type.String({ maxLength: 1000 })),
    enabled: Type.Optional(Type.Boolean()),
    scope: Type.Object(
      {
        kind: Type.Union([
          Type.Literal('global'),
          Type.Literal('datacenter'),
          Type.Literal('cluster'),
          Type.Literal('resourceGroup'),
          Type.Literal('vm'),
        ]),
        id: Type.Optional(IdOrName),
      },
      { additionalProperties: false },
    ),
    when: Type.Optional(Type.String({ maxLength: 16_384 })),
    constraints: Type.Optional(
      Type.Array(
        Type.Object({ name: Name, expression: Expression }, { additionalProperties: false }),
        { maxItems: 64 },
      ),
    ),
    preferences: Type.Optional(
      Type.Array(
        Type.Object(
          { name: Name, expression: Expression, weight: Weight },
          { additionalProperties: false },
        ),
        { maxItems: 64 },
      ),
    ),
    rules: Type.Optional(Type.Array(Rule, { maxItems: 32 })),
    settings: Type.Optional(Settings),
  },
  { additionalProperties: false },
);
export type PolicyBody = Static<typeof PolicyBody>;

export const PolicyView = Type.Object({
  id: Type.String(),
  name: Type.String(),
  description: Type.Union([Type.String(), Type.Null()]),
  enabled: Type.Boolean(),
  scope: Type.Object({
    kind: Type.String(),
    id: Type.Union([Type.String(), Type.Null()]),
    name: Type.Union([Type.String(), Type.Null()]),
  }),
  when: Type.Union([Type.String(), Type.Null()]),
  constraints: Type.Array(Type.Object({ name: Type.String(), expression: Type.String() })),
  preferences: Type.Array(
    Type.Object({ name: Type.String(), expression: Type.String(), weight: Type.Number() }),
  ),
  rules: Type.Array(Rule),
  settings: Settings,
  createdBy: Type.String(),
  createdAt: Type.Number(),
  updatedAt: Type.Number(),
});
export type PolicyView = Static<typeof PolicyView>;

/** A VM (and where it runs) an answer names. */
const ObjectRef = Type.Object({
  vmId: Type.String(),
  vmName: Type.String(),
  hostId: Type.Union([Type.String(), Type.Null()]),
  hostName: Type.Union([Type.String(), Type.Null()]),
});
/** An expression that could not be evaluated on a VM: its code, and where in the expression. */
const Failure = Type.Object({
  ...ObjectRef.properties,
  code: Type.String(),
  message: Type.String(),
  line: Type.Union([Type.Number(), Type.Null()]),
  column: Type.Union([Type.Number(), Type.Null()]),
});

export const PolicyTestResult = Type.Object({
  policy: Type.Object({
    name: Type.String(),
    scope: Type.Object({ kind: Type.String(), id: Type.Union([Type.String(), Type.Null()]) }),
  }),
  appliesTo: Type.Object({ vms: Type.Number(), sample: Type.Array(Type.String()) }),
  constraints: Type.Array(
    Type.Object({
      name: Type.String(),
      expression: Type.String(),
      holds: Type.Number(),
      violated: Type.Number(),
      failed: Type.Number(),
      violations: Type.Array(ObjectRef),
      failures: Type.Array(Failure),
    }),
  ),
  rules: Type.Array(
    Type.Object({
      name: Type.String(),
      kind: Type.String(),
      hard: Type.Boolean(),
      members: Type.Number(),
      groups: Type.Number(),
      violations: Type.Array(Type.Object({ ...ObjectRef.properties, detail: Type.String() })),
    }),
  ),
  preferences: Type.Array(
    Type.Object({
      name: Type.String(),
      weight: Type.Number(),
      min: Type.Union([Type.Number(), Type.Null()]),
      max: Type.Union([Type.Number(), Type.Null()]),
      mean: Type.Union([Type.Number(), Type.Null()]),
      failed: Type.Number(),
    }),
  ),
  placement: Type.Union([PlacementDecision, Type.Null()]),
});
export type PolicyTestResult = Static<typeof PolicyTestResult>;

export const ExpressionTestResult = Type.Object({
  expression: Type.String(),
  type: Type.String(),
  reads: Type.Array(Type.String()),
  /** One object pair: its value. */
  value: Type.Optional(Type.Unknown()),
  /** Across the fleet: how many were evaluated, counts by value, a sample of those that gave true. */
  evaluated: Type.Optional(Type.Number()),
  over: Type.Optional(Type.Union([Type.Literal('vms'), Type.Literal('hosts')])),
  counts: Type.Optional(Type.Array(Type.Object({ value: Type.String(), count: Type.Number() }))),
  matches: Type.Optional(Type.Array(Type.String())),
  failures: Type.Optional(Type.Array(Failure)),
});
export type ExpressionTestResult = Static<typeof ExpressionTestResult>;

const PolicySummary = Type.Object({
  id: Type.String(),
  name: Type.String(),
  scope: AtLeast({ kind: Type.String(), id: Type.Union([Type.String(), Type.Null()]) }),
});

export const EffectivePolicies = Type.Object({
  vm: Type.Object({ id: Type.String(), name: Type.String() }),
  host: Type.Union([Type.Object({ id: Type.String(), name: Type.String() }), Type.Null()]),
  policies: Type.Array(PolicySummary),
  /** The settings the policies in force add up to. */
  settings: AtLeast({
    ...Settings.properties,
    migration: Type.Optional(AtLeast(MigrationSettings.properties)),
    rebalance: Type.Optional(
      AtLeast({
        everyMinutes: Type.Number(),
        mode: Type.Optional(Type.Union([Type.Literal('balance'), Type.Literal('consolidate')])),
        automatic: Type.Optional(Type.Boolean()),
        maxMoves: Type.Optional(Type.Number()),
        minBenefit: Type.Optional(Type.Number()),
      }),
    ),
  }),
  capacity: Type.Union([
    Type.Object({
      /** The host's policies its overcommit and migration settings come from (whatever their `when`). */
      from: Type.Array(PolicySummary),
      cpuOvercommit: Type.Number(),
      memoryOvercommit: Type.Number(),
      cpuCapacity: Type.Number(),
      memoryCapacityBytes: Type.Number(),
      /** The migration settings in force on the host (all of them, defaults filled in). */
      migration: AtLeast({
        maxPerHost: Type.Number(),
        maxTotal: Type.Number(),
        hostBandwidthBytesPerSecond: Type.Number(),
        interClusterBandwidthBytesPerSecond: Type.Number(),
        interDatacenterBandwidthBytesPerSecond: Type.Number(),
        maxDowntimeMs: Type.Number(),
        defaultDirtyBytesPerSecond: Type.Number(),
      }),
    }),
    Type.Null(),
  ]),
});
export type EffectivePolicies = Static<typeof EffectivePolicies>;

export const listPolicies = operation({
  method: 'GET',
  path: '/policies',
  auth: 'policy.read',
  tag: 'policies',
  summary: 'Every policy, general scopes first',
  success: { 200: Items(PolicyView) },
});

export const getPolicy = operation({
  method: 'GET',
  path: '/policies/:id',
  auth: 'policy.read',
  tag: 'policies',
  summary: 'One policy by id or name',
  params: IdParams,
  success: { 200: PolicyView },
});

export const createPolicy = operation({
  method: 'POST',
  path: '/policies',
  auth: 'policy.manage',
  tag: 'policies',
  summary:
    'Create a policy; it is compiled first, and refused with the field, line and column of any mistake',
  body: PolicyBody,
  success: { 201: PolicyView },
  errors: [404, 409],
});

export const replacePolicy = operation({
  method: 'PUT',
  path: '/policies/:id',
  auth: 'policy.manage',
  tag: 'policies',
  summary: 'Replace a policy (by id or name) with a new version',
  params: IdParams,
  body: PolicyBody,
  success: { 200: PolicyView },
  errors: [409],
});

export const deletePolicy = operation({
  method: 'DELETE',
  path: '/policies/:id',
  auth: 'policy.manage',
  tag: 'policies',
  summary: 'Delete a policy (by id or name)',
  params: IdParams,
  success: { 200: PolicyView },
});

export const testPolicy = operation({
  method: 'POST',
  path: '/policies/test',
  auth: 'policy.read',
  tag: 'policies',
  summary:
    'Try a policy (or one expression) against the live inventory without saving it: the VMs it applies to, which break it where they run now, and — with vm — where placement would put that VM',
  body: Type.Object(
    {
      policy: Type.Optional(PolicyBody),
      expression: Type.Optional(Expression),
      vm: Type.Optional(IdOrName),
      host: Type.Optional(IdOrName),
      limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, default: 20 })),
    },
    { additionalProperties: false },
  ),
  success: { 200: Type.Union([PolicyTestResult, ExpressionTestResult]) },
  errors: [404, 409, 422],
});

export const effectivePolicies = operation({
  method: 'GET',
  path: '/policies/effective',
  auth: 'policy.read',
  tag: 'policies',
  summary:
    'The policies in force for a VM (on its host, or on host) and the settings they add up to',
  query: Type.Object(
    { vm: IdOrName, host: Type.Optional(IdOrName) },
    { additionalProperties: false },
  ),
  success: { 200: EffectivePolicies },
  errors: [404, 409],
});
