/**
 * The synchronous-replication facet's values as they cross the agent channel (protocol 1.8; 1.9
 * adds folding a point, and a replica's address may be left to the agent): a replica's request and
 * its disks' addresses, points, a point to fold, a mirror's target and status. The key is
 * checked here as QEMU's key file can carry it (an identity without a colon, hex digits), and is
 * never part of an answer.
 */
import { Type } from 'typebox';

const path = Type.String({ minLength: 1, maxLength: 4096 });
const diskId = Type.String({ pattern: '^[A-Za-z0-9_-]{1,64}$' });
const port = Type.Integer({ minimum: 1, maximum: 65535 });
const host = Type.String({ minLength: 1, maxLength: 255 });

export const ReplicaPsk = Type.Object({
  identity: Type.String({ pattern: '^[A-Za-z0-9._-]{1,64}$' }),
  key: Type.String({ pattern: '^([0-9a-fA-F]{2}){16,64}$' }),
});

export const ReplicaStart = Type.Object({
  directory: path,
  disks: Type.Array(Type.Object({ diskId, base: path, overlay: Type.Optional(path) }), {
    minItems: 1,
    maxItems: 64,
  }),
  psk: ReplicaPsk,
  /** Absent, or without a host: the agent's migration address. */
  listen: Type.Optional(Type.Object({ host: Type.Optional(host), port: Type.Optional(port) })),
  writethrough: Type.Optional(Type.Boolean()),
});

export const Replica = Type.Object({
  directory: path,
  disks: Type.Array(
    Type.Object({
      diskId,
      host,
      port,
      exportName: Type.String(),
      base: path,
      overlay: path,
      startedAt: Type.String(),
    }),
  ),
});

export const ReplicaPointRequests = Type.Array(Type.Object({ diskId, path }), {
  minItems: 1,
  maxItems: 64,
});

export const ReplicaPointsTaken = Type.Array(
  Type.Object({ diskId, point: path, overlay: path, takenAt: Type.String() }),
);

export const ReplicaPointMerge = Type.Object({ diskId, overlay: path, backing: path });

export const SyncMirrorTarget = Type.Object({
  host,
  port,
  exportName: Type.Optional(Type.String({ minLength: 1, maxLength: 255 })),
  psk: ReplicaPsk,
});

export const SyncMirrorStartOptions = Type.Object({
  readyTimeoutMs: Type.Optional(Type.Integer({ minimum: 0 })),
  connectTimeoutMs: Type.Optional(Type.Integer({ minimum: 0 })),
});

const bytes = Type.Integer({ minimum: 0 });

export const SyncMirrorStatus = Type.Union([
  Type.Object({ state: Type.Literal('none') }),
  Type.Object({
    state: Type.Literal('copying'),
    jobId: Type.String(),
    copiedBytes: bytes,
    totalBytes: bytes,
  }),
  Type.Object({
    state: Type.Literal('ready'),
    jobId: Type.String(),
    totalBytes: bytes,
    inFlightBytes: bytes,
  }),
  Type.Object({ state: Type.Literal('failed'), jobId: Type.String(), error: Type.String() }),
  Type.Object({ state: Type.Literal('ended'), jobId: Type.String() }),
]);
