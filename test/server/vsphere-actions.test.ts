import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { until } from '../../src/testing/wait.js';
import { startTestServer, type TestServer } from '../../src/testing/control-plane.js';
import { VsphereOperator } from '../../src/testing/vsphere-operator.js';
import {
  startVsphereSimulator,
  type VsphereSimulator,
} from '../../src/testing/vsphere-simulator.js';

const MiB = 1024 * 1024;

describe('every VM action on a vCenter, as Zenith tasks through the API', () => {
  let sim: VsphereSimulator;
  let s: TestServer;
  let token: string;
  let operator: VsphereOperator;
  const vm = async (idOrName: string) =>
    (await s.request('GET', `/vms/${encodeURIComponent(idOrName)}`, { token })).body;
  const run = async (method: string, path: string, body?: unknown) => {
    const queued = await s.request(method, path, {
      token,
      ...(body !== undefined ? { body } : {}),
    });
    assert.equal(queued.status, 202, JSON.stringify(queued.body));
    return s.waitForTask(token, queued.body.id);
  };
  const succeeded = async (method: string, path: string, body?: unknown) => {
    const task = await run(method, path, body);
    assert.equal(task.state, 'succeeded', JSON.stringify(task.error));
    return task;
  };
  const history = async (id: string) =>
    ((await s.request('GET', `/vms/${id}/location-history`, { token })).body.items as any[]).map(
      (i) => i.powerState,
    );

  before(async () => {
    sim = await startVsphereSimulator({
      clustersPerDatacenter: 1,
      hostsPerCluster: 2,
      standaloneHostsPerDatacenter: 0,
      vmsPerPool: 4,
      datastores: 2,
      toolsVms: ['DC0_C0_RP0_VM3'],
    });
    s = await startTestServer();
    token = await s.login();
    operator = await VsphereOperator.connect(sim);
    const added = await s.request('POST', '/connections', {
      token,
      body: {
        name: 'vc',
        type: 'vsphere',
        settings: { url: sim.url, username: sim.username, thumbprint: sim.thumbprint },
        secret: sim.password,
      },
    });
    assert.equal(added.body.state, 'connected', added.body.lastError);
  });
  after(async () => {
    await operator.close();
    await s.close();
    await sim.stop();
  });

  test('the connection declares what it can do', async () => {
    const connection = (await s.request('GET', '/connections/vc', { token })).body;
    for (const capability of [
      'vm.start',
      'vm.stop',
      'vm.shutdown',
      'vm.reboot',
      'vm.reset',
      'vm.suspend',
      'vm.migrate',
      'vm.relocateStorage',
      'vm.clone',
      'vm.create',
      'vm.snapshot',
      'vm.rename',
      'vm.reconfigure',
      'vm.delete',
    ])
      assert.ok(connection.capabilities.includes(capability), capability);
    assert.ok(!connection.capabilities.includes('vm.console'));
    const first = await vm('DC0_C0_RP0_VM0');
    const console = await s.request('POST', `/vms/${first.id}/console-tickets`, {
      token,
      body: { kind: 'serial' },
    });
    assert.equal(console.body.error?.code, 'ZEN_UNSUPPORTED');
  });

  test('power off, power on, suspend, resume and reset: each a task, each in the location history', async () => {
    const target = await vm('DC0_C0_RP0_VM0');
    await succeeded('POST', `/vms/${target.id}/stop`);
    assert.equal((await vm(target.id)).facts['power.state'], 'stopped');
    await succeeded('POST', `/vms/${target.id}/start`);
    assert.equal((await vm(target.id)).facts['power.state'], 'running');
    await succeeded('POST', `/vms/${target.id}/suspend`);
    assert.equal((await vm(target.id)).facts['power.state'], 'suspended');
    await succeeded('POST', `/vms/${target.id}/resume`);
    assert.equal((await vm(target.id)).facts['power.state'], 'running');
    const reset = await succeeded('POST', `/vms/${target.id}/reset`);
    assert.equal(reset.result.powerState, 'running');
    assert.deepEqual((await history(target.id)).slice(0, 5), [
      'running',
      'suspended',
      'running',
      'stopped',
      'running',
    ]);
    const refused = await s.request('POST', `/vms/${target.id}/start`, { token });
    assert.equal(
      refused.body.error.code,
      'ZEN_INVALID_STATE',
      'starting a running VM is refused before a task',
    );
  });

  test('guest shutdown and reboot need VMware Tools: without them a coded error, and the VM keeps running', async () => {
    const target = await vm('DC0_C0_RP0_VM1');
    assert.equal(target.facts['tools.status'], 'notRunning');
    for (const action of ['shutdown', 'reboot']) {
      const task = await run('POST', `/vms/${target.id}/${action}`);
      assert.equal(task.state, 'failed');
      assert.equal(task.error.code, 'VIM_TOOLS_UNAVAILABLE', action);
    }
    assert.equal((await vm(target.id)).facts['power.state'], 'running');
  });

  test('with VMware Tools running, guest shutdown stops the VM; the simulator has no RebootGuest, which is a coded error too', async () => {
    const target = await vm('DC0_C0_RP0_VM3');
    assert.equal(target.facts['tools.status'], 'running');
    const reboot = await run('POST', `/vms/${target.id}/reboot`);
    assert.equal(reboot.state, 'failed');
    assert.equal(reboot.error.code, 'VIM_NOT_SUPPORTED');
    await succeeded('POST', `/vms/${target.id}/shutdown`);
    assert.equal((await vm(target.id)).facts['power.state'], 'stopped');
  });

  test('relocate to another host, then to another datastore: the location history gets the new host', async () => {
    const target = await vm('DC0_C0_RP0_VM2');
    const hosts = ((await s.request('GET', '/hosts', { token })).body.items as any[]).filter(
      (h) => h.status === 'present',
    );
    const other = hosts.find((h) => h.id !== target.computed['location.hostId'])!;
    await succeeded('POST', `/vms/${target.id}/migrate`, { targetHostId: other.name });
    const moved = await vm(target.id);
    assert.equal(moved.computed['location.hostId'], other.id);
    const intervals = (await s.request('GET', `/vms/${target.id}/location-history`, { token })).body
      .items;
    assert.equal(intervals[0].hostId, other.id);
    assert.equal(intervals[1].hostId, target.computed['location.hostId']);

    const datastores = (await s.request('GET', '/datastores', { token })).body.items as any[];
    const elsewhere = datastores.find((d) => !moved.facts['storage.datastores'].includes(d.name))!;
    await succeeded('POST', `/vms/${target.id}/migrate`, { targetDatastoreId: elsewhere.name });
    const relocated = await vm(target.id);
    assert.deepEqual(relocated.facts['storage.datastores'], [elsewhere.name]);
    assert.equal(relocated.computed['location.hostId'], other.id, 'a storage move keeps the host');
    assert.equal(
      (await s.request('POST', `/vms/${target.id}/migrate`, { token, body: {} })).body.error.code,
      'ZEN_BAD_REQUEST',
    );
  });

  test('rename and reconfigure CPU and memory', async () => {
    const target = await vm('DC0_C0_RP0_VM2');
    await succeeded('POST', `/vms/${target.id}/rename`, { name: 'web-frontend' });
    assert.equal((await vm(target.id)).name, 'web-frontend');
    assert.ok(
      (await operator.named('VirtualMachine')).has('web-frontend'),
      'vCenter has the new name',
    );
    const clash = await s.request('POST', `/vms/${target.id}/rename`, {
      token,
      body: { name: 'DC0_C0_RP0_VM0' },
    });
    assert.equal(clash.body.error.code, 'ZEN_CONFLICT');
    await succeeded('POST', `/vms/${target.id}/reconfigure`, { cpus: 4, memoryBytes: 2048 * MiB });
    const after = await vm(target.id);
    assert.equal(after.facts['cpu.count'], 4);
    assert.equal(after.facts['memory.bytes'], 2048 * MiB);
    // A change made elsewhere afterwards does not bring the old sizes back (the simulator never reports a reconfiguration).
    await operator.powerOff(await operator.vm('web-frontend'));
    const off = await until('the power-off made elsewhere', async () => {
      const now = await vm(target.id);
      return now.facts['power.state'] === 'stopped' ? now : undefined;
    });
    assert.equal(off.facts['cpu.count'], 4);
    assert.equal(off.facts['memory.bytes'], 2048 * MiB);
    await succeeded('POST', `/vms/${target.id}/start`);
    const odd = await s.request('POST', `/vms/${target.id}/reconfigure`, {
      token,
      body: { memoryBytes: 100 * MiB + 1 },
    });
    assert.equal(odd.body.error.code, 'ZEN_BAD_REQUEST');
  });

  test('snapshots: take, list, revert to, remove', async () => {
    const target = await vm('DC0_C0_RP0_VM1');
    const taken = await succeeded('POST', `/vms/${target.id}/snapshots`, {
      name: 'before-upgrade',
    });
    assert.equal(taken.result.name, 'before-upgrade');
    const listed = (await s.request('GET', `/vms/${target.id}/snapshots`, { token })).body.items;
    assert.deepEqual(
      listed.map((x: any) => x.name),
      ['before-upgrade'],
    );
    assert.equal(listed[0].powerState, 'running');
    await succeeded('POST', `/vms/${target.id}/stop`);
    await succeeded('POST', `/vms/${target.id}/snapshots/before-upgrade/revert`);
    await succeeded('DELETE', `/vms/${target.id}/snapshots/before-upgrade`);
    assert.deepEqual(
      (await s.request('GET', `/vms/${target.id}/snapshots`, { token })).body.items,
      [],
    );
  });

  test('clone a stopped VM next to it, create one from scratch and one from a template; then destroy one', async () => {
    const source = await vm('DC0_C0_RP0_VM3');
    assert.equal(source.facts['power.state'], 'stopped');
    const cloned = await succeeded('POST', `/vms/${source.id}/clone`, { name: 'vm3-copy' });
    const copy = await vm(cloned.result.vmId);
    assert.equal(copy.name, 'vm3-copy');
    assert.equal(copy.facts['power.state'], 'stopped');
    assert.notEqual(copy.facts['vm.uuid'], source.facts['vm.uuid']);
    assert.equal(copy.computed['location.hostId'], source.computed['location.hostId']);
    const taken = await s.request('POST', `/vms/${source.id}/clone`, {
      token,
      body: { name: 'vm3-copy' },
    });
    assert.equal(taken.body.error.code, 'ZEN_CONFLICT');

    const host = ((await s.request('GET', '/hosts', { token })).body.items as any[])[0];
    const created = await succeeded('POST', '/vms', {
      name: 'fresh',
      hostId: host.id,
      cpus: 2,
      memoryBytes: 512 * MiB,
      diskBytes: 1024 * MiB,
      options: { guestId: 'debian12_64Guest' },
    });
    const fresh = await vm(created.result.vmId);
    assert.equal(fresh.facts['cpu.count'], 2);
    assert.equal(fresh.facts['memory.bytes'], 512 * MiB);
    assert.equal(fresh.facts['guest.os'], 'debian12_64Guest');
    assert.equal(fresh.computed['location.hostId'], host.id);

    const fromTemplate = await succeeded('POST', '/vms', {
      name: 'from-template',
      hostId: host.id,
      cpus: 1,
      memoryBytes: 256 * MiB,
      diskBytes: 0,
      options: { template: 'vm3-copy' },
    });
    const templated = await vm(fromTemplate.result.vmId);
    assert.equal(templated.facts['memory.bytes'], 256 * MiB);
    assert.equal(templated.computed['location.hostId'], host.id);

    await succeeded('DELETE', `/vms/${fresh.id}`);
    assert.equal((await vm(fresh.id)).status, 'missing');
    assert.equal(
      (await operator.named('VirtualMachine')).has('fresh'),
      false,
      'vCenter no longer has it',
    );
  });

  test('a linked clone is made from the current snapshot; a VM without one is refused and nothing is made', async () => {
    const source = await vm('DC0_C0_RP0_VM3');
    assert.equal(source.facts['power.state'], 'stopped');
    const refused = await run('POST', `/vms/${source.id}/clone`, {
      name: 'vm3-linked',
      linked: true,
    });
    assert.equal(refused.state, 'failed');
    assert.equal(refused.error.code, 'ZEN_INVALID_STATE');
    assert.equal((await operator.named('VirtualMachine')).has('vm3-linked'), false);

    await succeeded('POST', `/vms/${source.id}/snapshots`, { name: 'golden' });
    const cloned = await succeeded('POST', `/vms/${source.id}/clone`, {
      name: 'vm3-linked',
      linked: true,
    });
    const copy = await vm(cloned.result.vmId);
    assert.equal(copy.name, 'vm3-linked');
    assert.equal(copy.facts['power.state'], 'stopped');
    assert.notEqual(copy.facts['vm.uuid'], source.facts['vm.uuid']);
    assert.equal(copy.computed['location.hostId'], source.computed['location.hostId']);
    assert.equal((await operator.named('VirtualMachine')).has('vm3-linked'), true);
  });

  test('metrics of a running VM from the PerformanceManager; a stopped VM has none', async () => {
    const running = await vm('DC0_C0_RP0_VM0');
    assert.equal(running.facts['power.state'], 'running');
    const answer = await s.request('GET', `/vms/${running.id}/metrics`, { token });
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
    const metrics = answer.body.metrics;
    // The simulator answers an hour of realtime samples (180 of 20 s) drawn from recorded data.
    assert.ok(metrics.cpuTimeMs > 0, 'CPU time used (cpu.used, summed)');
    assert.ok(
      metrics.memoryUsedBytes > 0 && metrics.memoryUsedBytes % 1024 === 0,
      'mem.consumed is in KB',
    );
    assert.equal(metrics.memoryConfiguredBytes, running.facts['memory.bytes']);
    assert.ok(
      metrics.diskReadBytes > 0 && metrics.diskReadBytes % (20 * 1024) === 0,
      'KB/s × 20 s',
    );
    assert.ok(metrics.diskWriteBytes > 0);
    assert.ok(metrics.netRxBytes > 0 && metrics.netTxBytes > 0);
    assert.ok(Math.abs(metrics.sampledAt - Date.now()) < 5 * 60_000, 'the newest sample is recent');

    const stopped = await vm('DC0_C0_RP0_VM3');
    const none = await s.request('GET', `/vms/${stopped.id}/metrics`, { token });
    assert.equal(none.status, 200);
    assert.equal(none.body.metrics, null);
  });

  test("growing a VM through reconfigure must fit its group's quota; shrinking it is never refused", async () => {
    const target = await vm('DC0_C0_RP0_VM0');
    const cpus = target.facts['cpu.count'] as number;
    assert.equal(
      (await s.request('POST', '/groups', { token, body: { name: 'vmw' } })).status,
      201,
    );
    await s.plane.identities.createUser({
      name: 'vic',
      role: 'operator',
      password: 'vic-password-long',
    });
    await s.request('POST', '/groups/vmw/members', { token, body: { member: 'vic' } });
    const vic = await s.login('vic', 'vic-password-long');
    const owned = await s.request('PUT', `/vms/${target.id}/ownership`, {
      token,
      body: { group: 'vmw' },
    });
    assert.equal(owned.status, 200, JSON.stringify(owned.body));
    await s.request('PUT', '/groups/vmw/quota', { token, body: { vcpus: cpus + 1 } });
    const over = await s.request('POST', `/vms/${target.id}/reconfigure`, {
      token: vic,
      body: { cpus: cpus + 2 },
    });
    assert.equal(over.status, 409, JSON.stringify(over.body));
    assert.equal(over.body.error.code, 'ZEN_QUOTA_EXCEEDED');
    assert.deepEqual(
      [
        over.body.error.details.resource,
        over.body.error.details.used,
        over.body.error.details.requested,
      ],
      ['vcpus', cpus, 2],
    );
    const grown = await s.request('POST', `/vms/${target.id}/reconfigure`, {
      token: vic,
      body: { cpus: cpus + 1 },
    });
    assert.equal(grown.status, 202, JSON.stringify(grown.body));
    assert.equal((await s.waitForTask(token, grown.body.id)).state, 'succeeded');
    const quota = (await s.request('GET', '/groups/vmw/quota', { token: vic })).body;
    assert.deepEqual(
      [quota.used.vcpus, quota.reserved.vcpus, quota.available.vcpus],
      [cpus + 1, 0, 0],
    );
    // At the limit, a change that takes nothing more goes through.
    const shrunk = await s.request('POST', `/vms/${target.id}/reconfigure`, {
      token: vic,
      body: { cpus: 1 },
    });
    assert.equal(shrunk.status, 202, JSON.stringify(shrunk.body));
    assert.equal((await s.waitForTask(token, shrunk.body.id)).state, 'succeeded');
    assert.equal((await s.request('GET', '/groups/vmw/quota', { token })).body.used.vcpus, 1);
  });
});
