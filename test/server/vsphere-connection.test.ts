import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startTestServer, type TestServer } from '../../src/testing/control-plane.js';
import { VsphereOperator } from '../../src/testing/vsphere-operator.js';
import {
  startVsphereSimulator,
  type VsphereSimulator,
} from '../../src/testing/vsphere-simulator.js';
import { until } from '../../src/testing/wait.js';

describe('a vCenter added through the API: its inventory, and changes made elsewhere arriving live', () => {
  let sim: VsphereSimulator;
  let s: TestServer;
  let token: string;
  let operator: VsphereOperator;
  const vm = async (id: string) => (await s.request('GET', `/vms/${id}`, { token })).body;
  const vms = async () =>
    (await s.request('GET', '/vms?limit=1000', { token })).body.items as any[];
  const hosts = async () =>
    (await s.request('GET', '/hosts?limit=1000', { token })).body.items as any[];
  const history = async (id: string) =>
    (await s.request('GET', `/vms/${id}/location-history`, { token })).body.items as any[];

  before(async () => {
    sim = await startVsphereSimulator({
      clustersPerDatacenter: 1,
      hostsPerCluster: 3,
      standaloneHostsPerDatacenter: 1,
      vmsPerPool: 3,
    });
    s = await startTestServer();
    token = await s.login();
    operator = await VsphereOperator.connect(sim);
  });
  after(async () => {
    await operator.close();
    await s.close();
    await sim.stop();
  });

  test('a user adds the vCenter by URL, user name, password and thumbprint, and sees every VM with its host and facts', async (t) => {
    const started = Date.now();
    const added = await s.request('POST', '/connections', {
      token,
      body: {
        name: 'vc',
        type: 'vsphere',
        settings: { url: sim.url, username: sim.username, thumbprint: sim.thumbprint },
        secret: sim.password,
      },
    });
    t.diagnostic(`added and synced in ${Date.now() - started} ms`);
    assert.equal(added.status, 201, JSON.stringify(added.body));
    assert.equal(added.body.state, 'connected', added.body.lastError);
    assert.equal(added.body.simulated, false);
    assert.equal(
      JSON.stringify(added.body).includes(sim.password),
      false,
      'the password is never shown',
    );
    const all = await vms();
    assert.equal(all.length, 6);
    const hostIds = new Set((await hosts()).map((h) => h.id));
    assert.equal(hostIds.size, 4);
    for (const item of all) {
      assert.ok(hostIds.has(item.computed['location.hostId']), `${item.name} is on a known host`);
      assert.equal(item.facts['power.state'], 'running');
      assert.equal(item.facts['hypervisor.type'], 'vsphere');
      assert.ok(item.facts['vm.uuid']);
      assert.ok(item.facts['cpu.count'] >= 1);
    }
    const clusters = (await s.request('GET', '/clusters', { token })).body.items;
    assert.deepEqual(
      clusters.map((c: any) => c.name),
      ['DC0_C0'],
    );
    const datastores = (await s.request('GET', '/datastores', { token })).body.items;
    assert.equal(datastores.length, 1);
    assert.ok(datastores[0].facts['storage.capacityBytes'] > 0);
  });

  test("another session powers a VM off, moves one to another host and renames one: Zenith's inventory and location history follow", async (t) => {
    const all = await vms();
    const [first, second, third] = all.filter((v) => v.name.startsWith('DC0_C0_RP0_VM'));
    assert.ok(first && second && third);

    let changedAt = Date.now();
    await operator.powerOff(await operator.vm(first.name));
    await until(`${first.name} to show stopped`, async () =>
      (await vm(first.id)).facts['power.state'] === 'stopped' ? true : undefined,
    );
    t.diagnostic(`power-off seen ${Date.now() - changedAt} ms after the task ended`);
    assert.deepEqual(
      (await history(first.id)).slice(0, 2).map((i) => i.powerState),
      ['stopped', 'running'],
    );

    const hostRefs = await operator.named('HostSystem');
    const from = (await vm(second.id)).computed['location.hostName'];
    const targetName = [...hostRefs.keys()].find(
      (name) => name.startsWith('DC0_C0_H') && name !== from,
    )!;
    changedAt = Date.now();
    await operator.relocate(await operator.vm(second.name), hostRefs.get(targetName)!);
    const moved = await until(`${second.name} to show on ${targetName}`, async () => {
      const now = await vm(second.id);
      return now.computed['location.hostName'] === targetName ? now : undefined;
    });
    t.diagnostic(`move seen ${Date.now() - changedAt} ms after the task ended`);
    const intervals = await history(second.id);
    assert.equal(intervals[0].hostId, moved.computed['location.hostId']);
    assert.equal(intervals[0].to, null, 'the new interval is open');
    assert.equal(
      intervals[1].hostName ?? intervals[1].hostId,
      intervals[1].hostName ? from : intervals[1].hostId,
    );
    assert.notEqual(intervals[1].to, null, 'the interval on the old host is closed');

    changedAt = Date.now();
    await operator.rename(await operator.vm(third.name), 'renamed-elsewhere');
    await until('the new name', async () =>
      (await vm(third.id)).name === 'renamed-elsewhere' ? true : undefined,
    );
    t.diagnostic(`rename seen ${Date.now() - changedAt} ms after the task ended`);
    assert.equal((await vms()).length, 6, 'a rename is the same VM, not a new one');
  });

  test('custom attributes set in vCenter become facts named after the attribute (read on refresh: the simulator reports no change for them)', async () => {
    const fields = operator.client.content.customFieldsManager!;
    const def: any = await operator.client.invoke('AddCustomFieldDef', fields, {
      name: 'cost center',
      moType: 'VirtualMachine',
    });
    const target = (await vms())[0];
    await operator.client.invoke('SetField', fields, {
      entity: await operator.vm(target.name),
      key: def.key,
      value: 'CC-42',
    });
    const refreshed = await s.request('POST', '/connections/vc/refresh', { token });
    assert.equal(refreshed.status, 200, JSON.stringify(refreshed.body));
    assert.equal((await vm(target.id)).facts['custom.cost_center'], 'CC-42');
  });

  test('the simulator restarts: Zenith logs in again, re-reads everything, and holds no duplicates', async () => {
    const before = new Map((await vms()).map((v) => [v.facts['vm.uuid'], v.id]));
    const restartedAt = Date.now();
    await sim.restart();
    await until('the connection to re-sync after the restart', async () => {
      const connection = (await s.request('GET', '/connections/vc', { token })).body;
      return connection.state === 'connected' && connection.lastSyncAt > restartedAt
        ? connection
        : undefined;
    });
    // The restarted simulator is its initial model again: all powered on, original names.
    const all = await until('the restarted inventory', async () => {
      const items = await vms();
      return items.every((v) => v.facts['power.state'] === 'running') ? items : undefined;
    });
    const present = all.filter((v) => v.status === 'present');
    assert.equal(present.length, 6);
    assert.equal(new Set(present.map((v) => v.name)).size, 6, 'no duplicate names');
    for (const item of present)
      assert.equal(before.get(item.facts['vm.uuid']), item.id, `${item.name} kept its id`);
    const presentHosts = (await hosts()).filter((h) => h.status === 'present');
    assert.equal(presentHosts.length, 4);
  });
});
