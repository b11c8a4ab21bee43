/**
 * Replication's API guards what it decides: sites (which decide where a failover may put VMs) are
 * managed on everything only; protecting a VM needs replication.manage on the VM and on the host
 * its replica goes to, so a narrower identity cannot send a VM's data where it has no reach; bad
 * input is refused with a coded error and nothing written. Simulated hosts (they have no disk
 * streams: a VM of theirs cannot be replicated, and says so).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  type ApiAnswer,
  startTestServer,
  type TestServer,
} from '../../src/testing/control-plane.js';

describe('replication: who may do what, and bad input', () => {
  let s: TestServer;
  let admin: string;
  let hosts: ApiAnswer[];
  let vms: ApiAnswer[];

  before(async () => {
    s = await startTestServer();
    admin = await s.login();
    await s.addSimulatedFleet(admin, { timeScale: 0, hostsPerCluster: 2, vmsPerHost: 1 });
    hosts = (await s.request('GET', '/hosts', { token: admin })).body.items as ApiAnswer[];
    vms = (await s.request('GET', '/vms', { token: admin })).body.items as ApiAnswer[];
    for (const [name, role] of [
      ['vera', 'viewer'],
      ['otto', 'operator'],
      ['dana', 'none'],
    ])
      assert.equal(
        (
          await s.request('POST', '/users', {
            token: admin,
            body: { name, role, password: `a-password-for-${name}` },
          })
        ).status,
        201,
      );
    // dana may manage replication of one VM, and nothing else.
    await s.request('POST', '/roles', {
      token: admin,
      body: {
        name: 'dr-operator',
        permissions: ['inventory.read', 'replication.read', 'replication.manage'],
      },
    });
    await s.request('POST', '/role-bindings', {
      token: admin,
      body: { subject: 'dana', role: 'dr-operator', scope: vms[0]!.id },
    });
  });
  after(async () => s.close());

  test('sites: viewers read them; only replication.manage on everything changes them', async () => {
    const made = await s.request('POST', '/sites', {
      token: admin,
      body: { name: 'site-a', hosts: [hosts[0]!.name] },
    });
    assert.equal(made.status, 201);
    assert.deepEqual(
      (made.body.hosts as ApiAnswer[]).map((h) => h.id),
      [hosts[0]!.id],
    );
    const vera = await s.login('vera', 'a-password-for-vera');
    const otto = await s.login('otto', 'a-password-for-otto');
    const dana = await s.login('dana', 'a-password-for-dana');
    assert.equal((await s.request('GET', '/sites', { token: vera })).body.items.length, 1);
    for (const token of [vera, otto, dana]) {
      const refused = await s.request('POST', '/sites', {
        token,
        body: { name: 'mine', hosts: [hosts[1]!.name] },
      });
      assert.equal(refused.status, 403);
      assert.equal(
        (await s.request('PATCH', '/sites/site-a', { token, body: { hosts: [] } })).status,
        403,
      );
    }
    assert.equal((await s.request('GET', '/sites/site-a', { token: admin })).body.hosts.length, 1);
    // Bad input: an empty host, an unknown one, a host in a site already, a bad name.
    for (const [body, status] of [
      [{ name: 'b', hosts: [''] }, 400],
      [{ name: 'b', hosts: ['no-such-host'] }, 404],
      [{ name: 'b', hosts: [hosts[0]!.name] }, 409],
      [{ name: 'bad name', hosts: [] }, 400],
    ] as const) {
      const answer = await s.request('POST', '/sites', { token: admin, body });
      assert.equal(answer.status, status, JSON.stringify(answer.body));
      assert.match(answer.body.error.code as string, /^ZEN_/);
    }
    assert.equal((await s.request('GET', '/sites', { token: admin })).body.items.length, 1);
    await s.request('POST', '/sites', {
      token: admin,
      body: { name: 'site-b', hosts: [hosts[1]!.name] },
    });
  });

  test('protecting a VM needs replication.manage on the host its replica goes to, too', async () => {
    const dana = await s.login('dana', 'a-password-for-dana');
    const vm = vms[0]!;
    const target = hosts.find((h) => h.id !== vm.computed['location.hostId'])!;
    const refused = await s.request('POST', `/vms/${vm.id}/replication`, {
      token: dana,
      body: { targetHost: target.id, rpoSeconds: 300 },
    });
    assert.ok(
      [403, 404].includes(refused.status),
      `${refused.status} ${JSON.stringify(refused.body)}`,
    );
    const otherVm = await s.request('POST', `/vms/${vms[1]!.id}/replication`, {
      token: dana,
      body: { targetHost: target.id, rpoSeconds: 300 },
    });
    assert.ok([403, 404].includes(otherVm.status));
    assert.equal((await s.request('GET', '/replications', { token: admin })).body.items.length, 0);
  });

  test('a VM whose host has no disk streams cannot be replicated; bad settings are refused', async () => {
    const vm = vms[0]!;
    const target = hosts.find((h) => h.id !== vm.computed['location.hostId'])!;
    const unsupported = await s.request('POST', `/vms/${vm.id}/replication`, {
      token: admin,
      body: { targetHost: target.id, rpoSeconds: 300 },
    });
    assert.equal(unsupported.status, 422);
    assert.equal(unsupported.body.error.code, 'ZEN_UNSUPPORTED');
    for (const body of [
      { targetHost: target.id, rpoSeconds: 30 },
      { targetHost: target.id, rpoSeconds: 300, keepPoints: 0 },
      { targetHost: '', rpoSeconds: 300 },
      { targetHost: target.id, rpoSeconds: 300, extra: true },
    ]) {
      const answer = await s.request('POST', `/vms/${vm.id}/replication`, { token: admin, body });
      assert.equal(answer.status, 400, JSON.stringify(body));
    }
    assert.equal((await s.request('GET', '/replications', { token: admin })).body.items.length, 0);
    assert.equal(
      (await s.request('GET', `/vms/${vm.id}/replication`, { token: admin })).status,
      404,
    );
  });

  test('the RPO report answers CSV for auditors, and plans refuse what they cannot hold', async () => {
    const response = await fetch(`${s.baseUrl}/api/v1/replications/report?format=csv`, {
      headers: { authorization: `Bearer ${admin}` },
    });
    assert.equal(response.status, 200);
    assert.match(response.headers.get('content-type') ?? '', /^text\/csv/);
    assert.equal(
      (await response.text()).split('\r\n')[0] ?? '',
      'vm_id,vm_name,point_id,seq,taken_at,finished_at,rpo_before_seconds,rpo_after_seconds,rpo_target_seconds,read_bytes',
    );
    const plan = await s.request('POST', '/recovery-plans', {
      token: admin,
      body: {
        name: 'p',
        sourceSite: 'site-a',
        targetSite: 'site-a',
        groups: [{ vms: [vms[0]!.id] }],
      },
    });
    assert.equal(plan.status, 400, 'one site to itself');
    const otto = await s.login('otto', 'a-password-for-otto');
    const run = await s.request('POST', '/recovery-plans/none/runs', {
      token: otto,
      body: { operation: 'failover' },
    });
    assert.equal(run.status, 403, 'an operator may not run recovery plans');
  });
});
