/**
 * libvirt errors (remote_error) as ZenithErrors with code LIBVIRT_RPC_ERROR. The
 * details keep libvirt's own numbers (virErrorNumber, virErrorDomain, level),
 * so callers branch on `details.code`, never on the message.
 */
import { ZenithError } from '../../core/errors.js';
import { xdrInt, xdrOptional, xdrStruct, type XdrValue } from '../xdr/xdr-types.js';
import { remoteNetworkRef, remoteDomainRef, remoteString } from './remote-types.js';

export const remoteError = xdrStruct(
  {
    code: xdrInt,
    domain: xdrInt,
    message: remoteString,
    level: xdrInt,
    dom: xdrOptional(remoteDomainRef),
    str1: remoteString,
    str2: remoteString,
    str3: remoteString,
    int1: xdrInt,
    int2: xdrInt,
    net: xdrOptional(remoteNetworkRef),
  },
  'remote_error',
);
export type RemoteError = XdrValue<typeof remoteError>;

/** A selection of virErrorNumber values (libvirt's include/libvirt/virterror.h); they never change. */
export const VIR_ERR = {
  INTERNAL_ERROR: 1,
  NO_SUPPORT: 3,
  NO_CONNECT: 5,
  INVALID_CONN: 6,
  INVALID_DOMAIN: 7,
  INVALID_ARG: 8,
  OPERATION_FAILED: 9,
  XML_ERROR: 27,
  DOM_EXIST: 28,
  OPERATION_DENIED: 29,
  SYSTEM_ERROR: 38,
  RPC: 39,
  NO_DOMAIN: 42,
  NO_NETWORK: 43,
  AUTH_FAILED: 45,
  NO_STORAGE_POOL: 49,
  NO_STORAGE_VOL: 50,
  OPERATION_INVALID: 55,
  NO_INTERFACE: 57,
  NO_SECRET: 66,
  CONFIG_UNSUPPORTED: 67,
  OPERATION_TIMEOUT: 68,
  NO_DOMAIN_SNAPSHOT: 72,
  ARGUMENT_UNSUPPORTED: 74,
  OPERATION_ABORTED: 78,
  OPERATION_UNSUPPORTED: 84,
  AGENT_UNRESPONSIVE: 86,
  RESOURCE_BUSY: 87,
  ACCESS_DENIED: 88,
  STORAGE_VOL_EXIST: 90,
} as const;

/** virErrorLevel. */
export const VIR_ERR_LEVEL = { none: 0, warning: 1, error: 2 } as const;

export interface LibvirtErrorDetails {
  /** virErrorNumber, e.g. VIR_ERR.NO_DOMAIN (42). */
  code: number;
  /** virErrorDomain: which part of libvirt raised it. */
  domain: number;
  message: string;
  level: number;
  [key: string]: unknown;
}

export function libvirtError(error: RemoteError, procedure?: string): ZenithError {
  const message = error.message ?? `libvirt error ${error.code}`;
  const details: LibvirtErrorDetails = {
    code: error.code,
    domain: error.domain,
    message,
    level: error.level,
  };
  if (procedure) details.procedure = procedure;
  return new ZenithError('LIBVIRT_RPC_ERROR', message, details);
}

/** The libvirt error number of a LIBVIRT_RPC_ERROR, or undefined for anything else. */
export function libvirtErrorCode(error: unknown): number | undefined {
  if (!(error instanceof ZenithError) || error.code !== 'LIBVIRT_RPC_ERROR') return undefined;
  const code = error.details.code;
  return typeof code === 'number' ? code : undefined;
}

/** True when libvirt answered "no such domain" (VIR_ERR_NO_DOMAIN). */
export function isNoDomainError(error: unknown): boolean {
  return libvirtErrorCode(error) === VIR_ERR.NO_DOMAIN;
}

/** True when the object is in the wrong state for the call (VIR_ERR_OPERATION_INVALID), e.g. destroying a stopped domain. */
export function isOperationInvalidError(error: unknown): boolean {
  return libvirtErrorCode(error) === VIR_ERR.OPERATION_INVALID;
}
