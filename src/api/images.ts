/**
 * The image library (docs/images.md): disk images, ISO files, kernels and initrds found on hosts'
 * storage by scans that read headers only, and the disks no defined VM uses any more. An image is
 * read as its host is (inventory.read on the host); scanning a host takes inventory.write on it.
 */
import { Type, type Static } from 'typebox';
import {
  IdOrName,
  IdParams,
  Instant,
  NullableInstant,
  NullableString,
  StringEnum,
} from './common.js';
import { operation } from './operation.js';
import { TaskView } from './tasks.js';

export const imageFormats = ['qcow2', 'vmdk', 'raw', 'iso', 'kernel', 'initrd'] as const;
export const imageKinds = ['disk', 'iso', 'kernel', 'initrd'] as const;
export const imageUsages = ['image', 'in-use', 'vm-missing', 'unregistered'] as const;

export const ImageView = Type.Object({
  id: Type.String(),
  hostId: Type.String(),
  hostName: NullableString,
  connectionId: Type.String(),
  path: Type.String({ description: 'The file on its host (a link keeps its own path)' }),
  root: Type.String({ description: 'The storage root it was found in' }),
  name: Type.String(),
  format: StringEnum(imageFormats),
  kind: StringEnum(imageKinds),
  virtualBytes: Type.Number({ description: 'The size the guest sees' }),
  fileBytes: Type.Number(),
  allocatedBytes: Type.Number({ description: 'What it takes on the storage (sparse files less)' }),
  backingFile: NullableString,
  label: Type.Union([Type.String(), Type.Null()], { description: "An ISO's volume label" }),
  problem: Type.Union([
    Type.Object({ code: Type.Literal('ZEN_IMAGE_CORRUPT'), message: Type.String() }),
    Type.Null(),
  ]),
  linkTarget: NullableString,
  modifiedAt: Instant,
  owner: Type.Union([
    Type.Object({
      vmUuid: Type.String(),
      vmName: Type.String(),
      vmId: Type.Union([Type.String(), Type.Null()]),
    }),
    Type.Null(),
  ]),
  usage: StringEnum(imageUsages, {
    description:
      "image: no VM claims it; in-use: a defined VM's disk; vm-missing: the disk of a VM Zenith knew that no host reports now; unregistered: the disk of a VM no host defines",
  }),
  orphaned: Type.Boolean({ description: 'usage is vm-missing or unregistered' }),
  status: StringEnum(['present', 'missing'] as const),
  missingSince: NullableInstant,
  firstSeenAt: Instant,
  scannedAt: Instant,
});
export type ImageView = Static<typeof ImageView>;

export const listImages = operation({
  method: 'GET',
  path: '/images',
  auth: 'inventory.read',
  tag: 'images',
  summary: 'The image library: images on the storage of the hosts in reach, by id',
  query: Type.Object(
    {
      host: Type.Optional(IdOrName),
      kind: Type.Optional(StringEnum(imageKinds)),
      format: Type.Optional(StringEnum(imageFormats)),
      orphaned: Type.Optional(Type.Boolean()),
      status: Type.Optional(StringEnum(['present', 'missing', 'all'] as const)),
      cursor: Type.Optional(Type.String({ maxLength: 64, pattern: '^img_[0-9A-Z]{26}$' })),
      limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, default: 100 })),
    },
    { additionalProperties: false },
  ),
  success: {
    200: Type.Object({
      items: Type.Array(ImageView),
      nextCursor: Type.Union([Type.String(), Type.Null()]),
    }),
  },
});

export const getImage = operation({
  method: 'GET',
  path: '/images/:id',
  auth: 'inventory.read',
  tag: 'images',
  summary: 'One image of the library',
  params: IdParams,
  success: { 200: ImageView },
});

export const scanHostImages = operation({
  method: 'POST',
  path: '/hosts/:id/images/scan',
  auth: 'inventory.write',
  tag: 'images',
  summary:
    "Scan a host's storage for images now (headers only); answers 202 with the task, whose result counts what it found",
  params: IdParams,
  success: { 202: TaskView },
  errors: [409, 422, 502],
});

/** The result of a scan task (`host.images.scan`): what it found and what it passed over. */
export const ScanSummaryView = Type.Object({
  hostId: Type.String(),
  images: Type.Integer(),
  created: Type.Integer(),
  updated: Type.Integer(),
  missing: Type.Integer({ description: 'Files found before and not now: marked missing' }),
  orphaned: Type.Integer(),
  orphanedBytes: Type.Number({ description: 'What the orphaned disks take on the storage' }),
  corrupt: Type.Integer(),
  roots: Type.Array(
    Type.Object({
      root: Type.String(),
      error: Type.Union([
        Type.Object({ code: Type.String(), message: Type.String() }),
        Type.Null(),
      ]),
    }),
  ),
  skipped: Type.Object({
    linksOutside: Type.Integer(),
    brokenLinks: Type.Integer(),
    tooDeep: Type.Integer(),
    unreadable: Type.Integer(),
    notImages: Type.Integer(),
  }),
  truncated: Type.Boolean(),
  durationMs: Type.Number(),
});
export type ScanSummaryView = Static<typeof ScanSummaryView>;
