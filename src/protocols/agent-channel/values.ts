/**
 * The values the agent channel carries, declared once for both ends: what a
 * host's QEMU driver discovers and answers, and what actions take. Objects
 * accept fields they do not know (a newer minor version may add some); the
 * fields they know must have their declared types.
 */
import { Type, type Static } from 'typebox';

export const FactValue = Type.Union([
  Type.String(),
  Type.Number(),
  Type.Boolean(),
  Type.Array(Type.String()),
  Type.Null(),
]);
export const Facts = Type.Record(Type.String(), FactValue);

const nonVmKind = Type.Union([
  Type.Literal('datacenter'),
  Type.Literal('cluster'),
  Type.Literal('host'),
  Type.Literal('network'),
  Type.Literal('datastore'),
  Type.Literal('resourceGroup'),
]);
export const ObjectKind = Type.Union([nonVmKind, Type.Literal('vm')]);

export const PowerState = Type.Union([
  Type.Literal('running'),
  Type.Literal('stopped'),
  Type.Literal('suspended'),
  Type.Literal('paused'),
  Type.Literal('unknown'),
]);

const ExternalRef = Type.Object({ kind: ObjectKind, externalId: Type.String() });

const objectFields = {
  externalId: Type.String(),
  name: Type.String(),
  parent: Type.Union([ExternalRef, Type.Null()]),
  facts: Facts,
  tags: Type.Optional(Type.Array(Type.String())),
};

export const DiscoveredVm = Type.Object({
  ...objectFields,
  kind: Type.Literal('vm'),
  hostExternalId: Type.Union([Type.String(), Type.Null()]),
  powerState: PowerState,
});
export type DiscoveredVm = Static<typeof DiscoveredVm>;

/** Anything but a VM (a VM must say where it runs and its power state). */
const DiscoveredOther = Type.Object({ ...objectFields, kind: nonVmKind });

export const DiscoveredObject = Type.Union([DiscoveredVm, DiscoveredOther]);

export const DiscoverySnapshot = Type.Object({ objects: Type.Array(DiscoveredObject) });

export const InventoryDelta = Type.Union([
  Type.Object({ type: Type.Literal('upsert'), object: DiscoveredObject }),
  Type.Object({ type: Type.Literal('remove'), kind: ObjectKind, externalId: Type.String() }),
]);
export type InventoryDelta = Static<typeof InventoryDelta>;

export const ActionProgress = Type.Object({
  percent: Type.Number(),
  message: Type.Optional(Type.String()),
  details: Type.Optional(Type.Record(Type.String(), Type.Union([Type.Number(), Type.String()]))),
});
export type ActionProgress = Static<typeof ActionProgress>;

// A VM's counters are the contract's: the agent reports them as the API answers them.
export { VmMetrics } from '../../api/metrics.js';

export const SnapshotInfo = Type.Object({
  id: Type.String(),
  name: Type.String(),
  createdAt: Type.Number(),
  powerState: PowerState,
});

export const VmSpec = Type.Object({
  name: Type.String(),
  cpus: Type.Number(),
  memoryBytes: Type.Number(),
  diskBytes: Type.Number(),
  hostExternalId: Type.String(),
  facts: Type.Optional(Facts),
  options: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
});

export const VmFootprint = Type.Object({
  cpus: Type.Number(),
  memoryBytes: Type.Number(),
  diskBytes: Type.Number(),
});

export const CloneOptions = Type.Object({
  name: Type.String(),
  linked: Type.Optional(Type.Boolean()),
});

export const StopOptions = Type.Object({ force: Type.Optional(Type.Boolean()) });

export const ConsoleKind = Type.Union([Type.Literal('serial'), Type.Literal('vnc')]);
export type ConsoleKind = Static<typeof ConsoleKind>;

/** An error as it crosses the channel: its stable code, never recognised by its message. */
export const CodedError = Type.Object({
  code: Type.String(),
  message: Type.String(),
});

export const CodedErrorWithDetails = Type.Object({
  code: Type.String(),
  message: Type.String(),
  details: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
});
