/**
 * One vCenter, one connection: adding the same vCenter again (known by its instance UUID, however
 * its address is spelled) or by two adds at once is a 409 ZEN_CONFLICT naming the connection that
 * has it, and leaves nothing behind. Against govmomi's vSphere simulator.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  startTestServer,
  type ApiAnswer,
  type TestServer,
} from '../../src/testing/control-plane.js';
import {
  assertOneOfTwoAddsWins,
  assertRefusedAsDuplicate,
  savedConnectionsAndIdentities,
} from '../../src/testing/connection-conflicts.js';
import {
  startVsphereSimulator,
  type VsphereSimulator,
} from '../../src/testing/vsphere-simulator.js';

describe('the same vCenter added twice', () => {
  let sim: VsphereSimulator;
  let s: TestServer;
  let token: string;
  let first: { id: string; name: string };

  before(async () => {
    sim = await startVsphereSimulator({
      clustersPerDatacenter: 1,
      hostsPerCluster: 1,
      standaloneHostsPerDatacenter: 0,
      vmsPerPool: 2,
    });
    s = await startTestServer();
    token = await s.login();
  });
  after(async () => {
    await s?.close();
    await sim?.stop();
  });

  const add = (name: string, url = sim.url) =>
    s.request('POST', '/connections', {
      token,
      body: {
        name,
        type: 'vsphere',
        settings: { url, username: sim.username, thumbprint: sim.thumbprint },
        secret: sim.password,
      },
    });
  const saved = () => savedConnectionsAndIdentities(s, token);
  /** The simulator's VMs as the inventory shows them (present ones), by their vSphere UUID. */
  const presentVms = async (): Promise<string[]> =>
    (await s.request('GET', '/vms?limit=1000', { token })).body.items
      .filter((vm: ApiAnswer) => vm.status !== 'missing')
      .map((vm: ApiAnswer) => vm.facts['vm.uuid'] as string)
      .sort();
  const assertRefused = assertRefusedAsDuplicate;

  test('the first connection is added and discovers the VMs', async () => {
    const added = await add('vc-a');
    assert.equal(added.status, 201, JSON.stringify(added.body));
    assert.equal(added.body.state, 'connected', added.body.lastError);
    first = { id: added.body.id, name: added.body.name };
    assert.equal((await presentVms()).length, 2);
  });

  test('the same vCenter again, by the same URL or by another name for its host, is refused and nothing is saved', async (t) => {
    const before = await saved();
    const started = performance.now();
    assertRefused(await add('vc-b'), first);
    t.diagnostic(`refused after ${Math.round(performance.now() - started)} ms (one probe login)`);
    const respelled = sim.url.replace('127.0.0.1', 'localhost');
    assert.notEqual(respelled, sim.url);
    assertRefused(await add('vc-c', respelled), first);
    assert.deepEqual(await saved(), before);
    const vms = await presentVms();
    assert.equal(vms.length, 2);
    assert.equal(new Set(vms).size, 2, 'each VM once');
  });

  test('once the first is removed the vCenter can be added again; of two adds at once exactly one wins', async () => {
    const removed = await s.request('DELETE', `/connections/${first.id}`, { token });
    assert.equal(removed.status, 200, JSON.stringify(removed.body));
    await assertOneOfTwoAddsWins(s, token, () => Promise.all([add('vc-d'), add('vc-e')]));
    const vms = await presentVms();
    assert.equal(vms.length, 2);
    assert.equal(new Set(vms).size, 2, 'each VM once');
  });
});
