import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { bridgeOf, createTestBridge, interfaceExists } from '../../src/testing/bridge.js';
import type { TestBridge } from '../../src/testing/bridge.js';
import { startTestServer, type TestServer } from '../../src/testing/control-plane.js';
import { ensureGuestImage, guestAppend } from '../../src/testing/guest-image.js';
import { until } from '../../src/testing/wait.js';

describe('a bridged NIC through the API: its tap in the facts, its traffic in the metrics', () => {
  let s: TestServer;
  let token: string;
  let bridge: TestBridge;
  let image: { kernel: string; initrd: string };
  const images = mkdtempSync(join(tmpdir(), 'zenith-bridged-api-'));
  before(async () => {
    image = await ensureGuestImage();
    bridge = await createTestBridge();
    s = await startTestServer();
    token = await s.login();
    const added = await s.request('POST', '/connections', {
      token,
      body: {
        name: 'local',
        type: 'qemu',
        settings: { storageRoots: [images, dirname(image.kernel)], accelerator: 'tcg' },
      },
    });
    assert.equal(added.body.state, 'connected', JSON.stringify(added.body));
  });
  after(async () => {
    for (const vm of (await s.request('GET', '/vms?limit=100', { token })).body.items ?? [])
      if (vm.facts['power.state'] !== 'stopped')
        await s
          .waitForTask(token, (await s.request('POST', `/vms/${vm.id}/stop`, { token })).body.id)
          .catch(() => undefined);
    await s.close();
    await bridge.remove();
    rmSync(images, { recursive: true, force: true });
  });

  const request = async (name: string, nics: unknown[]) => {
    const host = (await s.request('GET', '/hosts', { token })).body.items[0];
    return s.request('POST', '/vms', {
      token,
      body: {
        name,
        hostId: host.id,
        cpus: 1,
        memoryBytes: 128 * 1048576,
        diskBytes: 0,
        options: {
          kernel: image.kernel,
          initrd: image.initrd,
          cmdline: guestAppend({ net: true }),
          nics,
        },
      },
    });
  };
  const create = async (name: string, nics: unknown[]) => {
    const accepted = await request(name, nics);
    assert.equal(accepted.status, 202, JSON.stringify(accepted.body));
    return s.waitForTask(token, accepted.body.id);
  };

  test('GET /vms/{id}/metrics counts what the guest receives and sends on its bridged NIC', async () => {
    const created = await create('on-bridge', [{ mode: 'bridge', bridge: bridge.name }]);
    assert.equal(created.state, 'succeeded', JSON.stringify(created.error));
    const vmId = created.result.vmId as string;
    const started = await s.waitForTask(
      token,
      (await s.request('POST', `/vms/${vmId}/start`, { token })).body.id,
    );
    assert.equal(started.state, 'succeeded', JSON.stringify(started.error));
    const vm = (await s.request('GET', `/vms/${vmId}`, { token })).body;
    const [tap] = vm.facts['network.taps'] as string[];
    assert.equal(bridgeOf(tap!), bridge.name, `${tap} is a port of ${bridge.name}`);

    const metrics = async () =>
      (await s.request('GET', `/vms/${vmId}/metrics`, { token })).body.metrics;
    const sent = await until('the guest to send on its NIC', async () => {
      const sample = await metrics();
      return sample.netTxBytes > 0 ? sample : undefined;
    });
    assert.equal(typeof sent.netRxBytes, 'number');
    await bridge.sendToAllNodes(10, 1200);
    await until('the guest to receive 12 000 bytes more', async () => {
      const sample = await metrics();
      return sample.netRxBytes >= sent.netRxBytes + 10 * 1200 ? sample : undefined;
    });

    const stopped = await s.waitForTask(
      token,
      (await s.request('POST', `/vms/${vmId}/stop`, { token })).body.id,
    );
    assert.equal(stopped.state, 'succeeded');
    assert.equal(interfaceExists(tap!), false, 'the stopped VM left no tap behind');
  });

  test('a VM on a bridge the host does not have is refused, and nothing is created', async () => {
    // Refused before anything is queued: the host checks the spec when the request comes.
    const refused = await request('off-bridge', [{ mode: 'bridge', bridge: 'zt-no-such-br' }]);
    assert.equal(refused.status, 400, JSON.stringify(refused.body));
    assert.equal(refused.body.error.code, 'ZEN_BAD_REQUEST');
    assert.match(refused.body.error.message, /no bridge 'zt-no-such-br'/);
    const names = (await s.request('GET', '/vms?limit=100', { token })).body.items.map(
      (v: { name: string }) => v.name,
    );
    assert.equal(names.includes('off-bridge'), false);
  });
});
