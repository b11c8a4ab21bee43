/**
 * The SOAP 1.1 envelope of the VIM API: a request is one method element in
 * the urn:vim25 namespace whose first child is `_this` (the managed object
 * the method is called on); a reply is `<Method>Response` with zero or more
 * `returnval` elements, or a Fault whose detail names the VIM fault type.
 * Pure: strings and trees in, strings and values out.
 */
import { ZenithError, type ErrorCode } from '../../core/errors.js';
import { child, type XmlElement } from './xml-tree.js';
import {
  decodeValue,
  encodeArg,
  obj,
  type MoRef,
  type VimArg,
  type VimObject,
  type VimValue,
} from './vim-values.js';

export const SOAP_ENV = 'http://schemas.xmlsoap.org/soap/envelope/';
export const VIM25 = 'urn:vim25';

export function encodeRequest(
  method: string,
  self: MoRef,
  args: Record<string, VimArg> = {},
): string {
  const out: string[] = [
    '<?xml version="1.0" encoding="UTF-8"?>',
    `<soapenv:Envelope xmlns:soapenv="${SOAP_ENV}" xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">`,
    `<soapenv:Body><${method} xmlns="${VIM25}">`,
  ];
  encodeArg('_this', self, out);
  for (const [name, value] of Object.entries(args)) encodeArg(name, value, out);
  out.push(`</${method}></soapenv:Body></soapenv:Envelope>`);
  return out.join('');
}

/** A fault vSphere answered, as a coded error (details: faultType, message, fault). */
export interface VimFaultDetails {
  faultType: string;
  message: string;
  fault: VimObject;
  [key: string]: unknown;
}

const faultCodes: Record<string, ErrorCode> = {
  NotAuthenticated: 'VIM_NOT_AUTHENTICATED',
  InvalidLogin: 'VIM_INVALID_LOGIN',
  NoPermission: 'VIM_NO_PERMISSION',
  ManagedObjectNotFound: 'VIM_NOT_FOUND',
  InvalidState: 'VIM_INVALID_STATE',
  InvalidPowerState: 'VIM_INVALID_STATE',
  TaskInProgress: 'VIM_INVALID_STATE',
  InvalidHostState: 'VIM_INVALID_STATE',
  VmConfigIncompatibleForFaultTolerance: 'VIM_INVALID_STATE',
  NotSupported: 'VIM_NOT_SUPPORTED',
  MethodNotFound: 'VIM_NOT_SUPPORTED',
  NotImplemented: 'VIM_NOT_SUPPORTED',
  ToolsUnavailable: 'VIM_TOOLS_UNAVAILABLE',
  GuestOperationsUnavailable: 'VIM_TOOLS_UNAVAILABLE',
};

/** The code for a VIM fault type. */
export function faultCode(faultType: string): ErrorCode {
  return faultCodes[faultType] ?? 'VIM_FAULT';
}

export function faultError(
  faultType: string,
  message: string,
  fault: VimObject,
  method?: string,
): ZenithError {
  const details: VimFaultDetails = { faultType, message, fault };
  if (method) details.method = method;
  const text = message || faultType;
  return new ZenithError(faultCode(faultType), method ? `${method}: ${text}` : text, details);
}

/** The returnval elements of a reply to `method`; throws the coded fault when it is one. */
export function decodeReply(root: XmlElement, method: string): XmlElement[] {
  if (root.ns !== SOAP_ENV || root.name !== 'Envelope')
    throw shapeError(method, `the reply is a <${root.name}>, not a SOAP envelope`);
  const body = root.children.find((c) => c.ns === SOAP_ENV && c.name === 'Body');
  if (!body) throw shapeError(method, 'the SOAP envelope has no Body');
  const first = body.children[0];
  if (!first) throw shapeError(method, 'the SOAP Body is empty');
  if (first.ns === SOAP_ENV && first.name === 'Fault') throw decodeFault(first, method);
  if (first.name !== `${method}Response`)
    throw shapeError(method, `the reply is a <${first.name}>, not <${method}Response>`);
  return first.children.filter((c) => c.name === 'returnval');
}

/** One value from the returnval elements: none → undefined, one → it, more → an array. */
export function returnValue(returnvals: XmlElement[]): VimValue | undefined {
  if (returnvals.length === 0) return undefined;
  if (returnvals.length === 1) return decodeValue(returnvals[0]!);
  return returnvals.map(decodeValue);
}

function decodeFault(fault: XmlElement, method: string): ZenithError {
  const message = child(fault, 'faultstring')?.text.trim() ?? '';
  const detail = child(fault, 'detail')?.children[0];
  if (!detail) {
    const code = child(fault, 'faultcode')?.text.trim() ?? 'unknown';
    return faultError(`SoapFault(${code})`, message, {}, method);
  }
  const faultType =
    detail.xsiType?.local ??
    (detail.name.endsWith('Fault') ? detail.name.slice(0, -'Fault'.length) : detail.name);
  return faultError(faultType, message, obj(decodeValue(detail)) ?? {}, method);
}

function shapeError(method: string, message: string): ZenithError {
  return new ZenithError('VIM_PROTOCOL_ERROR', `${method}: ${message}`, { method });
}
