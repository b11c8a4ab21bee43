/**
 * libvirt's refusals as Zenith codes, so the API answers the same code for
 * the same situation whatever the hypervisor family: a missing domain is
 * ZEN_NOT_FOUND, a domain in the wrong state ZEN_INVALID_STATE, an operation
 * the hypervisor lacks ZEN_UNSUPPORTED. libvirt's own number and message stay
 * in details (libvirtCode, libvirtMessage).
 */
import { ZenithError, type ErrorCode } from '../../core/errors.js';
import { VIR_ERR, libvirtErrorCode } from '../../protocols/libvirt/remote-error.js';

const byLibvirtCode: Partial<Record<number, ErrorCode>> = {
  [VIR_ERR.NO_DOMAIN]: 'ZEN_NOT_FOUND',
  [VIR_ERR.NO_DOMAIN_SNAPSHOT]: 'ZEN_NOT_FOUND',
  [VIR_ERR.NO_NETWORK]: 'ZEN_NOT_FOUND',
  [VIR_ERR.NO_STORAGE_POOL]: 'ZEN_NOT_FOUND',
  [VIR_ERR.NO_STORAGE_VOL]: 'ZEN_NOT_FOUND',
  [VIR_ERR.OPERATION_INVALID]: 'ZEN_INVALID_STATE',
  [VIR_ERR.RESOURCE_BUSY]: 'ZEN_INVALID_STATE',
  [VIR_ERR.DOM_EXIST]: 'ZEN_CONFLICT',
  [VIR_ERR.STORAGE_VOL_EXIST]: 'ZEN_CONFLICT',
  [VIR_ERR.NO_SUPPORT]: 'ZEN_UNSUPPORTED',
  [VIR_ERR.OPERATION_UNSUPPORTED]: 'ZEN_UNSUPPORTED',
  [VIR_ERR.ARGUMENT_UNSUPPORTED]: 'ZEN_UNSUPPORTED',
  [VIR_ERR.CONFIG_UNSUPPORTED]: 'ZEN_UNSUPPORTED',
  [VIR_ERR.OPERATION_ABORTED]: 'ZEN_TASK_CANCELLED',
  [VIR_ERR.OPERATION_TIMEOUT]: 'ZEN_TIMEOUT',
};

/** A failed call as the error to report for `action` (e.g. "start web-1"). */
export function translateLibvirtError(error: unknown, action: string): ZenithError {
  if (!(error instanceof ZenithError))
    return new ZenithError('ZEN_DRIVER_ERROR', `${action} failed: ${String(error)}`);
  const libvirtCode = libvirtErrorCode(error);
  if (libvirtCode === undefined) {
    // Already a Zenith code, or the connection itself failed (closed, timed out, protocol).
    if (error.code.startsWith('ZEN_') || error.code === 'LIBVIRT_XML_INVALID') return error;
    return new ZenithError(
      error.code === 'LIBVIRT_RPC_TIMEOUT'
        ? 'ZEN_TIMEOUT'
        : error.code === 'LIBVIRT_RPC_CLOSED'
          ? 'ZEN_CONNECTION_DISCONNECTED'
          : 'ZEN_CONNECTION_FAILED',
      `${action} failed: ${error.message}`,
      { protocolCode: error.code, ...error.details },
      { cause: error },
    );
  }
  return new ZenithError(
    byLibvirtCode[libvirtCode] ?? 'ZEN_DRIVER_ERROR',
    `${action}: ${error.message}`,
    { libvirtCode, libvirtMessage: error.message, libvirtDomain: error.details.domain },
    { cause: error },
  );
}

/** Runs a call and reports its failure as a Zenith error for `action`. */
export async function attempt<T>(action: string, work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (error) {
    throw translateLibvirtError(error, action);
  }
}
