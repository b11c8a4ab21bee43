/**
 * The values of a live migration between QEMU hosts as they cross the agent
 * channel: an agent runs QEMU, so what one agent exports another (or the
 * control plane's own QEMU host) receives — the VM's record, where to send it
 * and how it went.
 */
import { Type } from 'typebox';
import { PowerState } from './values.js';

const QemuDiskSpec = Type.Object({
  file: Type.String(),
  sizeBytes: Type.Optional(Type.Number()),
  backingFile: Type.Optional(Type.String()),
  capacityBytes: Type.Optional(Type.Number()),
});

const QemuBoot = Type.Union([
  Type.Object({ kind: Type.Literal('disk') }),
  Type.Object({
    kind: Type.Literal('kernel'),
    kernel: Type.String(),
    initrd: Type.Optional(Type.String()),
    cmdline: Type.Optional(Type.String()),
  }),
]);

/** `mac` since protocol 1.1: a VM run from a portable description keeps the MACs it had. */
const QemuNicSpec = Type.Union([
  Type.Object({ mode: Type.Literal('user'), mac: Type.Optional(Type.String()) }),
  Type.Object({
    mode: Type.Literal('bridge'),
    bridge: Type.String(),
    mac: Type.Optional(Type.String()),
  }),
]);

const QemuVmSpec = Type.Object({
  name: Type.String(),
  uuid: Type.Optional(Type.String()),
  cpus: Type.Number(),
  memoryMiB: Type.Number(),
  disks: Type.Array(QemuDiskSpec),
  boot: QemuBoot,
  nics: Type.Array(QemuNicSpec),
  vnc: Type.Boolean(),
  guestAgent: Type.Optional(Type.Boolean()),
  accelerator: Type.Union([Type.Literal('kvm'), Type.Literal('tcg'), Type.Literal('auto')]),
});

const SnapshotRecord = Type.Object({
  id: Type.String(),
  name: Type.String(),
  createdAt: Type.Number(),
  powerState: PowerState,
  withMemory: Type.Boolean(),
});

const VmRecord = Type.Object({
  id: Type.String(),
  spec: QemuVmSpec,
  createdAt: Type.Number(),
  desired: Type.Union([Type.Literal('running'), Type.Literal('stopped')]),
  incoming: Type.Optional(Type.Boolean()),
  incomingStorage: Type.Optional(Type.Boolean()),
  incomingDisks: Type.Optional(Type.Array(Type.String())),
  sourcePowerState: Type.Optional(PowerState),
  outgoing: Type.Optional(Type.Object({ withStorage: Type.Boolean() })),
  snapshots: Type.Optional(Type.Array(SnapshotRecord)),
});

export const MigrationPackage = Type.Object({
  record: VmRecord,
  powerState: PowerState,
  disks: Type.Array(Type.Object({ relativePath: Type.String(), virtualSizeBytes: Type.Number() })),
});

export const IncomingOptions = Type.Object({
  withStorage: Type.Optional(Type.Boolean()),
  multifdChannels: Type.Optional(Type.Integer({ minimum: 1 })),
});

export const IncomingEndpoint = Type.Object({
  uri: Type.String(),
  nbd: Type.Optional(
    Type.Object({
      host: Type.String(),
      port: Type.Integer({ minimum: 1, maximum: 65535 }),
      exports: Type.Array(Type.String()),
    }),
  ),
});

export const SendOptions = Type.Object({
  withStorage: Type.Optional(Type.Boolean()),
  maxBandwidthBytesPerSecond: Type.Optional(Type.Number()),
  maxDowntimeMs: Type.Optional(Type.Number()),
  autoConverge: Type.Optional(Type.Boolean()),
  datastoreExternalId: Type.Optional(Type.String()),
  multifdChannels: Type.Optional(Type.Integer({ minimum: 1 })),
});

export const MigrationResult = Type.Object({
  totalTimeMs: Type.Number(),
  downtimeMs: Type.Union([Type.Number(), Type.Null()]),
  transferredBytes: Type.Number(),
  diskBytes: Type.Number(),
});

export const IncomingState = Type.Union([
  Type.Literal('receiving'),
  Type.Literal('received'),
  Type.Literal('failed'),
]);

export const OutgoingState = Type.Union([
  Type.Literal('sending'),
  Type.Literal('departed'),
  Type.Literal('stayed'),
  Type.Literal('gone'),
]);
