/**
 * A libvirt connection through the API, against a real libvirtd (its own
 * mount namespace) serving libvirt's test hypervisor (test+unix:///default):
 * discovery, lifecycle and snapshots as tasks, and domains changed by
 * somebody else (a second, raw libvirt client) reaching the inventory through
 * libvirt's events — appearing, changing power state, and marked missing.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { LibvirtClient } from '../../../src/protocols/libvirt/libvirt-client.js';
import {
  domainCreate,
  domainDefineXml,
  domainDestroy,
  domainLookupByName,
  domainUndefineFlags,
} from '../../../src/protocols/libvirt/procedures/domain.js';
import { connectUnixSocket } from '../../../src/protocols/libvirt/transports.js';
import {
  startTestServer,
  type ApiAnswer,
  type TestServer,
} from '../../../src/testing/control-plane.js';
import { startLibvirtd, type LibvirtdDaemon } from '../../../src/testing/libvirtd.js';
import { until } from '../../../src/testing/wait.js';

describe('a libvirt connection (test driver) through the API', () => {
  let daemon: LibvirtdDaemon;
  let s: TestServer;
  let token: string;
  /** Somebody else's libvirt session on the same daemon and hypervisor. */
  let outsider: LibvirtClient;
  let connectionId: string;

  before(async () => {
    daemon = await startLibvirtd({ virtlogd: false });
    s = await startTestServer();
    token = await s.login();
    outsider = await LibvirtClient.connect(() => connectUnixSocket(daemon.socketPath), {
      uri: 'test:///default',
    });
  });
  after(async () => {
    await outsider?.close();
    await s?.close();
    await daemon?.stop();
  });

  const vmNamed = async (name: string): Promise<ApiAnswer> =>
    (await s.request('GET', `/vms?filter=name=${name}`, { token })).body.items[0];
  /** Power states of the VM's location history, oldest first. */
  const powerHistory = async (vmId: string): Promise<string[]> =>
    (await s.request('GET', `/vms/${vmId}/location-history`, { token })).body.items
      .map((i: ApiAnswer) => i.powerState)
      .reverse();
  const runTask = async (method: string, path: string, body?: unknown): Promise<ApiAnswer> => {
    const answer = await s.request(method, path, { token, ...(body ? { body } : {}) });
    assert.equal(answer.status, 202, JSON.stringify(answer.body));
    return s.waitForTask(token, answer.body.id);
  };
  /** Waits until the inventory shows what `check` looks for (only libvirt events can bring it: nothing polls). */
  const inventoryShows = (what: string, check: () => Promise<ApiAnswer>) =>
    until(what, check, 20_000, 10);

  test('connections add: the host, the predefined domain, network and pool appear with their facts', async () => {
    const added = await s.request('POST', '/connections', {
      token,
      body: {
        name: 'libvirt-test',
        type: 'libvirt',
        settings: {
          uri: `test+unix:///default?socket=${daemon.socketPath}`,
          hostName: 'lv-test-1',
        },
      },
    });
    assert.equal(added.status, 201, JSON.stringify(added.body));
    assert.equal(added.body.state, 'connected', added.body.lastError);
    assert.equal(added.body.simulated, false);
    assert.ok(added.body.capabilities.includes('vm.snapshot'));
    connectionId = added.body.id;

    const hosts = (await s.request('GET', '/hosts', { token })).body.items;
    assert.equal(hosts.length, 1);
    const host = hosts[0];
    assert.equal(host.name, 'lv-test-1');
    assert.equal(host.facts['hypervisor.type'], 'libvirt-test');
    assert.equal(host.facts['libvirt.driver'], 'test');
    assert.match(host.facts['libvirt.uri'], /^test\+unix:\/\/\/default/);
    assert.match(host.facts['libvirt.version'], /^\d+\.\d+\.\d+$/);
    // libvirt's test hypervisor describes a fixed machine: 16 CPUs and 3 GiB.
    assert.equal(host.facts['cpu.cores'], 16);
    assert.equal(host.facts['memory.totalBytes'], 3 * 1024 ** 3);

    const vm = await vmNamed('test');
    assert.ok(vm, 'the test driver predefines a running domain named test');
    assert.equal(vm.facts['power.state'], 'running');
    assert.equal(vm.facts['vm.uuid'], '6695eb01-f6a4-8304-79aa-97f2502e193f');
    assert.equal(vm.facts['hypervisor.type'], 'libvirt-test');
    assert.equal(vm.facts['cpu.count'], 2);
    assert.equal(vm.facts['memory.bytes'], 8 * 1024 ** 3);
    assert.deepEqual(vm.facts['disk.sources'], ['/guest/diskimage1']);
    assert.deepEqual(vm.facts['network.macs'], ['aa:bb:cc:dd:ee:ff']);
    assert.equal(vm.computed['location.hostId'], host.id);

    const network = (await s.request('GET', '/networks', { token })).body.items[0];
    assert.equal(network.name, 'default');
    assert.equal(network.facts['network.bridge'], 'virbr0');
    assert.deepEqual(network.facts['network.addresses'], ['192.168.122.1/24']);
    const pool = (await s.request('GET', '/datastores', { token })).body.items[0];
    assert.equal(pool.name, 'default-pool');
    assert.equal(pool.facts['storage.capacityBytes'], 100 * 1024 ** 3);
    assert.equal(pool.facts['storage.active'], true);
  });

  test('suspend, resume, reboot, graceful shutdown and start run as tasks and show in the location history', async () => {
    const vm = await vmNamed('test');
    const expectPower = async (action: string, power: string) => {
      const task = await runTask('POST', `/vms/${vm.id}/${action}`);
      assert.equal(task.state, 'succeeded', JSON.stringify(task.error));
      assert.equal(task.result.powerState, power, action);
    };
    await expectPower('suspend', 'suspended');
    await expectPower('resume', 'running');
    await expectPower('reboot', 'running');
    await expectPower('shutdown', 'stopped');
    await expectPower('start', 'running');
    assert.deepEqual(await powerHistory(vm.id), [
      'running',
      'suspended',
      'running',
      'stopped',
      'running',
    ]);
    const impossible = await s.request('POST', `/vms/${vm.id}/start`, { token });
    assert.equal(impossible.status, 409);
    assert.equal(impossible.body.error.code, 'ZEN_INVALID_STATE');
  });

  test('snapshots: taken, listed, reverted to the state they hold, and deleted through libvirt', async () => {
    const vm = await vmNamed('test');
    const taken = await runTask('POST', `/vms/${vm.id}/snapshots`, { name: 'before-upgrade' });
    assert.equal(taken.state, 'succeeded', JSON.stringify(taken.error));
    const listed = (await s.request('GET', `/vms/${vm.id}/snapshots`, { token })).body.items;
    assert.deepEqual(
      listed.map((x: ApiAnswer) => [x.name, x.powerState]),
      [['before-upgrade', 'running']],
    );
    assert.equal((await runTask('POST', `/vms/${vm.id}/stop`)).result.powerState, 'stopped');
    const reverted = await runTask('POST', `/vms/${vm.id}/snapshots/before-upgrade/revert`);
    assert.equal(reverted.state, 'succeeded', JSON.stringify(reverted.error));
    assert.equal((await vmNamed('test')).facts['power.state'], 'running');
    const deleted = await runTask('DELETE', `/vms/${vm.id}/snapshots/before-upgrade`);
    assert.equal(deleted.state, 'succeeded', JSON.stringify(deleted.error));
    assert.deepEqual((await s.request('GET', `/vms/${vm.id}/snapshots`, { token })).body.items, []);
  });

  test('a VM created through Zenith is a libvirt domain; deleting it undefines it', async () => {
    const host = (await s.request('GET', '/hosts', { token })).body.items[0];
    const created = await runTask('POST', '/vms', {
      name: 'zen-made',
      hostId: host.id,
      cpus: 1,
      memoryBytes: 64 * 1048576,
      diskBytes: 0,
    });
    assert.equal(created.state, 'succeeded', JSON.stringify(created.error));
    const { dom } = await outsider.call(domainLookupByName, { name: 'zen-made' });
    const vm = (await s.request('GET', `/vms/${created.result.vmId}`, { token })).body;
    assert.equal(vm.facts['vm.uuid'], dom.uuid);
    assert.equal(vm.facts['vm.createdBy'], 'zenith');
    assert.equal(vm.facts['power.state'], 'stopped');
    const removed = await runTask('DELETE', `/vms/${vm.id}`);
    assert.equal(removed.state, 'succeeded', JSON.stringify(removed.error));
    await assert.rejects(outsider.call(domainLookupByName, { name: 'zen-made' }));
    assert.equal((await s.request('GET', `/vms/${vm.id}`, { token })).body.status, 'missing');
  });

  test('domains defined, started, stopped and undefined outside Zenith appear, change and are marked missing', async (t) => {
    const xml =
      "<domain type='test'><name>outsider-1</name><memory unit='MiB'>128</memory><vcpu>3</vcpu><os><type>hvm</type></os></domain>";
    const definedAt = performance.now();
    const { dom } = await outsider.call(domainDefineXml, { xml });
    const appeared = await inventoryShows('the domain defined outside Zenith', async () => {
      const vm = await vmNamed('outsider-1');
      return vm?.status === 'present' ? vm : undefined;
    });
    t.diagnostic(`defined → in the inventory: ${Math.round(performance.now() - definedAt)} ms`);
    assert.equal(appeared.facts['vm.uuid'], dom.uuid);
    assert.equal(appeared.facts['cpu.count'], 3);
    assert.equal(appeared.facts['memory.bytes'], 128 * 1048576);
    assert.equal(appeared.facts['power.state'], 'stopped');
    assert.equal(appeared.facts['vm.createdBy'], 'outside');

    const startedAt = performance.now();
    await outsider.call(domainCreate, { dom });
    await inventoryShows('the domain started outside Zenith', async () => {
      const vm = await vmNamed('outsider-1');
      return vm?.facts['power.state'] === 'running' ? vm : undefined;
    });
    t.diagnostic(
      `started → running in the inventory: ${Math.round(performance.now() - startedAt)} ms`,
    );
    await outsider.call(domainDestroy, { dom });
    await outsider.call(domainUndefineFlags, { dom, flags: 0 });
    const undefinedAt = performance.now();
    const gone = await inventoryShows('the domain undefined outside Zenith', async () => {
      const vm = await vmNamed('outsider-1');
      return vm?.status === 'missing' ? vm : undefined;
    });
    t.diagnostic(`undefined → missing: ${Math.round(performance.now() - undefinedAt)} ms`);
    assert.equal(gone.id, appeared.id);
    // The destroy and the undefine came back to back: the read after the destroy may already find
    // the domain gone, so "stopped" need not show before the VM goes missing.
    const history = await powerHistory(gone.id);
    assert.deepEqual(history.slice(0, 2), ['stopped', 'running']);
    assert.equal(gone.computed['location.hostId'], null, 'a missing VM is on no host');
    const events = (
      await s.request('GET', `/events?objectId=${gone.id}&limit=50`, { token })
    ).body.items.map((e: ApiAnswer) => e.type);
    assert.ok(
      events.includes('inventory.created') && events.includes('inventory.missing'),
      String(events),
    );

    // A refresh (a full discovery) agrees with what the events said.
    const refreshed = await s.request('POST', `/connections/${connectionId}/refresh`, { token });
    assert.equal(refreshed.status, 200, JSON.stringify(refreshed.body));
    assert.equal((await vmNamed('outsider-1')).status, 'missing');
    assert.equal((await vmNamed('test')).status, 'present');
  });

  test('an action on a domain that vanished behind Zenith fails with ZEN_NOT_FOUND, not a crash', async () => {
    const { dom } = await outsider.call(domainDefineXml, {
      xml: "<domain type='test'><name>short-lived</name><memory>65536</memory><vcpu>1</vcpu><os><type>hvm</type></os></domain>",
    });
    const vm = await inventoryShows('short-lived appears', async () => vmNamed('short-lived'));
    // The undefine's event and the start request race: refused at once or failed by the task, never a crash.
    await outsider.call(domainUndefineFlags, { dom, flags: 0 });
    const answer = await s.request('POST', `/vms/${vm.id}/start`, { token });
    if (answer.status === 202) {
      const task = await s.waitForTask(token, answer.body.id);
      assert.equal(task.state, 'failed');
      assert.equal(task.error.code, 'ZEN_NOT_FOUND');
    } else {
      assert.equal(answer.status, 409);
      assert.equal(answer.body.error.code, 'ZEN_INVALID_STATE', 'refused: the VM is missing');
    }
    assert.equal((await s.request('GET', '/connections', { token })).status, 200);
  });

  test('a daemon that goes away leaves the connection disconnected with the reason, its VMs kept', async () => {
    await outsider.close();
    await daemon.stop();
    const connection = await until(
      'the connection to notice',
      async () => {
        const c = (await s.request('GET', `/connections/${connectionId}`, { token })).body;
        return c.state === 'disconnected' ? c : undefined;
      },
      60_000,
      20,
    );
    // The first report says the connection was lost; later reconnect attempts say the socket is gone.
    assert.match(connection.lastError, /test\+unix:\/\/\/default/);
    const disconnected = (
      await s.request('GET', `/events?type=connection.disconnected&objectId=${connectionId}`, {
        token,
      })
    ).body.items;
    assert.match(disconnected[0].data.error, /lost the connection to test\+unix:\/\/\/default/);
    assert.equal((await vmNamed('test')).status, 'present', 'a lost connection is not a lost VM');
    const action = await s.request('POST', `/vms/${(await vmNamed('test')).id}/stop`, { token });
    assert.equal(action.status, 409);
    assert.equal(action.body.error.code, 'ZEN_CONNECTION_DISCONNECTED');
  });
});
