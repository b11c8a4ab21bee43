/**
 * A backup's manifest: which VM, when, and for each disk the chunks that make it up, in order
 * (null: a chunk of zeroes, not stored). It carries a checksum of everything else in it — SHA-256,
 * or in an encrypted repository an HMAC under the repository's naming key — so that an altered
 * or cut manifest is found, never restored from.
 */
import { createHash, createHmac } from 'node:crypto';
import { Type, type Static } from 'typebox';
import { Value } from 'typebox/value';
import { ZenithError } from '../../../core/errors.js';
import type { ChunkKeys } from './chunk-codec.js';

const ManifestDisk = Type.Object({
  /** The disk as the VM names it (QEMU: disk0, disk1, … in the order the guest sees them). */
  diskId: Type.String(),
  capacityBytes: Type.Integer({ minimum: 0 }),
  /** Chunk names in disk order; null for a chunk that reads as zeroes. */
  chunks: Type.Array(Type.Union([Type.String({ pattern: '^[0-9a-f]{64}$' }), Type.Null()])),
  /** How the disk was read: all of it, or only what changed since `parent`'s backup. */
  scope: Type.Union([Type.Literal('full'), Type.Literal('changed')]),
  readBytes: Type.Integer({ minimum: 0 }),
  /** Bytes of new chunk files this disk's backup wrote. */
  storedBytes: Type.Integer({ minimum: 0 }),
  newChunks: Type.Integer({ minimum: 0 }),
  /** Data chunks already in the repository (from earlier backups, other disks or other VMs). */
  sharedChunks: Type.Integer({ minimum: 0 }),
  zeroChunks: Type.Integer({ minimum: 0 }),
  /**
   * The checkpoint the read left in the VM's disk at the backup's point in time: the next backup
   * of the disk reads only what changed since it (absent: the next backup reads in full).
   */
  checkpoint: Type.Optional(Type.String({ maxLength: 128 })),
  /**
   * A running VM's disk: whether the guest's file systems were frozen through its guest agent at
   * the point in time (absent: a stopped VM's disk, or a backup from before this field).
   */
  quiesced: Type.Optional(Type.Boolean()),
  /** How many file systems the agent froze. */
  frozenFileSystems: Type.Optional(Type.Integer({ minimum: 0 })),
  /** Why it was not quiesced (no agent channel, the agent did not answer, …). */
  quiesceNote: Type.Optional(Type.String({ maxLength: 1024 })),
});
export type ManifestDisk = Static<typeof ManifestDisk>;

const ManifestBody = Type.Object({
  format: Type.Literal(1),
  id: Type.String({ pattern: '^backup_[0-9A-Z]{26}$' }),
  repositoryId: Type.String(),
  chunkSize: Type.Integer({ minimum: 1 }),
  vm: Type.Object({
    id: Type.String(),
    name: Type.String(),
    uuid: Type.Union([Type.String(), Type.Null()]),
    /**
     * The VM described without its host (the portable-VM facet's description): what a restore
     * defines again, with the restored disks in place of these.
     */
    description: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
  }),
  /** The point in time the backup shows (ISO 8601). */
  takenAt: Type.String(),
  finishedAt: Type.String(),
  /** The backup the changed disks were read against. */
  parent: Type.Union([Type.String(), Type.Null()]),
  /** The job that made it, if one did. */
  job: Type.Union([Type.String(), Type.Null()]),
  /** The task that made it: a task run again after a crash finds the backup it made. */
  task: Type.Optional(Type.String()),
  disks: Type.Array(ManifestDisk),
});
export type ManifestBody = Static<typeof ManifestBody>;

const BackupManifest = Type.Intersect([ManifestBody, Type.Object({ checksum: Type.String() })]);
export type BackupManifest = Static<typeof BackupManifest>;

/** The body as one canonical string: keys in a fixed order, whatever order they were written in. */
function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (value !== null && typeof value === 'object')
    return `{${Object.keys(value)
      .sort()
      .map((key) => `${JSON.stringify(key)}:${canonical((value as Record<string, unknown>)[key])}`)
      .join(',')}}`;
  return JSON.stringify(value);
}

/** One disk of a backup by its id; ZEN_NOT_FOUND (naming the disks it has) when it has none of that id. */
export function manifestDisk(manifest: BackupManifest, diskId: string): ManifestDisk {
  const disk = manifest.disks.find((d) => d.diskId === diskId);
  if (!disk)
    throw new ZenithError('ZEN_NOT_FOUND', `backup ${manifest.id} has no disk ${diskId}`, {
      diskId,
      disks: manifest.disks.map((d) => d.diskId),
    });
  return disk;
}

export function manifestChecksum(body: ManifestBody, keys?: ChunkKeys): string {
  const { ...plain } = body as ManifestBody & { checksum?: string };
  delete plain.checksum;
  const text = canonical(plain);
  return (keys ? createHmac('sha256', keys.naming) : createHash('sha256'))
    .update(text)
    .digest('hex');
}

/** Parses and checks a manifest's text: ZEN_BACKUP_CHUNK_DAMAGED-free, or ZEN_BACKUP_MANIFEST_DAMAGED. */
export function checkManifest(
  text: string,
  keys: ChunkKeys | undefined,
  backupId: string,
): BackupManifest {
  const bad = (why: string) =>
    new ZenithError(
      'ZEN_BACKUP_MANIFEST_DAMAGED',
      `the manifest of backup ${backupId} is damaged: ${why}`,
      {
        backupId,
        why,
      },
    );
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw bad('it is not JSON');
  }
  if (!Value.Check(BackupManifest, value)) {
    const first = [...Value.Errors(BackupManifest, value)][0];
    throw bad(
      `it does not have the manifest's shape (${first?.instancePath ?? ''} ${first?.message ?? ''})`,
    );
  }
  if (value.id !== backupId) throw bad(`it names backup ${value.id}`);
  if (manifestChecksum(value, keys) !== value.checksum)
    throw bad('its checksum does not match its content');
  for (const disk of value.disks) {
    const expected = Math.ceil(disk.capacityBytes / value.chunkSize);
    if (disk.chunks.length !== expected)
      throw bad(
        `disk ${disk.diskId} has ${disk.chunks.length} chunks for ${disk.capacityBytes} bytes (${expected} expected)`,
      );
  }
  return value;
}
