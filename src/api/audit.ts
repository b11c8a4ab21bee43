/** The tamper-evident audit trail: read-only records, and the verification of their hash chain. */
import { Type, type Static } from 'typebox';
import { operation } from './operation.js';

export const AuditRecordView = Type.Object({
  seq: Type.Number(),
  ts: Type.Number(),
  actorId: Type.String(),
  actorKind: Type.String(),
  actorName: Type.String(),
  action: Type.String(),
  targetId: Type.Union([Type.String(), Type.Null()]),
  params: Type.Unknown(),
  result: Type.String(),
  errorCode: Type.Union([Type.String(), Type.Null()]),
  requestId: Type.Union([Type.String(), Type.Null()]),
  prevHash: Type.String(),
  hash: Type.String(),
});
export type AuditRecordView = Static<typeof AuditRecordView>;

export const VerifyResult = Type.Object({
  ok: Type.Boolean(),
  records: Type.Number(),
  /** The first record that does not verify, and how. */
  firstBad: Type.Optional(
    Type.Object({
      seq: Type.Number(),
      problem: Type.Union([
        Type.Literal('edited'),
        Type.Literal('deleted'),
        Type.Literal('reordered'),
      ]),
      detail: Type.String(),
    }),
  ),
  durationMs: Type.Number(),
});
export type VerifyResult = Static<typeof VerifyResult>;

export const listAudit = operation({
  method: 'GET',
  path: '/audit',
  auth: 'audit.read',
  tag: 'audit',
  summary: 'Audit records, newest first (read-only: records cannot be changed through the API)',
  query: Type.Object(
    {
      actorId: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
      actorName: Type.Optional(Type.String({ maxLength: 200 })),
      targetId: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
      action: Type.Optional(Type.String({ maxLength: 64, description: 'Action prefix, e.g. vm.' })),
      since: Type.Optional(Type.Integer({ minimum: 0 })),
      until: Type.Optional(Type.Integer({ minimum: 0 })),
      cursor: Type.Optional(
        Type.Integer({ minimum: 1, description: 'Sequence number: records before it' }),
      ),
      limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, default: 100 })),
    },
    { additionalProperties: false },
  ),
  success: {
    200: Type.Object({
      items: Type.Array(AuditRecordView),
      nextCursor: Type.Union([Type.Number(), Type.Null()]),
    }),
  },
});

export const verifyAudit = operation({
  method: 'POST',
  path: '/audit/verify',
  auth: 'audit.read',
  tag: 'audit',
  summary:
    'Re-compute the hash chain; names the first record that was edited, deleted or reordered',
  success: { 200: VerifyResult },
});
