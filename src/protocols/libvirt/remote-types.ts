/**
 * The shared XDR types of libvirt's remote protocol (src/remote/remote_protocol.x):
 * strings, UUIDs, object references and typed parameters.
 */
import { xdrDecodeError, xdrEncodeError } from '../xdr/xdr-error.js';
import {
  xdrArray,
  xdrDouble,
  xdrFixedOpaque,
  xdrHyper,
  xdrInt,
  xdrMapped,
  xdrOptional,
  xdrString,
  xdrStruct,
  xdrUhyper,
  xdrUint,
  xdrUnion,
  type XdrType,
  type XdrValue,
} from '../xdr/xdr-types.js';

/** REMOTE_STRING_MAX in current libvirt. */
export const REMOTE_STRING_MAX = 4 * 1024 * 1024;
/** Generous list bounds: they only guard the decoder against absurd counts. */
export const REMOTE_LIST_MAX = 65536;
export const REMOTE_TYPED_PARAMS_MAX = 262144;
export const REMOTE_MIGRATE_COOKIE_MAX = 4 * 1024 * 1024;

export const remoteNonnullString = xdrString(REMOTE_STRING_MAX);
export const remoteString = xdrOptional(remoteNonnullString);

const UUID_TEXT = /^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$/i;

export function uuidToText(bytes: Buffer): string {
  const hex = bytes.toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

export function uuidToBytes(text: string): Buffer {
  if (!UUID_TEXT.test(text)) throw xdrEncodeError(`not a UUID: ${text}`, { uuid: text });
  return Buffer.from(text.replaceAll('-', ''), 'hex');
}

/** remote_uuid: 16 bytes on the wire, the canonical text form in values. */
export const remoteUuid: XdrType<string> = xdrMapped(
  xdrFixedOpaque(16),
  uuidToText,
  uuidToBytes,
  'remote_uuid',
);

export const remoteDomainRef = xdrStruct(
  { name: remoteNonnullString, uuid: remoteUuid, id: xdrInt },
  'remote_nonnull_domain',
);
export type DomainRef = XdrValue<typeof remoteDomainRef>;
export const remoteOptionalDomainRef = xdrOptional(remoteDomainRef);

export const remoteNetworkRef = xdrStruct(
  { name: remoteNonnullString, uuid: remoteUuid },
  'remote_nonnull_network',
);
export type NetworkRef = XdrValue<typeof remoteNetworkRef>;

export const remoteStoragePoolRef = xdrStruct(
  { name: remoteNonnullString, uuid: remoteUuid },
  'remote_nonnull_storage_pool',
);
export type StoragePoolRef = XdrValue<typeof remoteStoragePoolRef>;

export const remoteStorageVolRef = xdrStruct(
  { pool: remoteNonnullString, name: remoteNonnullString, key: remoteNonnullString },
  'remote_nonnull_storage_vol',
);
export type StorageVolRef = XdrValue<typeof remoteStorageVolRef>;

export const remoteSnapshotRef = xdrStruct(
  { name: remoteNonnullString, dom: remoteDomainRef },
  'remote_nonnull_domain_snapshot',
);
export type SnapshotRef = XdrValue<typeof remoteSnapshotRef>;

/** A domain checkpoint: its name and its domain (as a snapshot is named). */
export const remoteCheckpointRef = xdrStruct(
  { name: remoteNonnullString, dom: remoteDomainRef },
  'remote_nonnull_domain_checkpoint',
);
export type CheckpointRef = XdrValue<typeof remoteCheckpointRef>;

/** VIR_TYPED_PARAM_* discriminants. */
export const TYPED_PARAM = {
  int: 1,
  uint: 2,
  llong: 3,
  ullong: 4,
  double: 5,
  boolean: 6,
  string: 7,
} as const;

const typedBoolean: XdrType<boolean> = xdrMapped(
  xdrInt,
  (wire) => wire !== 0,
  (value) => (value ? 1 : 0),
  'typed boolean',
);

export const remoteTypedParamValue = xdrUnion(
  {
    [TYPED_PARAM.int]: xdrInt,
    [TYPED_PARAM.uint]: xdrUint,
    [TYPED_PARAM.llong]: xdrHyper,
    [TYPED_PARAM.ullong]: xdrUhyper,
    [TYPED_PARAM.double]: xdrDouble,
    [TYPED_PARAM.boolean]: typedBoolean,
    [TYPED_PARAM.string]: remoteNonnullString,
  },
  'remote_typed_param_value',
);

export const remoteTypedParam = xdrStruct(
  { field: xdrString(80), value: remoteTypedParamValue },
  'remote_typed_param',
);
export type TypedParam = XdrValue<typeof remoteTypedParam>;
export type TypedParamScalar = number | bigint | boolean | string;

export const remoteTypedParams = xdrArray(remoteTypedParam, REMOTE_TYPED_PARAMS_MAX);

/** Builders for typed parameters, so callers do not spell discriminants. */
export const typedParam = {
  int: (field: string, value: number): TypedParam => ({
    field,
    value: { kind: TYPED_PARAM.int, value },
  }),
  uint: (field: string, value: number): TypedParam => ({
    field,
    value: { kind: TYPED_PARAM.uint, value },
  }),
  llong: (field: string, value: bigint): TypedParam => ({
    field,
    value: { kind: TYPED_PARAM.llong, value },
  }),
  ullong: (field: string, value: bigint): TypedParam => ({
    field,
    value: { kind: TYPED_PARAM.ullong, value },
  }),
  double: (field: string, value: number): TypedParam => ({
    field,
    value: { kind: TYPED_PARAM.double, value },
  }),
  boolean: (field: string, value: boolean): TypedParam => ({
    field,
    value: { kind: TYPED_PARAM.boolean, value },
  }),
  string: (field: string, value: string): TypedParam => ({
    field,
    value: { kind: TYPED_PARAM.string, value },
  }),
};

/**
 * Typed parameters as a plain record. A field may repeat (e.g. migrate_disks);
 * the last value wins here: use the array form when repetition matters.
 */
export function typedParamsToRecord(
  params: readonly TypedParam[],
): Record<string, TypedParamScalar> {
  const record: Record<string, TypedParamScalar> = {};
  for (const param of params) record[param.field] = param.value.value;
  return record;
}

/** Reads a numeric typed parameter as a JS number (bigints above 2^53 are refused). */
export function typedParamNumber(params: readonly TypedParam[], field: string): number | undefined {
  const found = params.find((p) => p.field === field);
  if (!found) return undefined;
  const value = found.value.value;
  if (typeof value === 'number') return value;
  if (typeof value === 'bigint') {
    if (value > BigInt(Number.MAX_SAFE_INTEGER) || value < -BigInt(Number.MAX_SAFE_INTEGER)) {
      throw xdrDecodeError(`typed parameter ${field} = ${value} does not fit a JS number`);
    }
    return Number(value);
  }
  return undefined;
}
