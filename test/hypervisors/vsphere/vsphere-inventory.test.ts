import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { systemClock } from '../../../src/core/clock.js';
import { silentLogger } from '../../../src/core/logger.js';
import {
  isDiscoveredVm,
  type DiscoveredObject,
  type DiscoveredVm,
} from '../../../src/hypervisors/driver.js';
import { DriverRegistry } from '../../../src/hypervisors/registry.js';
import type { VsphereDriver } from '../../../src/hypervisors/vsphere/vsphere-driver.js';
import {
  startVsphereSimulator,
  type SimulatorShape,
  type VsphereSimulator,
} from '../../../src/testing/vsphere-simulator.js';

const registry = new DriverRegistry();

function driverFor(sim: VsphereSimulator): VsphereDriver {
  const family = registry.get('vsphere');
  const settings = family.validate({
    url: sim.url,
    username: sim.username,
    thumbprint: sim.thumbprint,
  });
  return family.create(settings, sim.password, {
    connectionId: 'test',
    clock: systemClock,
    logger: silentLogger,
    stateDir: '/nonexistent',
  }) as VsphereDriver;
}

async function discoverShape(shape: SimulatorShape): Promise<DiscoveredObject[]> {
  const sim = await startVsphereSimulator(shape);
  const driver = driverFor(sim);
  try {
    await driver.connect();
    return (await driver.discover()).objects;
  } finally {
    await driver.close();
    await sim.stop();
  }
}

const ofKind = (objects: DiscoveredObject[], kind: string) =>
  objects.filter((o) => o.kind === kind);
const byId = (objects: DiscoveredObject[]) => new Map(objects.map((o) => [o.externalId, o]));

describe('vSphere discovery of inventories of several shapes', () => {
  test('a vCenter with a cluster and a standalone host: every VM under its host, hosts under cluster or datacenter, with facts', async () => {
    const objects = await discoverShape({
      clustersPerDatacenter: 1,
      hostsPerCluster: 3,
      standaloneHostsPerDatacenter: 1,
      vmsPerPool: 2,
    });
    const index = byId(objects);
    assert.equal(ofKind(objects, 'datacenter').length, 1);
    assert.equal(ofKind(objects, 'cluster').length, 1);
    const hosts = ofKind(objects, 'host');
    assert.equal(hosts.length, 4);
    assert.deepEqual(hosts.map((h) => h.parent?.kind).sort(), [
      'cluster',
      'cluster',
      'cluster',
      'datacenter',
    ]);
    const vms = objects.filter(isDiscoveredVm);
    assert.equal(vms.length, 4);
    for (const vm of vms) {
      assert.equal(vm.parent?.kind, 'host');
      assert.equal(index.get(vm.hostExternalId!)?.kind, 'host');
      assert.equal(vm.powerState, 'running');
      assert.match(String(vm.facts['vm.uuid']), /^[0-9a-f-]{36}$/);
      assert.equal(vm.facts['hypervisor.type'], 'vsphere');
      assert.equal(typeof vm.facts['cpu.count'], 'number');
      assert.ok((vm.facts['memory.bytes'] as number) >= 32 * 1024 * 1024);
      assert.ok((vm.facts['storage.datastores'] as string[]).length >= 1);
      assert.equal(vm.facts['tools.status'], 'notRunning');
      assert.equal(typeof vm.facts['guest.os'], 'string');
    }
    assert.equal(new Set(vms.map((v) => v.facts['vm.uuid'])).size, 4, 'BIOS uuids differ');
    for (const host of hosts) {
      assert.ok((host.facts['cpu.cores'] as number) > 0);
      assert.ok((host.facts['memory.totalBytes'] as number) > 0);
      assert.equal(host.facts['host.state'], 'connected');
    }
    const datastores = ofKind(objects, 'datastore');
    assert.equal(datastores.length, 1);
    assert.ok((datastores[0]!.facts['storage.capacityBytes'] as number) > 0);
    assert.equal(datastores[0]!.parent?.kind, 'datacenter');
    assert.ok(ofKind(objects, 'network').length >= 2, 'VM Network and the port groups');
    const pools = ofKind(objects, 'resourceGroup');
    assert.ok(pools.some((p) => p.parent?.kind === 'cluster' && p.facts['vsphere.root'] === true));
  });

  test('two datacenters in folders, two clusters each with child resource pools and two datastores', async () => {
    const objects = await discoverShape({
      datacenters: 2,
      folders: 2,
      clustersPerDatacenter: 2,
      hostsPerCluster: 2,
      standaloneHostsPerDatacenter: 0,
      poolsPerCluster: 2,
      vmsPerPool: 1,
      datastores: 2,
    });
    const index = byId(objects);
    const datacenters = ofKind(objects, 'datacenter');
    assert.equal(datacenters.length, 2);
    const clusters = ofKind(objects, 'cluster');
    assert.equal(clusters.length, 4);
    for (const cluster of clusters)
      assert.equal(index.get(cluster.parent!.externalId)?.kind, 'datacenter');
    assert.equal(ofKind(objects, 'host').length, 8);
    // One VM in each cluster's root pool (the model puts VMs only in the root pool).
    const vms: DiscoveredVm[] = objects.filter(isDiscoveredVm);
    assert.equal(vms.length, 4);
    const pools = ofKind(objects, 'resourceGroup');
    assert.equal(pools.length, 4 * 3, 'a root pool and two child pools per cluster');
    assert.equal(ofKind(objects, 'datastore').length, 4);
    for (const dc of datacenters) {
      const hostsHere = ofKind(objects, 'host').filter(
        (h) => index.get(h.parent!.externalId)?.parent?.externalId === dc.externalId,
      );
      assert.equal(hostsHere.length, 4, `hosts of ${dc.name}`);
    }
  });

  test('a standalone ESXi: one host, its VMs, under the ha-datacenter', async () => {
    const objects = await discoverShape({ esx: true, vmsPerPool: 3 });
    assert.equal(ofKind(objects, 'host').length, 1);
    assert.equal(ofKind(objects, 'cluster').length, 0);
    const vms = objects.filter(isDiscoveredVm);
    assert.equal(vms.length, 3);
    const host = ofKind(objects, 'host')[0]!;
    assert.ok(vms.every((vm) => vm.hostExternalId === host.externalId));
    assert.equal(ofKind(objects, 'datacenter').length, 1);
  });

  test('bad settings are ZEN_CONFIG_INVALID before anything is tried; a missing password fails connect', async () => {
    const family = registry.get('vsphere');
    assert.throws(() => family.validate({ url: 'http://vc/sdk', username: 'u' }), {
      code: 'ZEN_CONFIG_INVALID',
    });
    assert.throws(() => family.validate({ url: 'https://u:p@vc/sdk', username: 'u' }), {
      code: 'ZEN_CONFIG_INVALID',
    });
    assert.throws(() => family.validate({ url: 'https://vc/sdk' }), { code: 'ZEN_CONFIG_INVALID' });
    assert.throws(
      () => family.validate({ url: 'https://vc/sdk', username: 'u', thumbprint: 'xyz' }),
      { code: 'ZEN_CONFIG_INVALID' },
    );
    assert.throws(() => family.validate({ url: 'https://vc/sdk', username: 'u', colour: 'red' }), {
      code: 'ZEN_CONFIG_INVALID',
    });
    assert.equal(
      family.validate({ url: 'vc.example.com', username: 'u' }).url,
      'https://vc.example.com/sdk',
    );
    const driver = family.create(
      family.validate({ url: 'https://127.0.0.1:1/sdk', username: 'u' }),
      null,
      {
        connectionId: 't',
        clock: systemClock,
        logger: silentLogger,
        stateDir: '/nonexistent',
      },
    );
    await assert.rejects(driver.connect(), { code: 'ZEN_CONFIG_INVALID' });
  });
});
