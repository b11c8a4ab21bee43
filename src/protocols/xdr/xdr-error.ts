import { ZenithError, type ErrorDetails } from '../../core/errors.js';

/** Bytes that are not a valid XDR encoding of the expected type (truncated, out of range, too long). */
export function xdrDecodeError(message: string, details: ErrorDetails = {}): ZenithError {
  return new ZenithError('XDR_DECODE_ERROR', message, details);
}

/** A value that cannot be encoded as the declared XDR type (a caller bug, not a peer fault). */
export function xdrEncodeError(message: string, details: ErrorDetails = {}): ZenithError {
  return new ZenithError('XDR_ENCODE_ERROR', message, details);
}
