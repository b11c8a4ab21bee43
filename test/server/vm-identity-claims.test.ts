/**
 * A VM changes connections only when the control plane moves it (review
 * finding 5): an enrolled agent that reports a VM with another connection's
 * VM UUID (a fact every viewer can read) gets a VM of its own, shown as a
 * conflict; the known VM stays where it is, and its actions go to its host.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ManualClock } from '../../src/core/clock.js';
import type { DiscoveredVm } from '../../src/hypervisors/driver.js';
import { VmHandovers } from '../../src/services/inventory/vm-handovers.js';
import {
  startTestServer,
  type ApiAnswer,
  type TestServer,
} from '../../src/testing/control-plane.js';
import { ensureGuestImage, GUEST_KERNEL_APPEND } from '../../src/testing/guest-image.js';
import { startScriptedAgent, type ScriptedAgent } from '../../src/testing/scripted-agent.js';
import { until } from '../../src/testing/wait.js';

describe('a second claimant of a VM UUID', () => {
  let s: TestServer;
  let admin: string;
  let rogue: ScriptedAgent | undefined;
  const images = mkdtempSync(join(tmpdir(), 'zenith-claims-'));
  before(async () => {
    s = await startTestServer();
    admin = await s.login();
  });
  after(async () => {
    await rogue?.close();
    await s.close();
    rmSync(images, { recursive: true, force: true });
  });

  test('an agent reporting a known VM UUID gets a conflicting VM of its own, never the VM', async () => {
    const image = await ensureGuestImage();
    const added = await s.request('POST', '/connections', {
      token: admin,
      body: {
        name: 'local',
        type: 'qemu',
        settings: { storageRoots: [images, dirname(image.kernel)], accelerator: 'tcg' },
      },
    });
    assert.equal(added.status, 201, JSON.stringify(added.body));
    const host = (await s.request('GET', '/hosts', { token: admin })).body.items[0];
    const create = await s.request('POST', '/vms', {
      token: admin,
      body: {
        name: 'victim',
        hostId: host.id,
        cpus: 1,
        memoryBytes: 64 * 1048576,
        diskBytes: 0,
        options: { kernel: image.kernel, initrd: image.initrd, cmdline: GUEST_KERNEL_APPEND },
      },
    });
    const task = await s.waitForTask(admin, create.body.id);
    assert.equal(task.state, 'succeeded', JSON.stringify(task.error));
    const victim = (await s.request('GET', `/vms/${task.result.vmId}`, { token: admin })).body;
    const uuid = victim.facts['vm.uuid'] as string;
    assert.match(uuid, /^[0-9a-f-]{36}$/);

    // What the tampered agent claims: a VM carrying the victim's UUID.
    const stolen: DiscoveredVm = {
      kind: 'vm',
      externalId: 'stolen-1',
      name: 'stolen',
      parent: { kind: 'host', externalId: 'rogue.lab' },
      hostExternalId: 'rogue.lab',
      powerState: 'running',
      facts: { 'vm.uuid': uuid, 'power.state': 'running' },
    };
    rogue = await startScriptedAgent({
      server: s.baseUrl,
      adminToken: admin,
      hostname: 'rogue.lab',
      snapshot: {
        objects: [
          { kind: 'host', externalId: 'rogue.lab', name: 'rogue.lab', parent: null, facts: {} },
          stolen,
        ],
      },
    });
    const claimant = await until('the rogue agent’s VM in the inventory', async () => {
      const vms = (await s.request('GET', '/vms?filter=name=stolen', { token: admin })).body.items;
      return vms?.[0];
    });
    const after = (await s.request('GET', `/vms/${victim.id}`, { token: admin })).body;
    assert.equal(after.connectionId, victim.connectionId, 'the VM stays on its connection');
    assert.equal(after.name, 'victim');
    assert.equal(after.computed['location.hostId'], host.id);
    assert.notEqual(claimant.id, victim.id);
    assert.deepEqual(claimant.computed['vm.uuidConflict'], [victim.id]);
    assert.deepEqual(after.computed['vm.uuidConflict'], [claimant.id]);
    const events = (
      await s.request('GET', '/events?type=inventory.conflict&limit=10', { token: admin })
    ).body.items as ApiAnswer[];
    const conflict = events.find((event) => event.objectId === claimant.id);
    assert.ok(conflict, JSON.stringify(events));
    assert.equal(conflict.data.vmId, victim.id);
    assert.equal(conflict.data.uuid, uuid);

    // The VM's actions go to its own host: the rogue agent is never asked anything of a VM (what
    // any connected agent is asked: its inventory, and its storage scanned for the image library).
    const removal = await s.request('DELETE', `/vms/${victim.id}`, { token: admin });
    assert.equal((await s.waitForTask(admin, removal.body.id)).state, 'succeeded');
    const housekeeping = new Set(['discover', 'startStorageScan', 'readStorageScan']);
    assert.deepEqual(
      rogue.calls.map((call) => call.method).filter((method) => !housekeeping.has(method)),
      [],
    );
    // With the known VM gone, the claimant no longer conflicts with anything.
    const alone = (await s.request('GET', `/vms/${claimant.id}`, { token: admin })).body;
    assert.equal(alone.computed['vm.uuidConflict'], undefined);
  });

  test('a move the control plane runs may hand a VM over, and only while it runs', async () => {
    const clock = new ManualClock(1_000_000);
    const handovers = new VmHandovers(clock);
    assert.equal(handovers.isExpected('vm_1', 'conn_b'), false);
    const release = handovers.hold('vm_1', 'conn_b');
    assert.equal(handovers.isExpected('vm_1', 'conn_b'), true);
    assert.equal(handovers.isExpected('vm_1', 'conn_c'), false, 'only to its destination');
    assert.equal(handovers.isMoving('vm_1'), true);
    release();
    assert.equal(handovers.isExpected('vm_1', 'conn_b'), false);
    // After a restart, an interrupted move may land for a while, then no more.
    handovers.allowUntil('vm_1', 'conn_b', clock.now() + 60_000);
    assert.equal(handovers.isExpected('vm_1', 'conn_b'), true);
    await clock.advance(60_001);
    assert.equal(handovers.isExpected('vm_1', 'conn_b'), false);
    assert.equal(handovers.isMoving('vm_1'), false);
  });
});
