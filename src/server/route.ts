/**
 * Routes from the contract: each API route serves one operation of src/api, which gives its method,
 * path, permission, input schemas (validation) and every answer it can give, success and error
 * (serialization and the OpenAPI document). A route module adds only where the permission is
 * checked, what is audited, and the handler.
 */
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type {
  ContextConfigDefault,
  FastifyBaseLogger,
  FastifyContextConfig,
  FastifyInstance,
  FastifyReply,
  RawReplyDefaultExpression,
  RawRequestDefaultExpression,
  RawServerDefault,
  RouteGenericInterface,
  RouteHandlerMethod,
} from 'fastify';
import { Type, type TString } from 'typebox';
import { errorStatusMeanings, errorStatusesOf } from '../api/errors.js';
import type { OperationSpec } from '../api/operation.js';

/** The server instance route modules register on (TypeBox types for requests and answers). */
export type Api = FastifyInstance<
  RawServerDefault,
  RawRequestDefaultExpression,
  RawReplyDefaultExpression,
  FastifyBaseLogger,
  TypeBoxTypeProvider
>;

/** Success answers that are JSON, or CSV text when asked (as Fastify types answers by content type). */
type JsonOrCsv<S> = {
  [K in keyof S]: {
    content: { 'application/json': { schema: S[K] }; 'text/csv': { schema: TString } };
  };
};

/** The schemas Fastify sees for an operation's handler: its inputs and its success answers. */
export interface HandlerSchema<O extends OperationSpec> {
  params: O['params'];
  querystring: O['query'];
  body: O['body'];
  response: O['csv'] extends true ? JsonOrCsv<O['success']> : O['success'];
}

export type OperationHandler<O extends OperationSpec> = RouteHandlerMethod<
  RawServerDefault,
  RawRequestDefaultExpression,
  RawReplyDefaultExpression,
  RouteGenericInterface,
  ContextConfigDefault,
  HandlerSchema<O>,
  TypeBoxTypeProvider
>;

/** What a route adds to its operation: where the permission is checked and what is audited. */
export type RouteConfig = Omit<FastifyContextConfig, 'public' | 'permission' | 'operation'> & {
  /**
   * `as-is`: the answer is sent as the handler gives it, the schema only documents it (stored
   * data of older versions, which a schema would reshape). Default: serialized by the schema.
   */
  serialize?: 'as-is';
};

/** The reference to the one error body schema (buildApp adds it to the server). */
const errorBodyRef = { $ref: 'ErrorBody#' } as const;

/** The route schema of an operation: inputs, success and error answers, and what the document says. */
export function routeSchema(spec: OperationSpec): Record<string, unknown> {
  const response: Record<string, unknown> = {};
  for (const [status, schema] of Object.entries(spec.success)) {
    response[status] = spec.csv
      ? {
          description:
            (schema as { description?: string }).description ?? 'JSON, or CSV with format=csv',
          content: {
            'application/json': { schema },
            'text/csv': { schema: Type.String({ description: 'The same rows as CSV' }) },
          },
        }
      : spec.stream
        ? {
            description: 'Server-Sent Events: every `data` is one of these',
            content: { 'text/event-stream': { schema } },
          }
        : spec.binary
          ? {
              description: (schema as { description?: string }).description ?? 'Bytes',
              content: { 'application/octet-stream': { schema } },
            }
          : schema;
  }
  for (const status of errorStatusesOf(spec))
    response[status] = { ...errorBodyRef, description: errorStatusMeanings[status] };
  return {
    tags: [spec.tag],
    summary: spec.summary,
    ...(spec.auth === 'public' ? { security: [] } : {}),
    ...(spec.params ? { params: spec.params } : {}),
    ...(spec.query ? { querystring: spec.query } : {}),
    ...(spec.body ? { body: spec.body } : {}),
    response,
  };
}

/** Registers the route that serves `spec`; authentication and authorization come from the spec. */
export function serve<O extends OperationSpec>(
  app: Api,
  spec: O,
  config: RouteConfig,
  handler: OperationHandler<O>,
): void {
  const { serialize, ...rest } = config;
  app.route({
    method: spec.method,
    url: spec.path,
    ...(serialize === 'as-is'
      ? { serializerCompiler: () => (data: unknown) => JSON.stringify(data) }
      : {}),
    config: {
      ...rest,
      operation: spec,
      ...(spec.auth === 'public' ? { public: true } : { permission: spec.auth }),
    },
    schema: routeSchema(spec) as unknown as HandlerSchema<O>,
    handler,
  });
}

/** Answers 204 with no body at all (no content type either), as an operation declaring NoContent does. */
export function noContent(reply: { status(code: number): unknown }): FastifyReply {
  return (reply as FastifyReply).status(204).send();
}
