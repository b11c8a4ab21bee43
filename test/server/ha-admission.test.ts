/**
 * High availability's admission control and what-if report through the API, on a simulated
 * cluster (no failure is injected: the report and the refusals are simulations of placement).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  startTestServer,
  type ApiAnswer,
  type TestServer,
} from '../../src/testing/control-plane.js';

const GiB = 1024 ** 3;

describe('HA admission control and the what-if report on a simulated cluster', () => {
  let s: TestServer;
  let token: string;
  let cluster: ApiAnswer;
  let hosts: ApiAnswer[];

  const call = (method: string, path: string, body?: unknown) =>
    s.request(method, path, { token, ...(body === undefined ? {} : { body }) });
  const ok = (answer: { status: number; body: ApiAnswer }, status = 200) => {
    assert.equal(answer.status, status, JSON.stringify(answer.body));
    return answer.body;
  };
  const haPolicy = (hostFailuresToTolerate: number) => ({
    name: 'ha-prod',
    scope: { kind: 'cluster', id: cluster.id },
    settings: { ha: { enabled: true, hostFailuresToTolerate } },
  });
  const tolerate = async (n: number) => ok(await call('PUT', '/policies/ha-prod', haPolicy(n)));
  const big = (name: string) => ({ name, cpus: 2, memoryBytes: 96 * GiB, diskBytes: 0 });
  /** Creates a VM and starts it; the refusal's answer when either is refused. */
  const createAndStart = async (name: string) => {
    const created = await call('POST', '/vms', big(name));
    if (created.status !== 202) return created;
    const task = await s.waitForTask(token, created.body.id);
    assert.equal(task.state, 'succeeded', JSON.stringify(task));
    const started = await call('POST', `/vms/${task.result.vmId}/start`);
    if (started.status !== 202) return started;
    assert.equal((await s.waitForTask(token, started.body.id)).state, 'succeeded');
    return started;
  };
  /** What runs on a host now, from the inventory: the test's own oracle. */
  const runningOn = async (hostId: string) =>
    ok(await call('GET', '/vms?limit=1000'))
      .items.filter(
        (vm: ApiAnswer) =>
          vm.computed['location.hostId'] === hostId && vm.facts['power.state'] === 'running',
      )
      .map((vm: ApiAnswer) => vm.name)
      .sort();

  before(async () => {
    s = await startTestServer();
    token = await s.login();
    await s.addSimulatedFleet(token, {
      timeScale: 0,
      clustersPerDatacenter: 1,
      hostsPerCluster: 3,
      vmsPerHost: 2,
    });
    [cluster] = ok(await call('GET', '/clusters')).items;
    hosts = ok(await call('GET', '/hosts?limit=100')).items;
    assert.equal(hosts.length, 3);
    ok(await call('POST', '/policies', haPolicy(1)), 201);
  });
  after(async () => s.close());

  test('creations fill the cluster until one more would break "tolerate 1": refused, naming the VMs and the host failure; the what-if shows where that host’s VMs go; with 0 the same creation passes, and a start or a resume that would break it is refused', async () => {
    let refusal: ApiAnswer = null;
    const created: string[] = [];
    for (let i = 1; i <= 20 && !refusal; i++) {
      const answer = await createAndStart(`big-${i}`);
      if (answer.status === 202) created.push(`big-${i}`);
      else {
        assert.equal(answer.status, 409, JSON.stringify(answer.body));
        refusal = answer.body.error;
      }
    }
    assert.ok(refusal, 'some creation is refused before 20 VMs of 96 GiB');
    assert.ok(created.length >= 1, 'the cluster took some before');
    assert.equal(refusal.code, 'ZEN_HA_ADMISSION');
    const [failed] = refusal.details.failedHosts;
    assert.equal(refusal.details.failedHosts.length, 1, 'one host failing, as tolerated');
    assert.ok(hosts.some((h) => h.id === failed.id && h.name === failed.name));
    const lost = refusal.details.unrecoverable.map((vm: ApiAnswer) => vm.vmName);
    assert.ok(lost.length > 0);
    assert.match(refusal.message, new RegExp(`if ${failed.name} failed, no host could restart`));
    for (const name of lost.slice(0, 5)) assert.ok(refusal.message.includes(name), name);
    assert.equal(refusal.details.hostFailuresToTolerate, 1);
    assert.equal(refusal.details.policy, 'ha-prod');
    const refusedName = `big-${created.length + 1}`;
    assert.ok(
      !ok(await call('GET', '/vms?limit=1000')).items.some(
        (vm: ApiAnswer) => vm.name === refusedName,
      ),
      'nothing was created',
    );

    // Without the refused VM, that host's failure is recovered from: each of its running VMs
    // (protected: HA is on in the cluster) restarts on one of the other hosts.
    const report = ok(await call('POST', '/ha/what-if', { hosts: [failed.name] }));
    assert.deepEqual(report.failedHosts, [{ ...failed, hostFailuresToTolerate: 1 }]);
    assert.deepEqual(
      report.restarts.map((r: ApiAnswer) => r.vmName).sort(),
      await runningOn(failed.id),
    );
    assert.equal(report.unrecoverable, 0);
    assert.equal(report.restarted, report.restarts.length);
    for (const restart of report.restarts) {
      assert.equal(restart.fromHostId, failed.id);
      assert.ok(
        hosts.some((h) => h.id === restart.toHostId && h.id !== failed.id),
        `${restart.vmName} restarts on another host of the cluster`,
      );
    }

    // Tolerating no failure: the same creation passes (the VM is created stopped).
    await tolerate(0);
    const queued = ok(await call('POST', '/vms', big(refusedName)), 202);
    const task = await s.waitForTask(token, queued.id);
    assert.equal(task.state, 'succeeded');
    const vmId = task.result.vmId;

    // Tolerating one again: starting it would break it as creating it did.
    await tolerate(1);
    const start = await call('POST', `/vms/${vmId}/start`);
    assert.equal(start.status, 409, JSON.stringify(start.body));
    assert.equal(start.body.error.code, 'ZEN_HA_ADMISSION');
    assert.match(start.body.error.message, new RegExp(`starting ${refusedName} on `));
    assert.equal(
      ok(await call('GET', `/vms/${vmId}`)).facts['power.state'],
      'stopped',
      'not started',
    );

    // The what-if of every host failing: nothing can restart, each with placement's reasons.
    const all = ok(await call('POST', '/ha/what-if', { hosts: hosts.map((h) => h.id) }));
    assert.equal(all.restarted, 0);
    assert.ok(all.restarts.length > 0);
    for (const restart of all.restarts) {
      assert.equal(restart.toHostId, null);
      assert.match(restart.reason, /^no host can take it/);
    }

    // An admin who must start it lowers the tolerance (no force).
    await tolerate(0);
    const allowed = ok(await call('POST', `/vms/${vmId}/start`), 202);
    assert.equal((await s.waitForTask(token, allowed.id)).state, 'succeeded');

    // Suspended, it would not be restarted by a failover; resuming it is checked as a start is.
    const suspended = ok(await call('POST', `/vms/${vmId}/suspend`), 202);
    assert.equal((await s.waitForTask(token, suspended.id)).state, 'succeeded');
    await tolerate(1);
    const resume = await call('POST', `/vms/${vmId}/resume`);
    assert.equal(resume.status, 409, JSON.stringify(resume.body));
    assert.equal(resume.body.error.code, 'ZEN_HA_ADMISSION');
    assert.match(resume.body.error.message, new RegExp(`resuming ${refusedName} on `));
    assert.equal(ok(await call('GET', `/vms/${vmId}`)).facts['power.state'], 'suspended');
    await tolerate(0);
    const resumed = ok(await call('POST', `/vms/${vmId}/resume`), 202);
    assert.equal((await s.waitForTask(token, resumed.id)).state, 'succeeded');
  });

  test('the what-if takes only hosts the caller may read, and names only VMs and hosts it may read', async () => {
    const [mine, theirs] = hosts;
    ok(await call('POST', '/roles', { name: 'reader', permissions: ['inventory.read'] }), 201);
    ok(
      await call('POST', '/users', { name: 'rita', role: 'none', password: 'rita-password-123' }),
      201,
    );
    ok(
      await call('POST', '/role-bindings', { subject: 'rita', role: 'reader', scope: mine.id }),
      201,
    );
    const rita = await s.login('rita', 'rita-password-123');
    const asRita = (body: unknown) => s.request('POST', '/ha/what-if', { token: rita, body });

    const hidden = await asRita({ hosts: [theirs.name] });
    assert.equal(hidden.status, 404, JSON.stringify(hidden.body));
    assert.equal((await call('POST', '/ha/what-if', { hosts: ['no-such-host'] })).status, 404);
    assert.equal((await call('POST', '/ha/what-if', { hosts: [] })).status, 400);

    const own = ok(await asRita({ hosts: [mine.id] }));
    const full = ok(await call('POST', '/ha/what-if', { hosts: [mine.id] }));
    assert.equal(own.restarts.length, full.restarts.length, 'every VM is counted');
    assert.ok(own.restarts.length > 0);
    for (const [i, restart] of own.restarts.entries()) {
      // Her binding on the host reaches its VMs, not the hosts they would restart on.
      assert.equal(restart.vmName, full.restarts[i].vmName);
      assert.equal(restart.restarts, full.restarts[i].restarts);
      assert.equal(restart.toHostId, null);
      assert.equal(restart.toHostName, null);
    }
  });
});
