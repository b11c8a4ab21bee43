/**
 * GET /auth/me/permissions: what the caller may do, in one answer per page of objects, following
 * custom roles, groups and scoped bindings (the web console offers actions from it).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  startTestServer,
  type ApiAnswer,
  type TestServer,
} from '../../src/testing/control-plane.js';

describe("the caller's effective permissions", () => {
  let s: TestServer;
  let admin: string;
  let alice: string;
  let vmInA: string;
  let vmInB: string;
  let clusterA: string;

  before(async () => {
    s = await startTestServer();
    admin = await s.login();
    await s.addSimulatedFleet(admin, {
      timeScale: 0,
      clustersPerDatacenter: 2,
      hostsPerCluster: 1,
      vmsPerHost: 1,
    });
    const [a, b] = (await s.request('GET', '/clusters', { token: admin })).body.items as [
      ApiAnswer,
      ApiAnswer,
    ];
    clusterA = a.id;
    const vms = (await s.request('GET', '/vms', { token: admin })).body.items as ApiAnswer[];
    vmInA = vms.find((vm) => vm.computed['location.clusterId'] === a.id)!.id;
    vmInB = vms.find((vm) => vm.computed['location.clusterId'] === b.id)!.id;
    for (const [path, body] of [
      ['/users', { name: 'alice', role: 'none', password: 'alice-password-123' }],
      ['/roles', { name: 'vm-starter', permissions: ['inventory.read', 'vm.power'] }],
      ['/groups', { name: 'starters' }],
      ['/groups/starters/members', { member: 'alice' }],
      ['/role-bindings', { subject: 'starters', role: 'vm-starter', scope: a.id }],
      ['/role-bindings', { subject: 'alice', role: 'viewer', scope: b.id }],
    ] as const) {
      const answer = await s.request('POST', path, { token: admin, body });
      assert.ok(answer.status < 300, `${path}: ${JSON.stringify(answer.body)}`);
    }
    alice = await s.login('alice', 'alice-password-123');
  });
  after(async () => s.close());

  test('a custom role bound through a group on one cluster holds there and nowhere else', async () => {
    const answer = await s.request(
      'GET',
      `/auth/me/permissions?objects=${vmInA},${vmInB},vm_doesnotexist`,
      { token: alice },
    );
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
    assert.deepEqual(answer.body.global, []);
    const onA = answer.body.scoped.find((entry: ApiAnswer) => entry.scopeId === clusterA);
    assert.deepEqual(onA?.permissions, ['inventory.read', 'vm.power']);
    assert.deepEqual(answer.body.objects[vmInA], ['inventory.read', 'vm.power']);
    // The viewer binding on B reads there, but does not power.
    assert.deepEqual(answer.body.objects[vmInB], [
      'inventory.read',
      'task.read',
      'event.read',
      'connection.read',
      'policy.read',
      'backup.read',
      'replication.read',
    ]);
    assert.deepEqual(answer.body.missing, ['vm_doesnotexist']);
  });

  test('what the answer says agrees with what the API then allows', async () => {
    const refused = await s.request('POST', `/vms/${vmInB}/suspend`, { token: alice });
    assert.equal(refused.status, 403);
    assert.equal(refused.body.error.code, 'ZEN_FORBIDDEN');
    const allowed = await s.request('POST', `/vms/${vmInA}/suspend`, { token: alice });
    assert.equal(allowed.status, 202, JSON.stringify(allowed.body));
    await s.waitForTask(admin, allowed.body.id);
  });

  test('an admin holds everything everywhere', async () => {
    const answer = await s.request('GET', `/auth/me/permissions?objects=${vmInA}`, {
      token: admin,
    });
    assert.equal(answer.status, 200);
    assert.ok(answer.body.global.includes('identity.manage'));
    assert.ok(answer.body.objects[vmInA].includes('vm.delete'));
    assert.deepEqual(answer.body.scoped, []);
  });

  test('bad asks are coded refusals', async () => {
    const tooMany = Array.from({ length: 501 }, (_, i) => `vm_${i}`).join(',');
    const answer = await s.request('GET', `/auth/me/permissions?objects=${tooMany}`, {
      token: alice,
    });
    assert.equal(answer.status, 400);
    assert.equal(answer.body.error.code, 'ZEN_BAD_REQUEST');
    const unknownParameter = await s.request('GET', '/auth/me/permissions?object=x', {
      token: alice,
    });
    assert.equal(unknownParameter.status, 400);
    const anonymous = await s.request('GET', '/auth/me/permissions');
    assert.equal(anonymous.status, 401);
    assert.equal(anonymous.body.error.code, 'ZEN_UNAUTHENTICATED');
  });
});
