/**
 * Replication and disaster recovery: sites (named sets of hosts), VMs replicated to a host of
 * another site at an interval that meets their RPO (each cycle sends only what changed and keeps a
 * few points in time), and recovery plans (ordered groups of replicated VMs) run as a test
 * failover in an isolated network, a planned migration, or a failover after a disaster.
 */
import { Type, type Static } from 'typebox';
import {
  IdOrName,
  IdParams,
  Instant,
  Items,
  NoContent,
  NullableInstant,
  NullableString,
  StringEnum,
} from './common.js';
import { operation } from './operation.js';
import { TaskView } from './tasks.js';

const Named = Type.Object({ id: Type.String(), name: Type.String() });
const Description = Type.Optional(Type.Union([Type.String({ maxLength: 1024 }), Type.Null()]));
const SiteName = Type.String({
  minLength: 1,
  maxLength: 63,
  pattern: '^[A-Za-z0-9][A-Za-z0-9._-]*$',
});

export const SiteView = Type.Object({
  id: Type.String(),
  name: Type.String(),
  description: NullableString,
  hosts: Type.Array(Named),
  createdBy: Type.String(),
  createdAt: Instant,
  updatedAt: Instant,
});
export type SiteView = Static<typeof SiteView>;

const SiteHosts = Type.Array(IdOrName, { maxItems: 1000, description: 'hosts, by id or name' });

export const listSites = operation({
  method: 'GET',
  path: '/sites',
  auth: 'replication.read',
  tag: 'replication',
  summary: 'Sites: the named sets of hosts replication and recovery plans go between',
  success: { 200: Items(SiteView) },
});

export const createSite = operation({
  method: 'POST',
  path: '/sites',
  auth: 'replication.manage',
  tag: 'replication',
  summary: 'Make a site of hosts (a host belongs to one site at most)',
  body: Type.Object(
    { name: SiteName, description: Description, hosts: SiteHosts },
    { additionalProperties: false },
  ),
  success: { 201: SiteView },
  errors: [404, 409],
});

export const getSite = operation({
  method: 'GET',
  path: '/sites/:id',
  auth: 'replication.read',
  tag: 'replication',
  summary: 'One site',
  params: IdParams,
  success: { 200: SiteView },
  errors: [404],
});

export const updateSite = operation({
  method: 'PATCH',
  path: '/sites/:id',
  auth: 'replication.manage',
  tag: 'replication',
  summary: "Change a site's description or hosts",
  params: IdParams,
  body: Type.Object(
    { description: Description, hosts: Type.Optional(SiteHosts) },
    { additionalProperties: false },
  ),
  success: { 200: SiteView },
  errors: [404, 409],
});

export const deleteSite = operation({
  method: 'DELETE',
  path: '/sites/:id',
  auth: 'replication.manage',
  tag: 'replication',
  summary: 'Forget a site (refused while a recovery plan names it)',
  params: IdParams,
  success: { 204: NoContent },
  errors: [404, 409],
});

export const ReplicaPointView = Type.Object({
  id: Type.String(),
  seq: Type.Integer(),
  /** writing (a cycle under way, or cut off), ready, merging, merged (folded into a later point). */
  state: Type.String(),
  /** When its data was taken at the source. */
  takenAt: Instant,
  finishedAt: NullableInstant,
  readBytes: Type.Integer(),
  taskId: Type.String(),
});
export type ReplicaPointView = Static<typeof ReplicaPointView>;

export const ReplicationState = StringEnum(['active', 'paused', 'recovered'] as const);

export const ReplicationView = Type.Object({
  id: Type.String(),
  vm: Named,
  sourceSite: Type.Union([Named, Type.Null()]),
  targetHost: Named,
  targetSite: Type.Union([Named, Type.Null()]),
  /** The replica's images on the target host. */
  directory: Type.String(),
  rpoSeconds: Type.Integer(),
  intervalSeconds: Type.Integer(),
  keepPoints: Type.Integer(),
  state: ReplicationState,
  /** interval: cycles of what changed; sync: a write-blocking mirror into a running replica. */
  mode: StringEnum(['interval', 'sync'] as const),
  /**
   * A sync replication's mirror (null for interval ones): not set up yet (state null), engaging,
   * mirroring (every write reaches the replica: RPO 0), fallback (lost, or its setup failed:
   * interval cycles keep the replica until it is set up again, with why).
   */
  sync: Type.Union([
    Type.Object({
      state: Type.Union([StringEnum(['engaging', 'mirroring', 'fallback'] as const), Type.Null()]),
      since: NullableInstant,
      error: Type.Union([
        Type.Object({ code: Type.String(), message: Type.String() }),
        Type.Null(),
      ]),
    }),
    Type.Null(),
  ]),
  /**
   * Seconds since the data of the latest ready point was taken (null: no point yet); 0 while a
   * sync replication's mirror holds.
   */
  currentRpoSeconds: Type.Union([Type.Number(), Type.Null()]),
  rpoExceeded: Type.Boolean(),
  nextCycleAt: NullableInstant,
  lastTaskId: NullableString,
  /** Why the last cycle failed, when it did (null once a cycle succeeds again, and once recovered). */
  lastCycleError: Type.Union([
    Type.Object({ code: Type.String(), message: Type.String(), at: Instant }),
    Type.Null(),
  ]),
  /** The points in time the replica can be started from (ready), newest first, and any under way. */
  points: Type.Array(ReplicaPointView),
  /**
   * What the VM left at hosts a plan moved it away from (its stale definition there, its old disks)
   * or a reprotect left (the chain it ran from), oldest first: reclaimed once a replica at that
   * host's site is ready and the VM runs elsewhere.
   */
  leftovers: Type.Array(
    Type.Object({
      host: Named,
      reason: StringEnum(['failover', 'planned', 'reprotect'] as const),
      /** A stale definition of the VM there, deleted with the disks it owns. */
      definition: Type.Boolean(),
      images: Type.Integer({ minimum: 0 }),
      since: Instant,
    }),
  ),
  createdBy: Type.String(),
  createdAt: Instant,
  updatedAt: Instant,
});
export type ReplicationView = Static<typeof ReplicationView>;

const ReplicationSettings = {
  rpoSeconds: Type.Integer({
    minimum: 60,
    maximum: 86_400,
    description: 'the recovery point objective: the most data a failover may lose',
  }),
  intervalSeconds: Type.Integer({
    minimum: 5,
    maximum: 86_400,
    description: 'how often a cycle starts (default half the RPO)',
  }),
  keepPoints: Type.Integer({
    minimum: 1,
    maximum: 24,
    description: 'points in time kept at the target (default 3)',
  }),
};

export const listReplications = operation({
  method: 'GET',
  path: '/replications',
  auth: 'replication.read',
  tag: 'replication',
  summary: 'The replicated VMs the caller may read, with their current RPO and points in time',
  success: { 200: Items(ReplicationView) },
});

export const protectVm = operation({
  method: 'POST',
  path: '/vms/:id/replication',
  auth: 'replication.manage',
  tag: 'replication',
  summary:
    'Replicate the VM to a host of another site (replication.manage on the VM and on the host): its first cycle copies what holds data, each later one what changed; the replica is never run until a recovery plan runs it',
  params: IdParams,
  body: Type.Object(
    {
      targetHost: IdOrName,
      mode: Type.Optional(
        StringEnum(['interval', 'sync'] as const, {
          description:
            'interval (default): cycles of what changed; sync: every write mirrored to the replica before the guest sees it complete (RPO 0, at a cost in write latency; both hosts need the synchronous-replication facet: QEMU hosts, agents from protocol 1.9)',
        }),
      ),
      rpoSeconds: ReplicationSettings.rpoSeconds,
      intervalSeconds: Type.Optional(ReplicationSettings.intervalSeconds),
      keepPoints: Type.Optional(ReplicationSettings.keepPoints),
    },
    { additionalProperties: false },
  ),
  success: { 201: ReplicationView },
  errors: [404, 409, 422],
});

export const getReplication = operation({
  method: 'GET',
  path: '/vms/:id/replication',
  auth: 'replication.read',
  tag: 'replication',
  summary: "The VM's replication",
  params: IdParams,
  success: { 200: ReplicationView },
  errors: [404],
});

export const updateReplication = operation({
  method: 'PATCH',
  path: '/vms/:id/replication',
  auth: 'replication.manage',
  tag: 'replication',
  summary:
    "Change the VM's RPO, interval or points kept, pause and resume its cycles, or switch its mode (to interval: its mirror is taken down first; to sync: the mirror is set up after the next cycle)",
  params: IdParams,
  body: Type.Object(
    {
      rpoSeconds: Type.Optional(ReplicationSettings.rpoSeconds),
      intervalSeconds: Type.Optional(ReplicationSettings.intervalSeconds),
      keepPoints: Type.Optional(ReplicationSettings.keepPoints),
      state: Type.Optional(StringEnum(['active', 'paused'] as const)),
      mode: Type.Optional(StringEnum(['interval', 'sync'] as const)),
    },
    { additionalProperties: false },
  ),
  success: { 200: ReplicationView },
  errors: [404, 409, 422],
});

export const unprotectVm = operation({
  method: 'DELETE',
  path: '/vms/:id/replication',
  auth: 'replication.manage',
  tag: 'replication',
  summary:
    "Stop replicating the VM: its replica's images are removed at the target (refused while a recovery plan names it, or a test of it runs)",
  params: IdParams,
  success: { 204: NoContent },
  errors: [404, 409],
});

export const replicateNow = operation({
  method: 'POST',
  path: '/vms/:id/replication/cycles',
  auth: 'replication.manage',
  tag: 'replication',
  summary: 'Run a replication cycle of the VM now; answers 202 with the task',
  params: IdParams,
  success: { 202: TaskView },
  errors: [404, 409],
});

/** What a replication cycle's task answers when it succeeded. */
export const ReplicationCycleResult = Type.Object({
  vmId: Type.String(),
  pointId: Type.String(),
  seq: Type.Integer(),
  /**
   * full: the first point (or a disk whose checkpoint was lost); changed: what changed only; sync:
   * a point taken inside a sync replication's running replica (nothing read).
   */
  scope: StringEnum(['full', 'changed', 'sync'] as const),
  takenAt: Instant,
  readBytes: Type.Integer(),
  /** Points folded into the base to keep `keepPoints`. */
  merged: Type.Integer(),
});
export type ReplicationCycleResult = Static<typeof ReplicationCycleResult>;

export const RpoReportRow = Type.Object({
  vmId: Type.String(),
  vmName: Type.String(),
  pointId: Type.String(),
  seq: Type.Integer(),
  takenAt: Instant,
  finishedAt: Instant,
  /** The RPO just before this point was ready: since the previous point's data (null: the first). */
  rpoBeforeSeconds: Type.Union([Type.Number(), Type.Null()]),
  /** The RPO once it was: how old its data was when it became usable. */
  rpoAfterSeconds: Type.Number(),
  rpoTargetSeconds: Type.Integer(),
  readBytes: Type.Integer(),
});

export const replicationReport = operation({
  method: 'GET',
  path: '/replications/report',
  auth: 'replication.read',
  tag: 'replication',
  summary:
    'RPO achieved per VM over time, point by point (evidence for auditors); `format=csv` answers CSV',
  query: Type.Object(
    {
      vm: Type.Optional(IdOrName),
      since: Type.Optional(Type.Integer({ minimum: 0 })),
      format: Type.Optional(StringEnum(['json', 'csv'] as const)),
    },
    { additionalProperties: false },
  ),
  success: { 200: Items(RpoReportRow) },
  csv: true,
  errors: [404],
});

/** A NIC's attachment as recovery plans map it: `user`, `bridge:<name>`, `network:<name>`. */
const Attachment = Type.String({
  maxLength: 128,
  pattern: '^(user|isolated|(bridge|network):[A-Za-z0-9._-]{1,63})$',
});

export const NetworkMapping = Type.Object(
  {
    from: Attachment,
    /** Where it goes in a failover or planned migration. */
    to: Attachment,
    /** Where it goes in a test failover (default: isolated, a network of its own). */
    test: Type.Optional(Attachment),
  },
  { additionalProperties: false },
);

export const RecoveryGroupView = Type.Object({
  vms: Type.Array(Named),
  /** What the guest prints once it is up (a regular expression); null: running is up. */
  marker: NullableString,
  /** Up also means its guest agent answers (a guest that runs qemu-ga). */
  guestAgent: Type.Boolean(),
  /** How long the group's VMs may take to be up before the next group starts anyway. */
  timeoutSeconds: Type.Integer(),
});

export const RecoveryRunVmView = Type.Object({
  vm: Named,
  group: Type.Integer(),
  /** pending, starting, up, failed, removed. */
  state: Type.String(),
  pointTakenAt: NullableInstant,
  host: Type.Union([Named, Type.Null()]),
  /** The VM that runs: a test's copy, or the VM itself after a failover. */
  runVmId: NullableString,
  startedAt: NullableInstant,
  upAt: NullableInstant,
  reason: NullableString,
  /** A failover's fence of the host the VM left, through its BMC: powered off, read back off. */
  fenced: Type.Union([
    Type.Object({ host: Named, at: Instant, elapsedMs: Type.Integer({ minimum: 0 }) }),
    Type.Null(),
  ]),
});

export const RecoveryOperation = StringEnum(['test', 'planned', 'failover'] as const);

export const RecoveryRunView = Type.Object({
  id: Type.String(),
  planId: Type.String(),
  operation: StringEnum(['test', 'planned', 'failover', 'cleanup'] as const),
  /** running, done, failed, cleaned (a test whose copies were removed). */
  state: Type.String(),
  taskId: Type.String(),
  startedAt: Instant,
  endedAt: NullableInstant,
  /** From the start to the last VM up (null until every VM is). */
  rtoSeconds: Type.Union([Type.Number(), Type.Null()]),
  /** The widest data loss window: the run's start less the oldest replica's point in time. */
  dataLossSeconds: Type.Union([Type.Number(), Type.Null()]),
  error: NullableString,
  vms: Type.Array(RecoveryRunVmView),
  createdBy: Type.String(),
});
export type RecoveryRunView = Static<typeof RecoveryRunView>;

export const RecoveryPlanView = Type.Object({
  id: Type.String(),
  name: Type.String(),
  description: NullableString,
  sourceSite: Named,
  targetSite: Named,
  groups: Type.Array(RecoveryGroupView),
  networkMap: Type.Array(NetworkMapping),
  /** A planned migration asks each guest to shut down, and powers it off after this long. */
  shutdownTimeoutSeconds: Type.Integer(),
  lastRun: Type.Union([RecoveryRunView, Type.Null()]),
  createdBy: Type.String(),
  createdAt: Instant,
  updatedAt: Instant,
});
export type RecoveryPlanView = Static<typeof RecoveryPlanView>;

const RecoveryGroupInput = Type.Object(
  {
    vms: Type.Array(IdOrName, { minItems: 1, maxItems: 500 }),
    marker: Type.Optional(Type.String({ minLength: 1, maxLength: 256 })),
    guestAgent: Type.Optional(Type.Boolean()),
    timeoutSeconds: Type.Optional(Type.Integer({ minimum: 1, maximum: 3600 })),
  },
  { additionalProperties: false },
);

export const listRecoveryPlans = operation({
  method: 'GET',
  path: '/recovery-plans',
  auth: 'replication.read',
  tag: 'replication',
  summary: 'Recovery plans, each with its last run',
  success: { 200: Items(RecoveryPlanView) },
});

export const createRecoveryPlan = operation({
  method: 'POST',
  path: '/recovery-plans',
  auth: 'replication.manage',
  tag: 'replication',
  summary:
    'Make a recovery plan from one site to another: priority groups of replicated VMs started in order, and how their networks map',
  body: Type.Object(
    {
      name: SiteName,
      description: Description,
      sourceSite: IdOrName,
      targetSite: IdOrName,
      groups: Type.Array(RecoveryGroupInput, { minItems: 1, maxItems: 20 }),
      networkMap: Type.Optional(Type.Array(NetworkMapping, { maxItems: 64 })),
      shutdownTimeoutSeconds: Type.Optional(
        Type.Integer({
          minimum: 0,
          maximum: 3600,
          description:
            'a planned migration asks each guest to shut down and powers it off after this long (default 120; 0: at once)',
        }),
      ),
    },
    { additionalProperties: false },
  ),
  success: { 201: RecoveryPlanView },
  errors: [404, 409, 422],
});

export const getRecoveryPlan = operation({
  method: 'GET',
  path: '/recovery-plans/:id',
  auth: 'replication.read',
  tag: 'replication',
  summary: 'One recovery plan',
  params: IdParams,
  success: { 200: RecoveryPlanView },
  errors: [404],
});

export const deleteRecoveryPlan = operation({
  method: 'DELETE',
  path: '/recovery-plans/:id',
  auth: 'replication.manage',
  tag: 'replication',
  summary:
    'Forget a recovery plan (refused while a run of it is under way or a test is not cleaned up)',
  params: IdParams,
  success: { 204: NoContent },
  errors: [404, 409],
});

export const RecoveryPreview = Type.Object({
  operation: RecoveryOperation,
  /** What it would do, in order. */
  steps: Type.Array(
    Type.Object({
      group: Type.Integer(),
      vm: Named,
      /** Where the replica is and would run. */
      host: Type.Union([Named, Type.Null()]),
      pointTakenAt: NullableInstant,
      action: Type.String(),
    }),
  ),
  /** Why it cannot run now (VMs without a ready replica, a target host that cannot take them): empty when it can. */
  problems: Type.Array(
    Type.Object({ vm: Type.Union([Named, Type.Null()]), problem: Type.String() }),
  ),
});
export type RecoveryPreview = Static<typeof RecoveryPreview>;

export const previewRecoveryPlan = operation({
  method: 'GET',
  path: '/recovery-plans/:id/preview',
  auth: 'replication.read',
  tag: 'replication',
  summary: 'What running the plan would do now, and what stops it',
  params: IdParams,
  query: Type.Object({ operation: RecoveryOperation }, { additionalProperties: false }),
  success: { 200: RecoveryPreview },
  errors: [404],
});

export const runRecoveryPlan = operation({
  method: 'POST',
  path: '/recovery-plans/:id/runs',
  auth: 'recovery.run',
  tag: 'replication',
  summary:
    'Run the plan: `test` starts copies of the replicas in an isolated network (production and replication go on); `planned` shuts the source VMs down, replicates a last time and starts them at the target (no data lost); `failover` starts the latest replicas after the source site is lost (fenced where it can be). Refused before it starts (422, with the list) when it cannot run; answers 202 with the task',
  params: IdParams,
  body: Type.Object({ operation: RecoveryOperation }, { additionalProperties: false }),
  success: { 202: TaskView },
  errors: [404, 409, 422],
});

export const reprotectRecoveryPlan = operation({
  method: 'POST',
  path: '/recovery-plans/:id/reprotect',
  auth: 'replication.manage',
  tag: 'replication',
  summary:
    'After a failover or planned migration: replicate every VM of the plan back to the site it came from (to the host it left when that one answers; a full first cycle) and turn the plan round, so that a planned migration of it is the failback. Refused (422, with the list) unless every VM runs from its replica',
  params: IdParams,
  success: { 200: RecoveryPlanView },
  errors: [404, 409, 422],
});

/** A plan with what a second Zenith at the recovery site needs to run it without this one. */
export const RecoveryPlanExport = Type.Object({
  format: Type.Literal('zenith-recovery-plan/1'),
  exportedAt: Instant,
  plan: RecoveryPlanView,
  vms: Type.Array(
    Type.Object({
      vm: Named,
      /** Where its replica is: the host and the directory of its images. */
      targetHost: Named,
      directory: Type.String(),
      /** Its newest ready point: each disk's image (the top of its chain) on the target host. */
      point: Type.Union([
        Type.Object({
          seq: Type.Integer(),
          takenAt: Instant,
          disks: Type.Array(
            Type.Object({
              diskId: Type.String(),
              path: Type.String(),
              capacityBytes: Type.Integer(),
            }),
          ),
        }),
        Type.Null(),
      ]),
      /** The VM's portable description at that point (what a failover runs). */
      description: Type.Union([Type.Record(Type.String(), Type.Unknown()), Type.Null()]),
    }),
  ),
});
export type RecoveryPlanExport = Static<typeof RecoveryPlanExport>;

export const exportRecoveryPlan = operation({
  method: 'GET',
  path: '/recovery-plans/:id/export',
  auth: 'replication.read',
  tag: 'replication',
  summary:
    "The plan, and for each VM its replica's newest point (each disk's image on the target host) and the VM's portable description: what a second Zenith at the recovery site needs to run it",
  params: IdParams,
  success: { 200: RecoveryPlanExport },
  errors: [404],
});

export const listRecoveryRuns = operation({
  method: 'GET',
  path: '/recovery-plans/:id/runs',
  auth: 'replication.read',
  tag: 'replication',
  summary:
    "The plan's runs, newest first, each VM's step with its times, the RTO and data loss achieved",
  params: IdParams,
  success: { 200: Items(RecoveryRunView) },
  errors: [404],
});

export const cleanUpRecoveryTest = operation({
  method: 'POST',
  path: '/recovery-plans/:id/runs/:runId/cleanup',
  auth: 'recovery.run',
  tag: 'replication',
  summary: "Remove a test failover's copies and their images; answers 202 with the task",
  params: Type.Object({ id: IdOrName, runId: IdOrName }, { additionalProperties: false }),
  success: { 202: TaskView },
  errors: [404, 409],
});
