/**
 * Events: one typed union, `type` → `data` shape. Services publish them (stored with a sequence
 * number), GET /events lists them and GET /events/stream follows them; the web console and
 * `zenith events` read the same types. A stream's last event may be `stream.closed` (not stored).
 */
import { Type, type Static, type TObject, type TSchema } from 'typebox';
import { ErrorBody } from './errors.js';
import { operation } from './operation.js';
import { TaskError } from './tasks.js';

const NullableString = Type.Union([Type.String(), Type.Null()]);

/** What an inventory event says about the object (its objectId) it is about. */
const InventoryObjectData = Type.Object({
  kind: Type.String(),
  name: Type.String(),
  /** Where it is in the tree now: a console showing that level refreshes it. */
  parentId: Type.Optional(NullableString),
  /** The connection that reported it (absent for objects Zenith owns). */
  connectionId: Type.Optional(Type.String()),
  /** What changed (updated, missing): facts, status, name, parent, userFacts, tags, … */
  changed: Type.Optional(Type.Array(Type.String())),
  /** A VM's location, when it changed: where it is now and where it was. */
  location: Type.Optional(
    Type.Object({
      hostId: NullableString,
      powerState: Type.String(),
      previousHostId: NullableString,
    }),
  ),
});

const TaskLifecycleData = Type.Object({
  kind: Type.String(),
  targetId: NullableString,
  /** A failed or cancelled task: why. */
  error: Type.Optional(TaskError),
});

/** A running task's progress; the figures behind it (bytes sent, dirty-page rate, …) beside. */
const TaskProgressData = Type.Unsafe<{
  percent: number;
  message: string | null;
  [figure: string]: number | string | null;
}>(
  Type.Object(
    { percent: Type.Number(), message: NullableString },
    { additionalProperties: Type.Union([Type.Number(), Type.String()]) },
  ),
);

const ConnectionStateData = Type.Object({ error: Type.Optional(Type.String()) });
const AgentData = Type.Object({ hostname: Type.String() });
const PolicyScopeData = Type.Object({ kind: Type.String(), id: NullableString });

/** Every event type with the shape of its data. */
export const eventData = {
  'inventory.created': InventoryObjectData,
  'inventory.updated': InventoryObjectData,
  'inventory.deleted': InventoryObjectData,
  'inventory.missing': InventoryObjectData,
  /** A reconcile of more than 1,000 changes: this one summary instead of an event per object. */
  'inventory.synced': Type.Object({
    connectionId: Type.String(),
    created: Type.Number(),
    updated: Type.Number(),
    missing: Type.Number(),
    moved: Type.Number(),
  }),
  /** A connection reports a VM with the UUID of a VM it does not have (docs/inventory.md). */
  'inventory.conflict': Type.Object({
    kind: Type.Literal('vm'),
    reason: Type.Literal('uuid'),
    uuid: Type.String(),
    vmId: Type.String(),
    connectionId: Type.String(),
    vmConnectionId: NullableString,
  }),
  'task.queued': TaskLifecycleData,
  'task.running': TaskLifecycleData,
  'task.progress': TaskProgressData,
  'task.succeeded': TaskLifecycleData,
  'task.failed': TaskLifecycleData,
  'task.cancelled': TaskLifecycleData,
  'connection.connecting': ConnectionStateData,
  'connection.connected': ConnectionStateData,
  'connection.disconnected': ConnectionStateData,
  'connection.removed': Type.Object({ name: Type.String() }),
  'agent.enrolled': AgentData,
  'agent.connected': AgentData,
  'agent.revoked': AgentData,
  'policy.created': Type.Object({ name: Type.String(), scope: PolicyScopeData }),
  'policy.updated': Type.Object({ name: Type.String(), scope: PolicyScopeData }),
  'policy.deleted': Type.Object({ name: Type.String() }),
  /** A host entered or left maintenance (or is being evacuated). */
  'host.mode': Type.Object({
    mode: Type.String(),
    previous: Type.String(),
    planId: NullableString,
  }),
  /** High availability: a protected host stopped answering on its channel and on its storage. */
  'ha.hostFailed': Type.Object({
    name: Type.String(),
    failedAt: Type.Number(),
    /** The failover that restarts its VMs. */
    failoverId: Type.String(),
  }),
  /** Its channel is silent but its storage heartbeat goes on: cut off, not dead; nothing restarts. */
  'ha.hostIsolated': Type.Object({ name: Type.String(), since: Type.Number() }),
  /** A host that was failed or isolated answers again. */
  'ha.hostRecovered': Type.Object({ name: Type.String() }),
  /** Fencing could not be confirmed (BMC down, lease still held): the host's VMs do not restart yet. */
  'ha.fenceFailed': Type.Object({
    name: Type.String(),
    failoverId: Type.String(),
    reason: Type.String(),
  }),
  /** A VM of a failed host runs again elsewhere (its location's reason is failover). */
  'ha.vmRestarted': Type.Object({
    name: Type.String(),
    failoverId: Type.String(),
    fromHostId: Type.String(),
    toHostId: Type.String(),
    /** From the host's failure to the VM started again. */
    downMs: Type.Number(),
  }),
  /** A VM of a failed host cannot start yet (no capacity, a held disk lock): it waits, and why. */
  'ha.vmWaiting': Type.Object({
    name: Type.String(),
    failoverId: Type.String(),
    reason: Type.String(),
  }),
  /**
   * A vSphere host's state as vSphere HA reports it changed (`master`, `connectedToMaster`,
   * `hostDown`, `networkIsolated`, `fdmUnreachable`, …; null: HA not configured on it). Zenith only
   * shows vSphere HA; it does not act on vSphere hosts.
   */
  'ha.vsphereHostState': Type.Object({
    name: Type.String(),
    state: NullableString,
    previous: NullableString,
    clusterId: NullableString,
  }),
  /** VM monitoring started a VM again on its host after its QEMU died or its guest panicked. */
  'ha.vmMonitorRestarted': Type.Object({
    name: Type.String(),
    hostId: NullableString,
    /** power.stopCause: crashed or guest-panic. */
    cause: Type.String(),
    /** When it was seen stopped (ms since the epoch). */
    stoppedAt: Type.Number(),
    /** From then to its start task's end. */
    downMs: Type.Number(),
    /** 1 for the first start after this stop (a start that failed is tried again). */
    attempt: Type.Number(),
    /** The vm.start task, of zenith-ha. */
    taskId: Type.String(),
  }),
  /** VM monitoring restarted a VM maxRestarts times within the window: this stop leaves it off. */
  'ha.vmMonitoringLimit': Type.Object({
    name: Type.String(),
    hostId: NullableString,
    cause: Type.String(),
    /** Restarts tried within the window. */
    restarts: Type.Number(),
    maxRestarts: Type.Number(),
    windowMinutes: Type.Number(),
    reason: Type.String(),
  }),
  'ha.failoverFinished': Type.Object({
    name: Type.String(),
    state: Type.String(),
    restarted: Type.Number(),
    waiting: Type.Number(),
    failed: Type.Number(),
  }),
  /** A replication cycle made a new point in time of the VM's replica ready. */
  'replication.cycleFinished': Type.Object({
    name: Type.String(),
    seq: Type.Number(),
    scope: Type.String(),
    takenAt: Type.Number(),
    readBytes: Type.Number(),
  }),
  /** A replication cycle failed: the replica stays at its last ready point. */
  'replication.cycleFailed': Type.Object({
    name: Type.String(),
    code: Type.String(),
    message: Type.String(),
  }),
  /** A policy's replication settings protected the VM (replicated to a host of its target site). */
  'replication.protectedByPolicy': Type.Object({
    name: Type.String(),
    policy: Type.String(),
    targetHost: Type.String(),
    rpoSeconds: Type.Number(),
  }),
  /** A policy asks to replicate the VM and it cannot be (said once until the policies change). */
  'replication.policyRefused': Type.Object({
    name: Type.String(),
    policy: Type.String(),
    code: Type.String(),
    message: Type.String(),
  }),
  /** A sync replication's mirror is ready: every write of the VM reaches its replica (RPO 0). */
  'replication.syncEngaged': Type.Object({
    name: Type.String(),
    disks: Type.Number(),
  }),
  /**
   * A sync replication's mirror was lost, or could not be set up: interval cycles keep the
   * replica until it is set up again.
   */
  'replication.syncLost': Type.Object({
    name: Type.String(),
    code: Type.String(),
    message: Type.String(),
  }),
  /** The VM's current RPO went over its target (said once until it is back under). */
  'replication.rpoExceeded': Type.Object({
    name: Type.String(),
    rpoSeconds: Type.Number(),
    targetSeconds: Type.Number(),
  }),
  /** The VM's current RPO is back under its target. */
  'replication.rpoRestored': Type.Object({
    name: Type.String(),
    rpoSeconds: Type.Number(),
    targetSeconds: Type.Number(),
  }),
  /** A VM of a recovery plan's run is up at the target (a test's copy, or the VM itself). */
  'recovery.vmUp': Type.Object({
    name: Type.String(),
    runId: Type.String(),
    operation: Type.String(),
    hostId: Type.String(),
    runVmId: Type.String(),
  }),
  'recovery.runFinished': Type.Object({
    name: Type.String(),
    runId: Type.String(),
    operation: Type.String(),
    state: Type.String(),
    rtoSeconds: Type.Union([Type.Number(), Type.Null()]),
  }),
} as const satisfies Record<string, TSchema>;

export type EventType = keyof typeof eventData;
export type EventData<T extends EventType> = Static<(typeof eventData)[T]>;
export const eventTypes = Object.keys(eventData) as EventType[];

/** An event as stored and delivered; `ZenithEvent<'task.failed'>` is one of one type. */
export type ZenithEvent<T extends EventType = EventType> = {
  [K in T]: { seq: number; type: K; objectId: string | null; data: EventData<K>; ts: number };
}[T];

/** An event as a service publishes it (the store gives it its sequence number and time). */
export type NewEvent<T extends EventType = EventType> = {
  [K in T]: { type: K; objectId?: string | null; data: EventData<K> };
}[T];

function envelope<T extends string, D extends TSchema>(type: T, data: D) {
  return Type.Object({
    seq: Type.Number(),
    type: Type.Literal(type),
    objectId: NullableString,
    data,
    ts: Type.Number({ description: 'ms since the epoch' }),
  });
}

/** The union as a schema (the document describes it; GET /events answers a page of it). */
export const ZenithEventSchema = Type.Unsafe<ZenithEvent>(
  Type.Union(Object.entries(eventData).map(([type, data]) => envelope(type, data as TObject))),
);

/** The data of a stream's last event when the server ends it (stream.closed, see event-guards.ts): an error body. */
export const StreamClosedData = ErrorBody;
export type StreamClosedData = Static<typeof StreamClosedData>;

export function isEventType(type: string): type is EventType {
  return Object.hasOwn(eventData, type);
}

const EventsQuery = Type.Object(
  {
    since: Type.Optional(
      Type.Integer({ minimum: 0, description: 'Only events after this sequence number' }),
    ),
    type: Type.Optional(
      Type.String({ maxLength: 64, description: 'Type prefix, e.g. task. or inventory.' }),
    ),
    objectId: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, default: 100 })),
  },
  { additionalProperties: false },
);

export const listEvents = operation({
  method: 'GET',
  path: '/events',
  auth: 'event.read',
  tag: 'events',
  summary: 'Stored events in sequence order: after ?since=, or the latest ones',
  query: EventsQuery,
  success: {
    200: Type.Object({
      items: Type.Array(ZenithEventSchema),
      /** Continue with ?since= this (it follows every stored event, also those not shown). */
      nextSince: Type.Number(),
    }),
  },
});

export const followEvents = operation({
  method: 'GET',
  path: '/events/stream',
  auth: 'event.read',
  tag: 'events',
  summary:
    'Server-Sent Events: inventory changes and task progress, live. Resumes after Last-Event-ID or ?since=. Ends with a stream.closed event (data: an error body with its code) when the credential is revoked or the caller may no longer read events',
  query: Type.Omit(EventsQuery, ['limit']),
  success: { 200: Type.Union([ZenithEventSchema, StreamClosedData]) },
  stream: true,
});
