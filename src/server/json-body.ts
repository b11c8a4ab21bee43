/**
 * JSON bodies: refused when nested deeper than any request of the API needs, before they are parsed,
 * so that nothing downstream (validation, redaction, the audit record) meets a pathological shape.
 * Otherwise Fastify's own parser (which refuses __proto__ and constructor poisoning) parses them.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { ZenithError } from '../core/errors.js';

/** The deepest body of the API (a rate card's rules) is five levels; this leaves room to spare. */
export const maxJsonDepth = 64;

/** How deep arrays and objects nest in a JSON text; strings are skipped. One pass, no recursion. */
export function jsonNestingDepth(text: string): number {
  let depth = 0;
  let deepest = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c)
        i++; // backslash: the next character is escaped
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x5b || c === 0x7b) {
      if (++depth > deepest) deepest = depth;
    } else if (c === 0x5d || c === 0x7d) depth--;
  }
  return deepest;
}

export function installJsonBodyParser(app: FastifyInstance): void {
  // Fastify's own JSON parser is the callback kind (its type also allows the promise kind).
  const parse = app.getDefaultJsonParser('error', 'error') as (
    request: FastifyRequest,
    body: string,
    done: (error: Error | null, value?: unknown) => void,
  ) => void;
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    const text = body as string;
    if (jsonNestingDepth(text) > maxJsonDepth) {
      done(
        new ZenithError(
          'ZEN_BAD_REQUEST',
          `the body nests arrays and objects deeper than ${maxJsonDepth} levels`,
          { maxDepth: maxJsonDepth },
        ),
        undefined,
      );
      return;
    }
    parse(request, text, done);
  });
}
