/**
 * Holding the server to its contract (tests turn it on): every answer of a route is checked
 * against the schema its operation declares for the status it has, before the schema serializes
 * it. A status the operation does not declare, a field of the wrong type, or a field the schema
 * does not know (which serialization would silently drop) is reported, with the route.
 */
import type { FastifyInstance } from 'fastify';
import type { TSchema } from 'typebox';
import { Value } from 'typebox/value';
import { ErrorBody, errorStatusesOf } from '../api/errors.js';
import type { OperationSpec } from '../api/operation.js';

export interface AnsweredRoute {
  method: string;
  /** The route's path as declared (/api/v1/vms/:id). */
  url: string;
  status: number;
}

export interface AnswerLog {
  /** Every answer of a route serving an operation. */
  answered(answer: AnsweredRoute): void;
  /** An answer that does not fit what the operation declares for its status. */
  misfit(answer: AnsweredRoute, problems: string[]): void;
}

/** The schema with every object closed that does not say otherwise: what serialization keeps. */
function closed(schema: unknown): unknown {
  if (Array.isArray(schema)) return schema.map(closed);
  if (schema === null || typeof schema !== 'object') return schema;
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(schema))
    out[key] =
      key === 'properties' || key === 'patternProperties'
        ? Object.fromEntries(
            Object.entries(value as Record<string, unknown>).map(([name, property]) => [
              name,
              closed(property),
            ]),
          )
        : key === 'const' || key === 'enum' || key === 'default'
          ? value
          : closed(value);
  if ('properties' in out && !('additionalProperties' in out)) out.additionalProperties = false;
  return out;
}

const closedSchemas = new WeakMap<object, TSchema>();
function closedOf(schema: TSchema): TSchema {
  let found = closedSchemas.get(schema);
  if (!found) {
    found = closed(schema) as TSchema;
    closedSchemas.set(schema, found);
  }
  return found;
}

/** The schema the operation declares for an answer with this status, if it declares the status. */
export function declaredAnswer(spec: OperationSpec, status: number): TSchema | undefined {
  const success = (spec.success as Partial<Record<number, TSchema>>)[status];
  return success ?? (errorStatusesOf(spec).includes(status as never) ? ErrorBody : undefined);
}

/** What is wrong with a JSON answer of `spec` with this status (nothing: an empty list). */
export function misfitsOf(spec: OperationSpec, status: number, payload: unknown): string[] {
  const schema = declaredAnswer(spec, status);
  if (!schema) return [`answered ${status}, which the operation does not declare`];
  return [...Value.Errors(closedOf(schema), payload)]
    .slice(0, 5)
    .map((error) => `${error.instancePath || '/'} ${error.message}`);
}

export function installAnswerCheck(app: FastifyInstance, log: AnswerLog): void {
  const answerOf = (method: string, url: string | undefined, status: number) =>
    url === undefined ? undefined : { method, url, status };
  // The shape of JSON answers (a CSV text or an empty 204 is not serialized, so not seen here).
  app.addHook('preSerialization', async (request, reply, payload) => {
    const spec = request.routeOptions.config.operation;
    const answer = answerOf(request.method, request.routeOptions.url, reply.statusCode);
    if (spec && answer && declaredAnswer(spec, reply.statusCode)) {
      const problems = misfitsOf(spec, reply.statusCode, payload);
      if (problems.length > 0) log.misfit(answer, problems);
    }
    return payload;
  });
  // The status of every answer.
  app.addHook('onResponse', async (request, reply) => {
    const spec = request.routeOptions.config.operation;
    const answer = answerOf(request.method, request.routeOptions.url, reply.statusCode);
    if (!spec || !answer) return;
    log.answered(answer);
    if (!declaredAnswer(spec, reply.statusCode))
      log.misfit(answer, [`answered ${reply.statusCode}, which the operation does not declare`]);
  });
}
