/**
 * Every mutating request leaves an audit record before its answer goes out (task routes write theirs
 * with the task). The trail fails closed: a record that cannot be written is never dropped quietly.
 * A request that ran and whose record cannot be written answers 503 ZEN_AUDIT_UNAVAILABLE instead
 * of its own answer (the record goes to the log, at error level), and mutating requests after it are
 * refused before they run until a record can be written again (each refusal's own record is the
 * attempt).
 */
import type { FastifyInstance } from 'fastify';
import { ZenithError } from '../core/errors.js';
import { withoutSecrets } from '../core/redact.js';
import type { AuditInput } from '../services/audit/audit-service.js';
import type { ControlPlane } from '../app/control-plane.js';
import { actorOf } from './auth.js';

const mutatingMethods = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

export function installAuditHook(app: FastifyInstance, plane: ControlPlane): void {
  /** Set while the last attempt to write a record failed. */
  let failing = false;

  app.addHook('preHandler', async (request) => {
    if (failing && mutatingMethods.has(request.method) && request.routeOptions.url)
      throw new ZenithError(
        'ZEN_AUDIT_UNAVAILABLE',
        'the audit trail cannot be written now, so changes are refused; try again later',
      );
  });

  app.addHook('onSend', async (request, reply, payload) => {
    const config = request.routeOptions.config;
    if (!mutatingMethods.has(request.method) || !request.routeOptions.url) return payload;
    // Task routes audit what they accept together with the task; refusals are audited here.
    if (config.audit === false && reply.statusCode < 400) return payload;
    if (!request.principal && reply.statusCode === 401) return payload;
    const actor = request.principal
      ? actorOf(request.principal)
      : { id: 'anonymous', kind: 'anonymous', name: 'anonymous' };
    const params = request.params as Record<string, unknown> | undefined;
    const record: AuditInput = {
      actor,
      action: config.audit || `${request.method} ${request.routeOptions.url}`,
      targetId: typeof params?.id === 'string' ? params.id : null,
      params: { body: request.body ?? null, ...(params ?? {}) },
      result: reply.statusCode < 400 ? 'succeeded' : reply.statusCode === 403 ? 'denied' : 'failed',
      errorCode: reply.zenithErrorCode,
      requestId: request.id,
    };
    try {
      await plane.audit.append([record]);
      failing = false;
      return payload;
    } catch (error) {
      failing = true;
      // Not silent: the record that could not be kept goes to the log whole (its params redacted).
      request.log.error(
        { err: error, audit: { ...record, params: withoutSecrets(record.params) } },
        'audit append failed',
      );
      // A refusal changed nothing and stays what it was; a change that ran is not confirmed.
      if (reply.statusCode >= 400) return payload;
      const withheld = new ZenithError(
        'ZEN_AUDIT_UNAVAILABLE',
        'the audit trail could not be written, so this answer is withheld: the request may have taken effect (the server log has its record); changes are refused until the trail can be written',
        { requestId: request.id },
      );
      reply.zenithErrorCode = withheld.code;
      void reply.code(withheld.status).type('application/json; charset=utf-8');
      return JSON.stringify(withheld.toJSON());
    }
  });
}
