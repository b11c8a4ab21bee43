import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startTestServer, type TestServer } from '../../src/testing/control-plane.js';

describe("a VM's capabilities, as its connection's driver declares them", () => {
  let s: TestServer;
  let token: string;
  before(async () => {
    s = await startTestServer();
    token = await s.login();
    const added = await s.request('POST', '/connections', {
      token,
      body: { name: 'lab', type: 'simulated', settings: { hostsPerCluster: 1, vmsPerHost: 1 } },
    });
    assert.equal(added.status, 201, JSON.stringify(added.body));
  });
  after(async () => s.close());

  test('a simulated VM answers its driver type and what it can do, by id or name', async () => {
    const vm = (await s.request('GET', '/vms?limit=1', { token })).body.items[0];
    const byId = await s.request('GET', `/vms/${vm.id}/capabilities`, { token });
    assert.equal(byId.status, 200, JSON.stringify(byId.body));
    assert.equal(byId.body.vmId, vm.id);
    assert.equal(byId.body.connectionType, 'simulated');
    assert.equal(byId.body.simulated, true);
    for (const capability of ['vm.start', 'vm.clone', 'vm.snapshot', 'vm.migrate'])
      assert.ok(byId.body.capabilities.includes(capability), capability);
    // The simulator cannot rename or reconfigure: not offered.
    assert.ok(!byId.body.capabilities.includes('vm.rename'));
    assert.ok(!byId.body.capabilities.includes('vm.backup'), 'no disks to read');
    assert.ok(!byId.body.capabilities.includes('vm.reconfigure'));
    const byName = await s.request('GET', `/vms/${encodeURIComponent(vm.name)}/capabilities`, {
      token,
    });
    assert.deepEqual(byName.body, byId.body);
  });

  test('an unknown VM is a coded 404', async () => {
    const missing = await s.request('GET', '/vms/no-such-vm/capabilities', { token });
    assert.equal(missing.status, 404);
    assert.equal(missing.body.error.code, 'ZEN_NOT_FOUND');
  });
});
