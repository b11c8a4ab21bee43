/** A VM described without its host, as it crosses the channel (protocol 1.1: describeVm, runVm). */
import { Type } from 'typebox';

export const Location = Type.Object({
  datastore: Type.Optional(Type.String()),
  path: Type.String(),
});

export const DiskFormat = Type.Union([
  Type.Literal('qcow2'),
  Type.Literal('raw'),
  Type.Literal('vmdk'),
]);

export const Disk = Type.Object({
  location: Location,
  format: DiskFormat,
  bus: Type.Union([
    Type.Literal('virtio'),
    Type.Literal('scsi'),
    Type.Literal('sata'),
    Type.Literal('ide'),
  ]),
  capacityBytes: Type.Number(),
  owned: Type.Boolean(),
  readOnly: Type.Optional(Type.Boolean()),
});

const Nic = Type.Object({
  mac: Type.String(),
  model: Type.Union([
    Type.Literal('virtio'),
    Type.Literal('e1000'),
    Type.Literal('e1000e'),
    Type.Literal('rtl8139'),
    Type.Literal('vmxnet3'),
  ]),
  attachment: Type.Union([
    Type.Object({ kind: Type.Literal('user') }),
    Type.Object({ kind: Type.Literal('bridge'), bridge: Type.String() }),
    Type.Object({ kind: Type.Literal('network'), network: Type.String() }),
    /** Protocol 1.6: a network of the NIC's own that reaches nothing. */
    Type.Object({ kind: Type.Literal('isolated') }),
  ]),
});

const Boot = Type.Union([
  Type.Object({ kind: Type.Literal('disk') }),
  Type.Object({
    kind: Type.Literal('kernel'),
    kernel: Location,
    initrd: Type.Optional(Location),
    cmdline: Type.Optional(Type.String()),
  }),
]);

export const PortableVm = Type.Object({
  uuid: Type.String(),
  name: Type.String(),
  cpus: Type.Number(),
  memoryBytes: Type.Number(),
  firmware: Type.Union([Type.Literal('bios'), Type.Literal('uefi')]),
  machine: Type.Union([Type.Literal('pc'), Type.Literal('q35')]),
  boot: Boot,
  disks: Type.Array(Disk),
  nics: Type.Array(Nic),
  serialConsole: Type.Boolean(),
  graphics: Type.Boolean(),
  guestAgent: Type.Optional(Type.Boolean()),
});

export const RunOptions = Type.Object({
  start: Type.Boolean(),
  /** Protocol 1.7: started with its guest not yet running. */
  paused: Type.Optional(Type.Boolean()),
});
