/** Compliance reports (audit.read): effective access, access changes and actions by identity, as JSON or CSV. */
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { FastifyInstance } from 'fastify';
import { Type } from 'typebox';
import { toCsv } from '../../core/csv.js';
import type { ControlPlane } from '../../app/control-plane.js';
import type { AuditReportRow } from '../../services/identity/access-report.js';

const Format = Type.Optional(Type.String({ enum: ['json', 'csv'], default: 'json' }));
const Period = {
  from: Type.Integer({ minimum: 0, description: 'Start, ms since the epoch (inclusive)' }),
  to: Type.Integer({ minimum: 0, description: 'End, ms since the epoch (exclusive)' }),
};
const csvType = 'text/csv; charset=utf-8';

function auditCsv(rows: AuditReportRow[]): string {
  return toCsv(
    ['seq', 'time', 'actor', 'actor_id', 'action', 'target', 'result', 'error_code', 'params'],
    rows.map((r) => [
      r.seq,
      new Date(r.ts).toISOString(),
      r.actorName,
      r.actorId,
      r.action,
      r.targetId,
      r.result,
      r.errorCode,
      JSON.stringify(r.params),
    ]),
  );
}

export async function accessReportRoutes(
  root: FastifyInstance,
  plane: ControlPlane,
): Promise<void> {
  const app = root.withTypeProvider<TypeBoxTypeProvider>();
  const reports = plane.accessReports;
  const config = { permission: 'audit.read' } as const;

  app.get(
    '/access/reports/effective',
    {
      config,
      schema: {
        tags: ['access'],
        summary:
          'Who holds which permission where: every enabled identity, flattened through nested groups, with the binding and groups it comes through',
        querystring: Type.Object(
          {
            identity: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
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
      },
    },
    async (request, reply) => {
      const { format, ...filter } = request.query;
      const rows = await reports.effectiveAccess(filter);
      if (format !== 'csv') return { items: rows };
      return reply.type(csvType).send(
        toCsv(
          [
            'identity',
            'identity_id',
            'identity_kind',
            'permission',
            'scope',
            'scope_id',
            'scope_kind',
            'binding',
            'role',
            'via_groups',
          ],
          rows.map((r) => [
            r.identityName,
            r.identityId,
            r.identityKind,
            r.permission,
            r.scopeName,
            r.scopeId,
            r.scopeKind,
            r.bindingId,
            r.role,
            r.viaGroups.join(' > '),
          ]),
        ),
      );
    },
  );
  app.get(
    '/access/reports/changes',
    {
      config,
      schema: {
        tags: ['access'],
        summary:
          'Changes to access in a period, from the audit trail: groups and members, roles, bindings, identities, agent revocations, quotas',
        querystring: Type.Object({ ...Period, format: Format }, { additionalProperties: false }),
      },
    },
    async (request, reply) => {
      const rows = await reports.accessChanges(request.query);
      return request.query.format === 'csv'
        ? reply.type(csvType).send(auditCsv(rows))
        : { items: rows };
    },
  );
  app.get(
    '/access/reports/actions',
    {
      config,
      schema: {
        tags: ['access'],
        summary: 'Everything one identity did or tried in a period, from the audit trail',
        querystring: Type.Object(
          {
            identity: Type.String({ minLength: 1, maxLength: 200 }),
            ...Period,
            format: Format,
          },
          { additionalProperties: false },
        ),
      },
    },
    async (request, reply) => {
      const { identity, from, to } = request.query;
      const rows = await reports.actionsBy(identity, { from, to });
      return request.query.format === 'csv'
        ? reply.type(csvType).send(auditCsv(rows))
        : { items: rows };
    },
  );
}
