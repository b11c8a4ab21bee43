/**
 * The API keeps to its contract (src/api) and its document says so: every operation of the OpenAPI
 * document declares its success answer and the error answers it can give (the one error body), the
 * document lists exactly the contract's operations, and every status the server sends on a route —
 * to anonymous callers, callers without the permission, unknown ids, bodies that are not JSON, ids
 * that are too long — is one the document declares for that route.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import Fastify from 'fastify';
import { operations } from '../../src/api/operations.js';
import { installAuth, type RouteEntry } from '../../src/server/auth.js';
import {
  startTestServer,
  type ApiAnswer,
  type TestServer,
} from '../../src/testing/control-plane.js';

interface DocumentedOperation {
  security?: unknown[];
  responses: Record<string, { $ref?: string; content?: Record<string, { schema?: ApiAnswer }> }>;
}
type Document = { paths: Record<string, Record<string, DocumentedOperation>> };

/** The document's path of a route (/api/v1/vms/:id → /api/v1/vms/{id}). */
const documentPath = (url: string) => url.replace(/:(\w+)/g, '{$1}');

/** Whether a documented answer is the error body (by reference, as every error answer is). */
function isErrorBody(answer: DocumentedOperation['responses'][string]): boolean {
  const schema = answer.content?.['application/json']?.schema;
  return answer.$ref === 'ErrorBody' || schema?.$ref?.endsWith('ErrorBody') === true;
}

describe('the API contract and its document', () => {
  let s: TestServer;
  let admin: string;
  let document: Document;
  let routes: RouteEntry[];

  const declared = (method: string, url: string): string[] => {
    const operation = document.paths[documentPath(url)]?.[method.toLowerCase()];
    return operation ? Object.keys(operation.responses) : [];
  };

  before(async () => {
    s = await startTestServer();
    admin = await s.login();
    await s.addSimulatedFleet(admin, { timeScale: 0, vmsPerHost: 1 });
    document = (await s.request('GET', '/openapi.json')).body as Document;
    routes = s.app.routeTable.filter((route) => route.method !== 'HEAD' && route.operation);
  });
  after(async () => s.close());

  test('every operation of the document declares its success answer and its error answers, with the error body', () => {
    let counted = 0;
    for (const [path, methods] of Object.entries(document.paths))
      for (const [method, operation] of Object.entries(methods)) {
        const name = `${method.toUpperCase()} ${path}`;
        const statuses = Object.keys(operation.responses);
        const successes = statuses.filter((status) => /^2\d\d$/.test(status));
        const errors = statuses.filter((status) => /^[45]\d\d$/.test(status));
        assert.equal(
          successes.length,
          1,
          `${name} declares one success answer: ${statuses.join(', ')}`,
        );
        assert.ok(errors.includes('500'), `${name} declares 500`);
        if (operation.security === undefined) {
          assert.ok(errors.includes('401'), `${name} (with credentials) declares 401`);
        }
        for (const status of errors)
          assert.ok(
            isErrorBody(operation.responses[status]!),
            `${name} ${status} is the error body`,
          );
        counted++;
      }
    assert.ok(counted > 100, `the document lists the API (${counted} operations)`);
  });

  test('the document lists the operations of the contract, each once, and the server serves each', () => {
    const inDocument = Object.entries(document.paths)
      .flatMap(([path, methods]) => Object.keys(methods).map((m) => `${m.toUpperCase()} ${path}`))
      .sort();
    const inContract = Object.values(operations)
      .map((spec) => `${spec.method} ${documentPath(`/api/v1${spec.path}`)}`)
      .sort();
    assert.deepEqual(inDocument, inContract);
    const served = routes.map((route) => `${route.method} ${documentPath(route.url)}`).sort();
    assert.deepEqual(served, inContract);
  });

  test('creations answer 201 and answers without content 204, as the document declares', async () => {
    const created = {
      token: await s.request('POST', '/tokens', { token: admin, body: { name: 'script' } }),
      user: await s.request('POST', '/users', {
        token: admin,
        body: { name: 'uma', role: 'viewer', password: 'a-password-for-uma' },
      }),
      connection: await s.request('POST', '/connections', {
        token: admin,
        body: { name: 'lab-2', type: 'simulated', settings: { timeScale: 0, vmsPerHost: 1 } },
      }),
    };
    for (const [what, answer] of Object.entries(created))
      assert.equal(answer.status, 201, `${what}: ${JSON.stringify(answer.body)}`);
    const userId = created.user.body.identity.id as string;
    const password = await s.request('POST', `/users/${userId}/password`, {
      token: admin,
      body: { password: 'another-password-for-uma' },
    });
    assert.equal(password.status, 204, JSON.stringify(password.body));
    const session = await s.login('uma', 'another-password-for-uma');
    const logout = await s.request('POST', '/auth/logout', { token: session });
    assert.equal(logout.status, 204, JSON.stringify(logout.body));

    assert.deepEqual(
      ['/api/v1/tokens', '/api/v1/users', '/api/v1/connections'].map((path) =>
        declared('POST', path).filter((status) => status.startsWith('2')),
      ),
      [['201'], ['201'], ['201']],
    );
    assert.deepEqual(
      ['/api/v1/users/:id/password', '/api/v1/auth/logout'].map((path) =>
        declared('POST', path).filter((status) => status.startsWith('2')),
      ),
      [['204'], ['204']],
    );
  });

  test('every status the server sends on a route is one the document declares for it', async () => {
    const nobody = (
      await s.request('POST', '/users', {
        token: admin,
        body: { name: 'nobody', role: 'none', kind: 'service' },
      })
    ).body.token as string;
    const send = async (route: RouteEntry, path: string, token?: string, body?: string) => {
      const abort = new AbortController();
      const response = await fetch(`${s.baseUrl}${path}`, {
        method: route.method,
        signal: abort.signal,
        headers: {
          ...(token ? { authorization: `Bearer ${token}` } : {}),
          ...(body !== undefined ? { 'content-type': 'text/plain' } : {}),
        },
        ...(body !== undefined ? { body } : {}),
      });
      abort.abort();
      return response.status;
    };
    // Ids that name nothing (a mutating call on them changes nothing), and one too long to take.
    const withIds = (route: RouteEntry, id: string) => route.url.replace(/:(\w+)/g, id);
    for (const route of routes) {
      if (route.url === '/api/v1/auth/logout') continue; // ends the caller's session
      const nothing = withIds(route, 'vm_ZZZZZZZZZZZZZZZZZZZZZZZZZZ');
      await send(route, nothing);
      await send(route, nothing, nobody);
      if (route.url.includes(':')) {
        await send(route, nothing, admin);
        await send(route, withIds(route, 'a'.repeat(300)), admin);
      }
      if (route.method !== 'GET') await send(route, nothing, admin, 'not json');
    }

    const undeclared = s.answers
      .filter((answer) => answer.url.startsWith('/api/v1/'))
      .filter((answer) => !declared(answer.method, answer.url).includes(String(answer.status)))
      .map((answer) => `${answer.method} ${answer.url} answered ${answer.status}`);
    assert.deepEqual([...new Set(undeclared)], []);
    // The sweep reached the refusals every kind of route has.
    const sent = new Set(s.answers.map((answer) => answer.status));
    for (const status of [400, 401, 403, 404, 415])
      assert.ok(sent.has(status), `some route answered ${status}: ${[...sent].join(', ')}`);
  });

  test('a route that serves no operation of the contract is refused when it is registered', async () => {
    const app = Fastify();
    installAuth(app, s.plane);
    assert.throws(
      () =>
        app.get('/api/v1/undeclared', { config: { permission: 'inventory.read' } }, async () => ({
          ok: true,
        })),
      /serves no operation of the contract/,
    );
    await app.close();
  });
});
