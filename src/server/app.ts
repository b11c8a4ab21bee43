/**
 * The HTTP server: thin. Validate (schemas), authenticate, authorize, call a
 * service, audit, answer.
 */
import swagger from '@fastify/swagger';
import websocket from '@fastify/websocket';
import Fastify, { type FastifyInstance } from 'fastify';
import { maxPathIdLength } from '../api/common.js';
import { ErrorBody } from '../api/errors.js';
import { ZenithError } from '../core/errors.js';
import type { ControlPlane } from '../app/control-plane.js';
import { installAnswerCheck, type AnswerLog } from './answer-check.js';
import { installAuditHook } from './audit-hook.js';
import { installAuth } from './auth.js';
import { installJsonBodyParser } from './json-body.js';
import { sendError } from './errors.js';
import { accountingRoutes } from './routes/accounting.js';
import { accessRoutes } from './routes/access.js';
import { quotaRoutes } from './routes/quotas.js';
import { accessReportRoutes } from './routes/access-reports.js';
import { agentRoutes } from './routes/agents.js';
import { auditRoutes } from './routes/audit.js';
import { consoleRoutes } from './routes/consoles.js';
import { authRoutes } from './routes/auth.js';
import { connectionRoutes } from './routes/connections.js';
import { eventRoutes } from './routes/events.js';
import { identityRoutes } from './routes/identities.js';
import { inventoryRoutes } from './routes/inventory.js';
import { resourceGroupMemberRoutes } from './routes/resource-group-members.js';
import { metricsHistoryRoutes } from './routes/metrics-history.js';
import { haRoutes } from './routes/ha.js';
import { haAdmissionRoutes } from './routes/ha-admission.js';
import { backupJobRoutes } from './routes/backup-jobs.js';
import { backupRoutes } from './routes/backups.js';
import { replicationRoutes } from './routes/replication.js';
import { machineRoutes } from './routes/machines.js';
import { placementRoutes } from './routes/placement.js';
import { policyRoutes } from './routes/policies.js';
import { snapshotRoutes } from './routes/snapshots.js';
import { imageRoutes } from './routes/images.js';
import { systemRoutes } from './routes/system.js';
import { taskRoutes } from './routes/tasks.js';
import { vmActionRoutes } from './routes/vm-actions.js';
import { vmCapabilityRoutes } from './routes/vm-capabilities.js';
import { serializeRequest } from './request-log.js';
import type { Api } from './route.js';
import { requestValidatorFactory } from './request-validation.js';
import { defaultWebRoot, webConsoleRoutes } from './web-console.js';

export type App = FastifyInstance;

export interface AppOptions {
  /** Largest accepted request body. */
  bodyLimit?: number;
  /** The built web console (web/dist); null serves none. */
  webRoot?: string | null;
  /** Check every answer against the contract and report it here (tests). */
  answerLog?: AnswerLog;
}

export async function buildApp(plane: ControlPlane, options: AppOptions = {}): Promise<App> {
  // Typed as the plain instance: route modules add the TypeBox provider themselves.
  const app = Fastify({
    // Request lines carry the URL: credentials in it (console tickets) are redacted first.
    loggerInstance: plane.logger.child(
      { component: 'http' },
      { serializers: { req: serializeRequest } },
    ),
    bodyLimit: options.bodyLimit ?? 1024 * 1024,
    trustProxy: false,
    // Path ids are documented up to maxPathIdLength characters; the router measures a segment still
    // percent-encoded, where one character takes up to 12 (4 UTF-8 bytes as %XX). Longer is a 414,
    // and anything over the schema's length within that a 400 naming the parameter.
    routerOptions: { maxParamLength: maxPathIdLength * 12 },
    // Errors raised by the router itself (bad URL encoding, overlong parameters) leave as coded errors too.
    frameworkErrors: (error, request, reply) => {
      sendError(error, request, reply);
    },
    // Query strings, path parameters and headers are coerced to their schema's types; JSON bodies are not.
    schemaController: { compilersFactory: { buildValidator: requestValidatorFactory() } },
    genReqId: () => `req_${Math.random().toString(36).slice(2, 12)}`,
  }) as unknown as FastifyInstance;

  // One error body, referenced by every operation's error answers (and named so in the document).
  app.addSchema({ ...ErrorBody, $id: 'ErrorBody' });
  await app.register(swagger, {
    refResolver: {
      buildLocalReference: (json, _baseUri, _fragment, i) =>
        typeof json.$id === 'string' ? json.$id : `def-${i}`,
    },
    openapi: {
      openapi: '3.0.3',
      info: {
        title: 'Zenith API',
        version: '1',
        description: 'One control plane for virtual machines on heterogeneous hypervisors.',
      },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
      security: [{ bearer: [] }],
    },
  });

  await app.register(websocket, { options: { maxPayload: 1024 * 1024 } });
  app.setErrorHandler((error, request, reply) => sendError(error, request, reply));
  app.setNotFoundHandler((request, reply) =>
    sendError(
      new ZenithError(
        'ZEN_ROUTE_NOT_FOUND',
        `no route ${request.method} ${request.url.split('?')[0]}`,
      ),
      request,
      reply,
    ),
  );
  // JSON only: no form or plain-text bodies.
  app.removeContentTypeParser(['text/plain']);
  installAuth(app, plane);
  // What a credential keeps open (event streams, consoles) would hold app.close() forever: the
  // server ends them first, each with a last word saying why.
  app.addHook('preClose', async () => {
    plane.sessions.live.endAll({
      code: 'ZEN_SHUTTING_DOWN',
      message: 'the server is stopping; connect again',
    });
  });

  installJsonBodyParser(app);
  installAuditHook(app, plane);
  if (options.answerLog) installAnswerCheck(app, options.answerLog);

  await app.register(
    async (scoped) => {
      // The route modules register typed routes (TypeBox) on this scope.
      const api = scoped as unknown as Api;
      await systemRoutes(api, plane);
      await authRoutes(api, plane);
      await inventoryRoutes(api, plane);
      await resourceGroupMemberRoutes(api, plane);
      await metricsHistoryRoutes(api, plane);
      await vmActionRoutes(api, plane);
      await snapshotRoutes(api, plane);
      await imageRoutes(api, plane);
      await vmCapabilityRoutes(api, plane);
      await connectionRoutes(api, plane);
      await taskRoutes(api, plane);
      await eventRoutes(api, plane);
      await identityRoutes(api, plane);
      await accessRoutes(api, plane);
      await quotaRoutes(api, plane);
      await accessReportRoutes(api, plane);
      await auditRoutes(api, plane);
      await agentRoutes(api, plane);
      await consoleRoutes(api, plane);
      await accountingRoutes(api, plane);
      await policyRoutes(api, plane);
      await placementRoutes(api, plane);
      await machineRoutes(api, plane);
      await haRoutes(api, plane);
      await haAdmissionRoutes(api, plane);
      await backupRoutes(api, plane);
      await backupJobRoutes(api, plane);
      await replicationRoutes(api, plane);
    },
    { prefix: '/api/v1' },
  );
  const webRoot = options.webRoot === undefined ? defaultWebRoot : options.webRoot;
  if (webRoot) await webConsoleRoutes(app, webRoot);
  await app.ready();
  return app;
}
