/**
 * The storage-scan facet's values as they cross the agent channel (protocol 1.10). A scan of
 * thousands of files is larger than one 1 MiB frame: the agent keeps it under an id and the
 * control plane reads its images a page at a time.
 */
import { Type } from 'typebox';

const path = Type.String({ minLength: 1, maxLength: 4096 });
const bytes = Type.Integer({ minimum: 0 });
const count = Type.Integer({ minimum: 0 });

export const ScannedImage = Type.Object({
  path,
  root: path,
  format: Type.Union([
    Type.Literal('qcow2'),
    Type.Literal('vmdk'),
    Type.Literal('raw'),
    Type.Literal('iso'),
    Type.Literal('kernel'),
    Type.Literal('initrd'),
  ]),
  kind: Type.Union([
    Type.Literal('disk'),
    Type.Literal('iso'),
    Type.Literal('kernel'),
    Type.Literal('initrd'),
  ]),
  virtualBytes: bytes,
  fileBytes: bytes,
  allocatedBytes: bytes,
  backingFile: Type.Union([path, Type.Null()]),
  label: Type.Union([Type.String({ maxLength: 64 }), Type.Null()]),
  problem: Type.Union([Type.String({ maxLength: 1024 }), Type.Null()]),
  linkTarget: Type.Union([path, Type.Null()]),
  modifiedAt: Type.Number(),
  owner: Type.Union([
    Type.Object({
      vmUuid: Type.String({ maxLength: 64 }),
      vmName: Type.String({ maxLength: 256 }),
    }),
    Type.Null(),
  ]),
});

/** A finished scan without its images: those are read with readStorageScan. */
export const StorageScanSummary = Type.Object({
  scanId: Type.String({ pattern: '^[A-Za-z0-9_-]{1,64}$' }),
  startedAt: Type.Number(),
  finishedAt: Type.Number(),
  roots: Type.Array(
    Type.Object({
      root: path,
      error: Type.Union([
        Type.Object({ code: Type.String(), message: Type.String({ maxLength: 4096 }) }),
        Type.Null(),
      ]),
    }),
  ),
  skipped: Type.Object({
    linksOutside: count,
    brokenLinks: count,
    tooDeep: count,
    unreadable: count,
    notImages: count,
  }),
  truncated: Type.Boolean(),
  definedVmUuids: Type.Array(Type.String({ maxLength: 64 })),
  imageCount: count,
});

/** One page of a scan's images, and where the next starts (null: that was the last). */
export const StorageScanPage = Type.Object({
  images: Type.Array(ScannedImage),
  next: Type.Union([count, Type.Null()]),
});
