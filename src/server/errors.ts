/** Every failure leaves the server as { error: { code, message, details } } with a catalogued code. */
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { isZenithError, ZenithError, type ErrorCode } from '../core/errors.js';

const fastifyCodes: Record<string, ErrorCode> = {
  FST_ERR_CTP_BODY_TOO_LARGE: 'ZEN_PAYLOAD_TOO_LARGE',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'ZEN_UNSUPPORTED_MEDIA_TYPE',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'ZEN_BAD_REQUEST',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'ZEN_BAD_REQUEST',
  FST_ERR_CTP_INVALID_JSON_BODY: 'ZEN_BAD_REQUEST',
  FST_ERR_MAX_PARAM_LENGTH: 'ZEN_URI_TOO_LONG',
  FST_ERR_BAD_URL: 'ZEN_BAD_REQUEST',
  FST_ERR_ASYNC_CONSTRAINT: 'ZEN_BAD_REQUEST',
};

export function toZenithError(error: unknown): ZenithError {
  if (isZenithError(error)) return error;
  const fastifyError = error as Partial<FastifyError> & {
    validation?: { instancePath?: string; message?: string; params?: unknown }[];
    validationContext?: string;
  };
  if (fastifyError.validation) {
    const issues = fastifyError.validation.map((issue) => ({
      path: `${fastifyError.validationContext ?? ''}${issue.instancePath ?? ''}`,
      message: issue.message ?? 'invalid',
      params: issue.params,
    }));
    const first = issues[0];
    return new ZenithError(
      'ZEN_BAD_REQUEST',
      first ? `${first.path || 'request'} ${first.message}` : 'the request is invalid',
      { issues },
    );
  }
  const mapped = fastifyError.code ? fastifyCodes[fastifyError.code] : undefined;
  if (mapped) return new ZenithError(mapped, fastifyError.message ?? 'bad request');
  if (error instanceof SyntaxError)
    return new ZenithError('ZEN_BAD_REQUEST', `the body is not valid JSON: ${error.message}`);
  if (
    typeof fastifyError.statusCode === 'number' &&
    fastifyError.statusCode >= 400 &&
    fastifyError.statusCode < 500
  ) {
    return new ZenithError('ZEN_BAD_REQUEST', fastifyError.message ?? 'bad request', {
      fastifyCode: fastifyError.code,
    });
  }
  return new ZenithError(
    'ZEN_INTERNAL',
    'an unexpected error occurred; it was logged with the request id',
  );
}

export function sendError(
  error: unknown,
  request: FastifyRequest,
  reply: FastifyReply,
): FastifyReply {
  const coded = toZenithError(error);
  if (coded.code === 'ZEN_INTERNAL') request.log.error({ err: error }, 'unexpected error');
  reply.zenithErrorCode = coded.code;
  const retryAfter = coded.details.retryAfterSeconds;
  if (typeof retryAfter === 'number') void reply.header('retry-after', String(retryAfter));
  const body = coded.toJSON();
  if (coded.code === 'ZEN_INTERNAL') body.error.details = { requestId: request.id };
  return reply.status(coded.status).send(body);
}
