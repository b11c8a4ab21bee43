/**
 * How the API refuses: one error body for every status, with a stable code from the catalogue
 * (docs/errors.md), and the statuses each operation can answer. The coded error itself lives in
 * core (services throw it); clients rebuild it from an answer with errorFromBody.
 */
import { Type } from 'typebox';
import type { ErrorStatus, OperationSpec } from './operation.js';

export {
  errorCatalogue,
  errorFromBody,
  isErrorCode,
  isZenithError,
  ZenithError,
  type ErrorCode,
} from '../core/errors.js';

export const ErrorBody = Type.Object(
  {
    error: Type.Object({
      code: Type.String({ description: 'A stable code (docs/errors.md): branch on it' }),
      message: Type.String(),
      details: Type.Record(Type.String(), Type.Unknown()),
    }),
  },
  { description: 'A refusal or failure, with its stable code' },
);

/** What each error status means, as the document says it; the codes are in docs/errors.md. */
export const errorStatusMeanings: Record<ErrorStatus, string> = {
  400: 'The request is malformed: a field, path parameter or query does not fit (ZEN_BAD_REQUEST, ZEN_BAD_ID, …)',
  401: 'No valid credentials (ZEN_UNAUTHENTICATED, ZEN_TOKEN_EXPIRED, …)',
  403: 'Authenticated, but not allowed this here (ZEN_FORBIDDEN, …)',
  404: 'No such object, or one the caller may not see (ZEN_NOT_FOUND)',
  409: 'It conflicts with the current state (ZEN_CONFLICT, ZEN_INVALID_STATE, ZEN_QUOTA_EXCEEDED, …)',
  413: 'The body is larger than the server accepts (ZEN_PAYLOAD_TOO_LARGE)',
  414: 'A path segment is longer than the server accepts (ZEN_URI_TOO_LONG)',
  415: 'The body is not JSON (ZEN_UNSUPPORTED_MEDIA_TYPE)',
  422: 'Well-formed, but it cannot be done here (ZEN_UNSUPPORTED, ZEN_REPORT_TOO_LARGE, …)',
  429: 'Too many attempts: wait for details.retryAfterSeconds (ZEN_RATE_LIMITED)',
  500: 'An unexpected error, logged with the request id (ZEN_INTERNAL)',
  502: 'The hypervisor or manager behind a connection failed or refused (ZEN_CONNECTION_FAILED, ZEN_DRIVER_ERROR, …)',
  503: 'The store, the audit trail or a directory cannot be reached now: try again (ZEN_STORE_UNAVAILABLE, ZEN_AUDIT_UNAVAILABLE, …)',
  504: 'An operation did not finish in time (ZEN_TIMEOUT, …)',
};

/**
 * Every error status an operation can answer: its own refusals and those that come with its kind —
 * any operation can fail unexpectedly (500) or find the store away (503); one with credentials
 * refuses none (401), one that needs a permission refuses without it (403); path parameters can
 * name nothing (404), name several objects (409: a name they share needs the id), be malformed
 * (400) or too long (414); a query can be malformed (400); a
 * request other than GET may carry a body that is not JSON, too large or malformed (415, 413, 400).
 */
export function errorStatusesOf(spec: OperationSpec): ErrorStatus[] {
  const statuses = new Set<ErrorStatus>([500, 503, ...(spec.errors ?? [])]);
  if (spec.auth !== 'public') statuses.add(401);
  if (spec.auth !== 'public' && spec.auth !== 'self') statuses.add(403);
  if (spec.params) for (const status of [400, 404, 409, 414] as const) statuses.add(status);
  if (spec.query) statuses.add(400);
  if (spec.method !== 'GET') for (const status of [400, 413, 415] as const) statuses.add(status);
  return [...statuses].sort((a, b) => a - b);
}
