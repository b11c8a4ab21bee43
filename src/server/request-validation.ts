/**
 * Request validation with two ajv instances: query strings, path parameters and headers are strings
 * on the wire and are coerced to their schema's types (`?limit=100` is the number 100); a JSON body
 * already carries its types, so it is validated without coercion (`{"cpus": "4"}` is refused, not
 * read as 4). Otherwise both are configured alike, with the formats Fastify's default compiler adds.
 */
import { AjvCompiler } from '@fastify/ajv-compiler';
import type { FastifyServerOptions } from 'fastify';

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
    return (route) => (route.httpPart === 'body' ? strict : coercing)(route);
  };
}
