/** Compliance reports (audit.read): effective access, access changes and actions by identity, as JSON or CSV. */
import { Type, type Static } from 'typebox';
import { IdOrName, Items } from './common.js';
import { operation } from './operation.js';

const Format = Type.Optional(Type.String({ enum: ['json', 'csv'], default: 'json' }));
const Period = {
  from: Type.Integer({ minimum: 0, description: 'Start, ms since the epoch (inclusive)' }),
  to: Type.Integer({ minimum: 0, description: 'End, ms since the epoch (exclusive)' }),
};

export const EffectiveAccessRow = Type.Object({
  identityId: Type.String(),
  identityName: Type.String(),
  identityKind: Type.String(),
  permission: Type.String(),
  /** null: everything. */
  scopeId: Type.Union([Type.String(), Type.Null()]),
  scopeName: Type.String(),
  scopeKind: Type.Union([Type.String(), Type.Null()]),
  /** `identity-role`: the identity's own predefined role, which holds everywhere. */
  bindingId: Type.String(),
  role: Type.String(),
  /** The groups from the identity to the binding's subject, outermost last (names). */
  viaGroups: Type.Array(Type.String()),
});
export type EffectiveAccessRow = Static<typeof EffectiveAccessRow>;

export const AuditReportRow = Type.Object({
  seq: Type.Number(),
  ts: Type.Number(),
  actorId: Type.String(),
  actorName: Type.String(),
  action: Type.String(),
  targetId: Type.Union([Type.String(), Type.Null()]),
  result: Type.String(),
  errorCode: Type.Union([Type.String(), Type.Null()]),
  params: Type.Unknown(),
});
export type AuditReportRow = Static<typeof AuditReportRow>;

export const effectiveAccessReport = operation({
  method: 'GET',
  path: '/access/reports/effective',
  auth: 'audit.read',
  tag: 'access',
  summary:
    'Who holds which permission where: every enabled identity, flattened through nested groups, with the binding and groups it comes through',
  query: Type.Object(
    {
      identity: Type.Optional(IdOrName),
      permission: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
      scope: Type.Optional(
        Type.String({
          minLength: 1,
          maxLength: 200,
          description: 'Only grants that reach this object (by id or name)',
        }),
      ),
      format: Format,
    },
    { additionalProperties: false },
  ),
  success: { 200: Items(EffectiveAccessRow) },
  errors: [404, 409, 422],
  csv: true,
});

export const accessChangesReport = operation({
  method: 'GET',
  path: '/access/reports/changes',
  auth: 'audit.read',
  tag: 'access',
  summary:
    'Changes to access in a period, from the audit trail: groups and members, roles, bindings, identities, agent revocations, quotas',
  query: Type.Object({ ...Period, format: Format }, { additionalProperties: false }),
  success: { 200: Items(AuditReportRow) },
  errors: [422],
  csv: true,
});

export const actionsReport = operation({
  method: 'GET',
  path: '/access/reports/actions',
  auth: 'audit.read',
  tag: 'access',
  summary: 'Everything one identity did or tried in a period, from the audit trail',
  query: Type.Object(
    { identity: IdOrName, ...Period, format: Format },
    { additionalProperties: false },
  ),
  success: { 200: Items(AuditReportRow) },
  errors: [404, 409, 422],
  csv: true,
});
