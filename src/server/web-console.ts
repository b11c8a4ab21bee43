/**
 * The web console: the built browser app (web/, bundled by Vite into web/dist) served as static
 * files on the API's port. The app uses only the public API under /api/v1, so these routes are
 * public and carry nothing but the bundle.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import fastifyStatic from '@fastify/static';
import type { FastifyInstance } from 'fastify';
import { Type } from 'typebox';

/** Where `npm run build:web` writes the bundle, from src/server or dist/server alike. */
export const defaultWebRoot = join(import.meta.dirname, '..', '..', 'web', 'dist');

export async function webConsoleRoutes(app: FastifyInstance, webRoot: string): Promise<void> {
  if (!existsSync(join(webRoot, 'index.html'))) {
    app.log.warn({ webRoot }, 'the web console is not built (npm run build:web); / is not served');
    return;
  }
  // serve: false — the routes are declared below, each public, like every other route.
  await app.register(fastifyStatic, { root: webRoot, serve: false });
  app.get('/', { config: { public: true }, schema: { hide: true } }, (_request, reply) =>
    reply.header('cache-control', 'no-cache').sendFile('index.html'),
  );
  app.get(
    '/assets/:file',
    {
      config: { public: true },
      schema: {
        hide: true,
        params: Type.Object(
          { file: Type.String({ pattern: '^[A-Za-z0-9_.-]+$', maxLength: 200 }) },
          { additionalProperties: false },
        ),
      },
    },
    // Vite names assets by content hash: a name never changes meaning.
    (request, reply) =>
      reply.sendFile(join('assets', (request.params as { file: string }).file), {
        maxAge: '365d',
        immutable: true,
      }),
  );
}
