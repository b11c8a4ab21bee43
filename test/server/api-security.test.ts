import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  adminPassword,
  startTestServer,
  type ApiAnswer,
  type TestServer,
} from '../../src/testing/control-plane.js';

describe('API authentication, authorization and bad input', () => {
  let s: TestServer;
  let admin: string;
  before(async () => {
    s = await startTestServer();
    admin = await s.login();
  });
  after(async () => s.close());

  test('health and the API document are public; every other route refuses an anonymous caller with 401', async () => {
    assert.equal((await s.request('GET', '/health')).status, 200);
    const doc = await s.request('GET', '/openapi.json');
    assert.equal(doc.status, 200);
    assert.equal(doc.body.openapi, '3.0.3');
    const paths = Object.entries(doc.body.paths as Record<string, Record<string, unknown>>);
    assert.ok(paths.length > 30, `the document lists the API (${paths.length} paths)`);
    let checked = 0;
    const publicOperations: string[] = [];
    for (const [path, methods] of paths) {
      for (const [method, operation] of Object.entries(
        methods as Record<string, { security?: unknown[] }>,
      )) {
        // Public operations say so in the document (security: []): health, login, agent enrollment,
        // and a download whose single-use ticket in the path is its credential.
        if (Array.isArray(operation.security) && operation.security.length === 0) {
          publicOperations.push(`${method.toUpperCase()} ${path}`);
          continue;
        }
        const concrete = path
          .replace('/api/v1', '')
          .replace(/\{[^}]+\}/g, 'vm_00000000000000000000000000');
        const answer = await s.request(
          method.toUpperCase(),
          concrete,
          ['post', 'patch'].includes(method) ? { body: {} } : {},
        );
        assert.equal(
          answer.status,
          401,
          `${method.toUpperCase()} ${path} answered ${answer.status}`,
        );
        assert.equal(answer.body.error.code, 'ZEN_UNAUTHENTICATED');
        checked++;
      }
    }
    assert.ok(checked > 30);
    assert.deepEqual(
      publicOperations.sort(),
      [
        'GET /api/v1/downloads/{ticket}',
        'GET /api/v1/health',
        'POST /api/v1/agents/enroll',
        'POST /api/v1/auth/login',
      ],
      'exactly these need no credentials',
    );
    // Without a ticket it was issued, the download answers 401 as any route without credentials.
    const download = await s.request('GET', '/downloads/not-a-ticket-at-all-0000');
    assert.deepEqual([download.status, download.body.error.code], [401, 'ZEN_UNAUTHENTICATED']);
    // The console WebSocket (not in the document) takes a single-use ticket instead of credentials.
    const console = await s.request('GET', '/consoles/not-a-ticket-at-all-0000');
    assert.ok(
      console.status >= 400 && console.status < 500,
      `a plain GET of a console answers ${console.status}`,
    );
  });

  test('a viewer can read but is refused actions with 403 ZEN_FORBIDDEN', async () => {
    const created = await s.request('POST', '/users', {
      token: admin,
      body: { name: 'vera', role: 'viewer', password: 'viewer-password-1' },
    });
    assert.equal(created.status, 201);
    await s.request('POST', '/connections', {
      token: admin,
      body: { name: 'sim', type: 'simulated', settings: { timeScale: 0.01 } },
    });
    const viewer = await s.login('vera', 'viewer-password-1');
    const vms = await s.request('GET', '/vms?filter=power.state=running&limit=1', {
      token: viewer,
    });
    assert.equal(vms.status, 200);
    const vm = vms.body.items[0];
    const stop = await s.request('POST', `/vms/${vm.id}/stop`, { token: viewer });
    assert.equal(stop.status, 403);
    assert.equal(stop.body.error.code, 'ZEN_FORBIDDEN');
    assert.equal((await s.request('GET', '/users', { token: viewer })).status, 403);
    assert.equal((await s.request('GET', '/audit', { token: viewer })).status, 403);
    const denied = await s.request('GET', `/audit?action=POST&limit=5`, { token: admin });
    assert.ok(
      denied.body.items.some(
        (r: { result: string; actorName: string }) =>
          r.result === 'denied' && r.actorName === 'vera',
      ),
      'the refusal is audited',
    );
  });

  test('bad input gets a 4xx with a stable code, never a 5xx', async () => {
    const cases: Array<
      [string, string, { body?: unknown; headers?: Record<string, string> }, number, string]
    > = [
      [
        'POST',
        '/users',
        { body: { name: 'x1', role: 'viewer', password: 'long-enough-pass', extra: 1 } },
        400,
        'ZEN_BAD_REQUEST',
      ],
      ['POST', '/users', { body: { name: 42, role: 'viewer' } }, 400, 'ZEN_BAD_REQUEST'],
      [
        'POST',
        '/users',
        { body: { name: 'weak', role: 'viewer', password: 'short' } },
        400,
        'ZEN_WEAK_PASSWORD',
      ],
      [
        'POST',
        '/users',
        { body: { name: 'x2', role: 'emperor', password: 'long-enough-pass' } },
        400,
        'ZEN_BAD_REQUEST',
      ],
      [
        'POST',
        '/users',
        { body: '{"name": ', headers: { 'content-type': 'application/json' } },
        400,
        'ZEN_BAD_REQUEST',
      ],
      [
        'POST',
        '/users',
        { body: 'name=x', headers: { 'content-type': 'text/plain' } },
        415,
        'ZEN_UNSUPPORTED_MEDIA_TYPE',
      ],
      [
        'POST',
        '/users',
        { body: { name: 'big', role: 'viewer', password: 'x'.repeat(2 * 1024 * 1024) } },
        413,
        'ZEN_PAYLOAD_TOO_LARGE',
      ],
      ['GET', '/tasks/not-a-task-id', {}, 400, 'ZEN_BAD_ID'],
      ['GET', '/tasks/task_00000000000000000000000000', {}, 404, 'ZEN_NOT_FOUND'],
      ['GET', '/vms?filter=cpu.count>=many', {}, 400, 'ZEN_BAD_FILTER'],
      ['GET', '/vms?limit=0', {}, 400, 'ZEN_BAD_REQUEST'],
      ['GET', '/vms?cursor=garbage', {}, 400, 'ZEN_BAD_CURSOR'],
      ['GET', '/vms?bogus=1', {}, 400, 'ZEN_BAD_REQUEST'],
      ['GET', '/vms/no-such-vm', {}, 404, 'ZEN_NOT_FOUND'],
      ['GET', '/vms/no-such-vm/location?at=yesterday-ish', {}, 404, 'ZEN_NOT_FOUND'],
      ['POST', '/vms/no-such-vm/migrate', { body: { targetHostId: 'x' } }, 404, 'ZEN_NOT_FOUND'],
      [
        'POST',
        '/connections',
        { body: { name: 'bad', type: 'simulated', settings: { hostsPerCluster: -1 } } },
        400,
        'ZEN_CONFIG_INVALID',
      ],
      [
        'POST',
        '/connections',
        { body: { name: 'bad', type: 'teleporter' } },
        400,
        'ZEN_CONFIG_INVALID',
      ],
      ['POST', '/connections', { body: { name: 'sim', type: 'simulated' } }, 409, 'ZEN_CONFLICT'],
      [
        'PATCH',
        '/objects/vm_00000000000000000000000000',
        { body: { facts: { 'user.a': 1 } } },
        404,
        'ZEN_NOT_FOUND',
      ],
      ['GET', '/no/such/route', {}, 404, 'ZEN_ROUTE_NOT_FOUND'],
      ['DELETE', '/audit', {}, 404, 'ZEN_ROUTE_NOT_FOUND'],
    ];
    for (const [method, path, options, status, code] of cases) {
      const answer = await s.request(method, path, { token: admin, ...options });
      assert.equal(
        answer.status,
        status,
        `${method} ${path}: ${JSON.stringify(answer.body).slice(0, 300)}`,
      );
      assert.equal(answer.body.error.code, code, `${method} ${path}`);
      assert.equal(typeof answer.body.error.message, 'string');
    }
    const users = await s.request('GET', '/users', { token: admin });
    assert.ok(
      !users.body.items.some((u: { name: string }) => ['x1', 'x2', 'weak', 'big'].includes(u.name)),
      'no refused request wrote anything',
    );
  });

  test('an API token works until it is revoked, then answers 401 at once', async () => {
    const created = await s.request('POST', '/tokens', { token: admin, body: { name: 'ci' } });
    assert.equal(created.status, 201);
    const token = created.body.token as string;
    assert.equal((await s.request('GET', '/auth/me', { token })).body.name, 'admin');
    const listed = await s.request('GET', '/tokens', { token: admin });
    assert.ok(
      listed.body.items.every(
        (t: Record<string, unknown>) => !('secret_hash' in t) && !('token' in t),
      ),
      'no secret is listed',
    );
    assert.equal(
      (await s.request('DELETE', `/tokens/${created.body.info.id}`, { token: admin })).status,
      200,
    );
    const after = await s.request('GET', '/auth/me', { token });
    assert.equal(after.status, 401);
    assert.equal(after.body.error.code, 'ZEN_TOKEN_EXPIRED');
  });

  test('the session cookie reads but changes nothing: a cross-origin POST with it alone is refused', async () => {
    const login = await fetch(`${s.baseUrl}/api/v1/auth/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ username: 'admin', password: adminPassword }),
    });
    const setCookie = login.headers.get('set-cookie') ?? '';
    assert.match(setCookie, /HttpOnly; SameSite=Strict/);
    const cookie = setCookie.split(';')[0]!;
    const session = ((await login.json()) as { token: string }).token;
    assert.equal((await s.request('GET', '/auth/me', { headers: { cookie } })).status, 200);
    for (const origin of ['https://evil.example', s.baseUrl]) {
      const forged = await s.request('POST', '/groups', {
        headers: { cookie, origin },
        body: { name: 'forged' },
      });
      assert.deepEqual(
        [forged.status, forged.body.error.code],
        [401, 'ZEN_UNAUTHENTICATED'],
        origin,
      );
      const logout = await s.request('POST', '/auth/logout', { headers: { cookie, origin } });
      assert.equal(logout.status, 401, origin);
      const revoke = await s.request('DELETE', `/tokens/${session.split('.')[0]}`, {
        headers: { cookie, origin },
      });
      assert.equal(revoke.status, 401, origin);
    }
    assert.equal((await s.request('GET', '/groups/forged', { token: admin })).status, 404);
    assert.equal((await s.request('GET', '/auth/me', { token: session })).status, 200);
    // The console's way: a bearer token, which its same-origin requests send beside the cookie.
    const bearer = await s.request('POST', '/groups', {
      token: session,
      headers: { cookie },
      body: { name: 'with-bearer' },
    });
    assert.equal(bearer.status, 201, JSON.stringify(bearer.body));
  });

  test('failed logins are rate-limited per user with 429 and Retry-After', async () => {
    await s.request('POST', '/users', {
      token: admin,
      body: { name: 'target', role: 'viewer', password: 'the-real-password' },
    });
    for (let i = 0; i < 5; i++) {
      const wrong = await s.request('POST', '/auth/login', {
        body: { username: 'target', password: `guess-${i}` },
      });
      assert.equal(wrong.status, 401);
      assert.equal(wrong.body.error.code, 'ZEN_BAD_CREDENTIALS');
    }
    const limited = await s.request('POST', '/auth/login', {
      body: { username: 'target', password: 'the-real-password' },
    });
    assert.equal(limited.status, 429);
    assert.equal(limited.body.error.code, 'ZEN_RATE_LIMITED');
    assert.ok(limited.body.error.details.retryAfterSeconds > 0);
    const failures = await s.request('GET', '/audit?action=auth.login&limit=20', { token: admin });
    assert.ok(
      failures.body.items.filter((r: { result: string }) => r.result === 'failed').length >= 5,
      'failed logins are audited',
    );
  });
});

describe('logins sent at once', () => {
  let s: TestServer;
  let admin: string;
  before(async () => {
    s = await startTestServer();
    admin = await s.login();
  });
  after(async () => s.close());

  test('a hundred logins at once judge no more wrong passwords than the limit allows', async () => {
    const created = await s.request('POST', '/users', {
      token: admin,
      body: { name: 'racer', role: 'viewer', password: 'the-racers-password' },
    });
    assert.equal(created.status, 201);
    const answers = await Promise.all(
      Array.from({ length: 100 }, (_, i) =>
        s.request('POST', '/auth/login', {
          body: { username: 'racer', password: i === 50 ? 'the-racers-password' : `guess-${i}` },
        }),
      ),
    );
    const count = (status: number) => answers.filter((a) => a.status === status).length;
    // Five failures lock the name and the address: concurrency must not buy more guesses.
    assert.ok(count(401) <= 5, `${count(401)} wrong passwords were judged`);
    assert.ok(count(200) <= 1);
    assert.equal(count(401) + count(200) + count(429), 100);
    for (const answer of answers.filter((a) => a.status === 429)) {
      assert.equal(answer.body.error.code, 'ZEN_RATE_LIMITED');
      assert.ok(answer.body.error.details.retryAfterSeconds >= 1);
    }
    const judged = await s.request('GET', '/audit?action=auth.login&actorName=racer&limit=200', {
      token: admin,
    });
    assert.equal(
      judged.body.items.filter(
        (r: { result: string; errorCode: string | null }) =>
          r.result === 'failed' && r.errorCode === 'ZEN_BAD_CREDENTIALS',
      ).length,
      count(401),
      'every judged failure is audited',
    );
  });
});

describe('hostile input never gets a 5xx', () => {
  let s: TestServer;
  let admin: string;
  before(async () => {
    s = await startTestServer();
    admin = await s.login();
    await s.request('POST', '/connections', {
      token: admin,
      body: { name: 'sim', type: 'simulated', settings: { timeScale: 0.01, vmsPerHost: 2 } },
    });
  });
  after(async () => s.close());

  test('every route, with odd ids, bodies, queries and headers', async (t) => {
    const started = Date.now();
    const doc = await s.request('GET', '/openapi.json');
    const ids = [
      'x',
      '%00',
      '..%2F..%2Fetc',
      'vm_' + 'Z'.repeat(26),
      'ü'.repeat(50),
      'a'.repeat(300),
      'me',
      '-1',
    ];
    const bodies: unknown[] = [
      null,
      [],
      'text',
      12,
      { a: { b: { c: [1, 2, { d: null }] } } },
      { name: 'x'.repeat(5000), role: 'admin' },
      { targetHostId: ['a'] },
      { facts: { 'user.x': { nested: 1 } } },
      { settings: { seed: 1e308 } },
    ];
    const queries = [
      '?limit=-5',
      '?limit=abc',
      '?filter=',
      '?filter=a%3D%3D%3Db',
      '?sort=__proto__',
      '?cursor=' + 'A'.repeat(3000),
      '?at=99999999999999999999',
      '?since=-1',
      '?tag=' + '%FF'.repeat(10),
      '?state=exploded',
      // Query coercion turns these into ±Infinity, which an integer's bounds would let through.
      '?limit=Infinity',
      '?limit=-Infinity',
      '?limit=1e400',
    ];
    let requests = 0;
    for (const [path, methods] of Object.entries(
      doc.body.paths as Record<string, Record<string, unknown>>,
    )) {
      for (const method of Object.keys(methods)) {
        if (path.endsWith('/events/stream') || path.endsWith('/auth/logout')) continue;
        // A path without parameters is the same request whatever the id: sent once, not per id.
        for (const id of /\{[^}]+\}/.test(path) ? ids : ids.slice(0, 1)) {
          const concrete = path.replace('/api/v1', '').replace(/\{[^}]+\}/g, id);
          const sendsBody = ['post', 'patch', 'put'].includes(method);
          for (const variant of [
            // A GET carries no body: the body variants would send one same read nine times in a
            // row; it is sent once. (A DELETE is repeated: a second one meets what the first did.)
            ...(method === 'get' ? [undefined] : bodies).map((body) => ({ body, query: '' })),
            ...queries.map((query) => ({ body: undefined, query })),
          ]) {
            const options: { token: string; body?: unknown } = { token: admin };
            if (sendsBody && variant.body !== undefined)
              options.body = JSON.stringify(variant.body);
            const answer = await s.request(
              method.toUpperCase(),
              `${concrete}${variant.query}`,
              options,
            );
            requests++;
            assert.ok(
              answer.status < 500,
              `${method.toUpperCase()} ${concrete}${variant.query} ${JSON.stringify(options.body ?? '').slice(0, 80)} → ${answer.status} ${JSON.stringify(answer.body).slice(0, 200)}`,
            );
            if (answer.status >= 400)
              assert.match(
                String(answer.body?.error?.code),
                /^ZEN_[A-Z_]+$/,
                `${method.toUpperCase()} ${concrete}${variant.query} → ${answer.status} ${JSON.stringify(answer.body)}`,
              );
          }
        }
      }
    }
    assert.ok(requests > 1000);
    t.diagnostic(`${requests} requests in ${Date.now() - started} ms`);
    const cookie = await s.request('GET', '/auth/me', {
      headers: { cookie: 'zenith_session=%E0%A4%A' },
    });
    assert.equal(cookie.status, 401);
    const verify = await s.request('POST', '/audit/verify', { token: admin });
    assert.equal(verify.body.ok, true);
  });

  test('a number that is not finite is a 400 naming the field, on every route that takes one', async () => {
    const vm = (await s.request('GET', '/vms?limit=1', { token: admin })).body.items[0];
    const paths = [
      '/tasks',
      '/events',
      '/audit',
      '/placement/plans',
      `/vms/${vm.id}/location-history`,
      '/vms',
      '/hosts',
    ];
    for (const path of paths)
      for (const value of ['Infinity', '-Infinity', '1e400', '-1e400']) {
        const answer = await s.request('GET', `${path}?limit=${value}`, { token: admin });
        assert.equal(answer.status, 400, `${path}?limit=${value}: ${JSON.stringify(answer.body)}`);
        assert.equal(answer.body.error.code, 'ZEN_BAD_REQUEST');
        assert.equal(answer.body.error.details.issues[0].path, 'querystring/limit', path);
      }
    // A JSON body's 1e400 parses to Infinity: refused too, wherever it sits.
    const body = await s.request('POST', '/connections', {
      token: admin,
      body: '{"name": "huge", "type": "simulated", "settings": {"seed": 1e400}}',
    });
    assert.equal(body.status, 400, JSON.stringify(body.body));
    assert.equal(body.body.error.details.issues[0].path, 'body/settings/seed');
    const connections = await s.request('GET', '/connections', { token: admin });
    assert.ok(!connections.body.items.some((c: { name: string }) => c.name === 'huge'));
  });

  test('path ids as long as the API document allows are accepted, and one character more is a 400', async () => {
    const doc = await s.request('GET', '/openapi.json');
    const users = doc.body.paths['/api/v1/users/{id}'].get;
    const declared = users.parameters.find((p: { in: string }) => p.in === 'path');
    const longest = declared.schema.maxLength as number;
    assert.equal(longest, 200);
    // Multi-byte characters: the router sees them percent-encoded, several bytes each.
    const atLimit = await s.request('GET', `/users/${encodeURIComponent('ü'.repeat(longest))}`, {
      token: admin,
    });
    assert.equal(atLimit.status, 404, JSON.stringify(atLimit.body));
    assert.equal(atLimit.body.error.code, 'ZEN_NOT_FOUND');
    const over = await s.request('GET', `/users/${'a'.repeat(longest + 1)}`, { token: admin });
    assert.equal(over.status, 400, JSON.stringify(over.body));
    assert.equal(over.body.error.details.issues[0].path, 'params/id');
    // Every path parameter of the document is declared within that length.
    for (const [path, methods] of Object.entries(
      doc.body.paths as Record<string, Record<string, { parameters?: ApiAnswer[] }>>,
    ))
      for (const operation of Object.values(methods))
        for (const parameter of operation.parameters ?? [])
          if (parameter.in === 'path')
            assert.ok(
              parameter.schema.maxLength <= longest,
              `${path} {${parameter.name}} declares maxLength ${parameter.schema.maxLength}`,
            );
  });
});
