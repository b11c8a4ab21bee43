/**
 * JSON bodies keep their types: a string where the schema wants an integer, a number where it wants
 * a string, "true" for a boolean or a string for an array is a 400 ZEN_BAD_REQUEST naming the field,
 * and nothing is created or changed. Query strings and path parameters are strings on the wire and
 * are still read as their schema's types (?limit=5).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  startTestServer,
  type ApiAnswer,
  type TestServer,
} from '../../src/testing/control-plane.js';

const MiB = 1024 * 1024;

interface Case {
  /** What is wrong, for the test's messages. */
  wrong: string;
  method: string;
  /** The route as the route table names it. */
  route: string;
  path: () => string;
  body: () => Record<string, unknown>;
  /** The field the error must name (its path in the body). */
  field: string;
  /** The same body with the field's type corrected, to show the wrong type was the only fault. */
  fixed?: () => Record<string, unknown>;
}

describe('JSON bodies are validated without type coercion', () => {
  let s: TestServer;
  let token: string;
  let vm: { id: string; name: string };
  let otherHost: string;
  let viewer: string;
  let group: string;

  before(async () => {
    s = await startTestServer();
    token = await s.login();
    const added = await s.request('POST', '/connections', {
      token,
      body: { name: 'lab', type: 'simulated', settings: { hostsPerCluster: 2, vmsPerHost: 1 } },
    });
    assert.equal(added.status, 201, JSON.stringify(added.body));
    vm = (await s.request('GET', '/vms?limit=1&sort=name', { token })).body.items[0];
    const location = await s.request('GET', `/vms/${vm.id}/location`, { token });
    const hosts = (await s.request('GET', '/hosts?limit=100', { token })).body.items as {
      id: string;
    }[];
    otherHost = hosts.find((h) => h.id !== location.body.hostId)!.id;
    const user = await s.request('POST', '/users', {
      token,
      body: { name: 'vera', role: 'viewer', password: 'viewer-password-1' },
    });
    assert.equal(user.status, 201, JSON.stringify(user.body));
    viewer = user.body.identity.id;
    const created = await s.request('POST', '/groups', { token, body: { name: 'team' } });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    group = created.body.id;
  });
  after(async () => s.close());

  /** What a refused request must leave as it was: who and what exists, and every user-written fact and tag. */
  async function state(): Promise<unknown> {
    const get = async (path: string): Promise<ApiAnswer> => {
      const answer = await s.request('GET', path, { token });
      assert.equal(answer.status, 200, `${path}: ${JSON.stringify(answer.body)}`);
      return answer.body;
    };
    const objects = (await get('/objects?limit=1000&sort=name')).items.map((o: ApiAnswer) => ({
      id: o.id,
      name: o.name,
      tags: o.tags,
      userFacts: o.userFacts,
    }));
    return {
      objects,
      users: (await get('/users')).items,
      groups: (await get('/groups')).items,
      quotas: (await get('/quotas')).items,
      connections: (await get('/connections')).items.map((c: ApiAnswer) => c.id),
      tokens: (await get('/tokens')).items,
      tasks: (await get('/tasks?limit=1000')).items.map((t: ApiAnswer) => t.id),
    };
  }

  const newVm = {
    name: 'typed-vm',
    type: 'simulated',
    cpus: 1,
    memoryBytes: 64 * MiB,
    diskBytes: 0,
  };
  const cases: Case[] = [
    {
      wrong: 'a string where an integer is wanted',
      method: 'POST',
      route: '/api/v1/vms',
      path: () => '/vms',
      body: () => ({ ...newVm, cpus: '1' }),
      field: 'body/cpus',
      fixed: () => newVm,
    },
    {
      wrong: 'a number where a string is wanted',
      method: 'POST',
      route: '/api/v1/vms',
      path: () => '/vms',
      body: () => ({ ...newVm, name: 7 }),
      field: 'body/name',
      fixed: () => ({ ...newVm, name: 'typed-vm-2' }),
    },
    {
      wrong: 'a string where an array is wanted',
      method: 'POST',
      route: '/api/v1/vms',
      path: () => '/vms',
      body: () => ({ ...newVm, name: 'typed-vm-3', tags: 'env:prod' }),
      field: 'body/tags',
      fixed: () => ({ ...newVm, name: 'typed-vm-3', tags: ['env:prod'] }),
    },
    {
      wrong: 'a string where an integer is wanted',
      method: 'POST',
      route: '/api/v1/vms/:id/reconfigure',
      path: () => `/vms/${vm.id}/reconfigure`,
      body: () => ({ cpus: '2' }),
      field: 'body/cpus',
    },
    {
      wrong: '"true" where a boolean is wanted',
      method: 'POST',
      route: '/api/v1/vms/:id/migrate',
      path: () => `/vms/${vm.id}/migrate`,
      body: () => ({ targetHostId: otherHost, withStorage: 'true' }),
      field: 'body/withStorage',
    },
    {
      wrong: 'a number where a string (an id) is wanted',
      method: 'POST',
      route: '/api/v1/vms/:id/migrate',
      path: () => `/vms/${vm.id}/migrate`,
      body: () => ({ targetHostId: 5 }),
      field: 'body/targetHostId',
    },
    {
      wrong: '"true" where a boolean is wanted',
      method: 'PATCH',
      route: '/api/v1/users/:id',
      path: () => `/users/${viewer}`,
      body: () => ({ disabled: 'true' }),
      field: 'body/disabled',
      fixed: () => ({ disabled: true }),
    },
    {
      wrong: 'a number where a string is wanted',
      method: 'POST',
      route: '/api/v1/users',
      path: () => '/users',
      body: () => ({ name: 12345, role: 'viewer', password: 'viewer-password-2' }),
      field: 'body/name',
      fixed: () => ({ name: 'u12345', role: 'viewer', password: 'viewer-password-2' }),
    },
    {
      wrong: 'a string where an integer (or null) is wanted',
      method: 'PUT',
      route: '/api/v1/groups/:id/quota',
      path: () => `/groups/${group}/quota`,
      body: () => ({ vcpus: '8' }),
      field: 'body/vcpus',
      fixed: () => ({ vcpus: 8 }),
    },
    {
      wrong: 'a string where an array is wanted',
      method: 'PATCH',
      route: '/api/v1/objects/:id',
      path: () => `/objects/${vm.id}`,
      body: () => ({ addTags: 'env:prod' }),
      field: 'body/addTags',
      fixed: () => ({ addTags: ['env:prod'] }),
    },
    {
      wrong: 'a string where an array is wanted',
      method: 'POST',
      route: '/api/v1/resource-groups',
      path: () => '/resource-groups',
      body: () => ({ name: 'rg-typed', tags: 'a' }),
      field: 'body/tags',
      fixed: () => ({ name: 'rg-typed', tags: ['a'] }),
    },
    {
      wrong: 'a number where a string is wanted',
      method: 'POST',
      route: '/api/v1/connections',
      path: () => '/connections',
      body: () => ({
        name: 42,
        type: 'simulated',
        settings: { hostsPerCluster: 1, vmsPerHost: 1 },
      }),
      field: 'body/name',
      fixed: () => ({
        name: 'lab-2',
        type: 'simulated',
        settings: { hostsPerCluster: 1, vmsPerHost: 1 },
      }),
    },
    {
      wrong: 'a string where an integer is wanted',
      method: 'POST',
      route: '/api/v1/tokens',
      path: () => '/tokens',
      body: () => ({ name: 'ci', expiresInDays: '30' }),
      field: 'body/expiresInDays',
      fixed: () => ({ name: 'ci', expiresInDays: 30 }),
    },
    {
      wrong: 'a string where an integer is wanted (no side effect to check)',
      method: 'POST',
      route: '/api/v1/placement/preview',
      path: () => '/placement/preview',
      body: () => ({ vm: vm.id, topCandidates: '3' }),
      field: 'body/topCandidates',
      fixed: () => ({ vm: vm.id, topCandidates: 3 }),
    },
  ];

  test('every case names a route of the server and a field of its body schema', async () => {
    const routes = new Set(s.app.routeTable.map((r) => `${r.method} ${r.url}`));
    const document = (await s.request('GET', '/openapi.json')).body;
    for (const c of cases) {
      assert.ok(routes.has(`${c.method} ${c.route}`), `${c.method} ${c.route}`);
      const operation = document.paths[c.route.replace(/:(\w+)/g, '{$1}')][c.method.toLowerCase()];
      const properties = operation.requestBody.content['application/json'].schema.properties;
      const field = c.field.replace(/^body\//, '');
      assert.ok(properties[field], `${c.method} ${c.route} has a body field ${field}`);
    }
  });

  for (const c of cases) {
    test(`${c.method} ${c.route} with ${c.wrong} (${c.field}) is a 400 that changes nothing`, async () => {
      const before = await state();
      const answer = await s.request(c.method, c.path(), { token, body: c.body() });
      assert.equal(answer.status, 400, JSON.stringify(answer.body));
      assert.equal(answer.body.error.code, 'ZEN_BAD_REQUEST');
      assert.ok(
        answer.body.error.message.startsWith(`${c.field} `),
        `the message names ${c.field}: ${answer.body.error.message}`,
      );
      assert.equal(answer.body.error.details.issues[0].path, c.field);
      assert.deepEqual(await state(), before, 'nothing was created or changed');
      if (!c.fixed) return;
      const accepted = await s.request(c.method, c.path(), { token, body: c.fixed() });
      assert.ok(accepted.status < 300, `the corrected body: ${JSON.stringify(accepted.body)}`);
      if (accepted.status === 202) {
        const task = await s.waitForTask(token, accepted.body.id);
        assert.equal(task.state, 'succeeded', JSON.stringify(task));
      }
    });
  }

  test('fact values keep their JSON types: 1 stays 1 and "1" stays "1"', async () => {
    const written = await s.request('PATCH', `/objects/${vm.id}`, {
      token,
      body: { facts: { 'user.count': 1, 'user.label': '1', 'user.flag': true } },
    });
    assert.equal(written.status, 200, JSON.stringify(written.body));
    assert.deepEqual(
      [written.body.userFacts['user.count'], written.body.userFacts['user.label']],
      [1, '1'],
    );
    assert.equal(written.body.userFacts['user.flag'], true);
  });

  test('query strings and path parameters are still read as their types', async () => {
    const page = await s.request('GET', '/vms?limit=2&sort=name', { token });
    assert.equal(page.status, 200, JSON.stringify(page.body));
    assert.equal(page.body.items.length, 2);
    const audit = await s.request('GET', '/audit?limit=3', { token });
    assert.equal(audit.status, 200, JSON.stringify(audit.body));
    assert.equal(audit.body.items.length, 3);
    const bad = await s.request('GET', '/vms?limit=many', { token });
    assert.equal(bad.status, 400);
    assert.equal(bad.body.error.code, 'ZEN_BAD_REQUEST');
    assert.match(bad.body.error.message, /^querystring\/limit /);
  });
});
