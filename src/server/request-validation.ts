/**
 * Request validation with two ajv instances: query strings, path parameters and headers are strings
 * on the wire and are coerced to their schema's types (`?limit=100` is the number 100); a JSON body
 * already carries its types, so it is validated without coercion (`{"cpus": "4"}` is refused, not
 * read as 4). Otherwise both are configured alike, with the formats Fastify's default compiler adds.
 * Every validator of either kind also refuses numbers that are not finite (see finiteNumbersOnly).
 */
import { AjvCompiler } from '@fastify/ajv-compiler';
import type { FastifyServerOptions } from 'fastify';
import { nonFiniteNumberPath } from './finite-numbers.js';

const sharedOptions = {
  removeAdditional: false,
  // Fact values in requests take a list of types (see FactValueInput), not a union.
  allowUnionTypes: true,
  useDefaults: true,
  allErrors: false,
} as const;

type ValidatorFactory = NonNullable<
  NonNullable<FastifyServerOptions['schemaController']>['compilersFactory']
>['buildValidator'];

interface ValidationIssue {
  instancePath: string;
  schemaPath: string;
  keyword: string;
  params: Record<string, unknown>;
  message: string;
}

/** An ajv validate function as Fastify calls it: errors on the function, schemaEnv when ajv-made. */
interface Validate {
  (data: unknown, context?: unknown): unknown;
  errors?: ValidationIssue[] | null;
  schemaEnv?: unknown;
}

/**
 * ajv coerces `?limit=Infinity` (and `1e400`, `-Infinity`) to ±Infinity and then skips the bounds
 * of integers and numbers for non-finite values, so they would pass; a JSON body's `1e400` parses to
 * Infinity too. Checked here once, after ajv, for every route: a 400 naming the field.
 */
function finiteNumbersOnly(validate: Validate): Validate {
  const checked: Validate = (data, context) => {
    const result = validate(data, context);
    if (result !== true) {
      checked.errors = validate.errors ?? null;
      return result;
    }
    const path = nonFiniteNumberPath(data);
    if (path === null) {
      checked.errors = null;
      return true;
    }
    checked.errors = [
      {
        instancePath: path,
        schemaPath: '#',
        keyword: 'finite',
        params: {},
        message: 'must be a finite number',
      },
    ];
    return false;
  };
  // Fastify hands ajv-made validators the request as the root's parent so that coercion can reach the root.
  if (validate.schemaEnv !== undefined) checked.schemaEnv = validate.schemaEnv;
  return checked;
}

/** The `schemaController.compilersFactory.buildValidator` for buildApp. */
export function requestValidatorFactory(): NonNullable<ValidatorFactory> {
  const pool = AjvCompiler();
  return (externalSchemas) => {
    const coercing = pool(externalSchemas, {
      customOptions: { ...sharedOptions, coerceTypes: 'array' },
    });
    const strict = pool(externalSchemas, {
      customOptions: { ...sharedOptions, coerceTypes: false },
    });
    // The pool's compilers take the whole route definition ({ schema, httpPart, … }) at run time.
    return (route) =>
      finiteNumbersOnly(
        (route.httpPart === 'body' ? strict : coercing)(route) as unknown as Validate,
      ) as unknown as ReturnType<ReturnType<NonNullable<ValidatorFactory>>>;
  };
}
