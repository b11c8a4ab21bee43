/**
 * The image library over a real `zenith agent`: its storage roots hold images qemu-img and
 * genisoimage made (and a damaged qcow2, a link loop, a link out of the roots), VMs defined on it
 * own disks, and disks are left by a VM the agent no longer defines and by one it never knew.
 * Scanned at connect and on demand; read only by who may read the host.
 */
import assert from 'node:assert/strict';

import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { DiskClaims } from '../../src/hypervisors/qemu/disk-claims.js';
import { spawnAgent, type AgentProcess } from '../../src/testing/agent-process.js';
import { cliRunner } from '../../src/testing/server-process.js';
import {
  adminPassword,
  startTestServer,
  type ApiAnswer,
  type TestServer,
} from '../../src/testing/control-plane.js';
import { until } from '../../src/testing/wait.js';
import { makeDamagedQcow2, makeImage, makeIso } from '../../src/testing/image-files.js';

describe('the image library of an agent host (a real agent, real images)', () => {
  let s: TestServer;
  let token: string;
  let agent: AgentProcess | undefined;
  let hostId = '';
  const base = mkdtempSync(join(tmpdir(), 'zenith-image-library-'));
  const stateDir = join(base, 'state');
  const root = join(base, 'images');
  const outside = join(base, 'outside');

  const startAgent = (extra: string[] = []) => {
    agent = spawnAgent({
      serverUrl: s.baseUrl,
      stateDir,
      storageRoots: [root],
      hostName: 'library-host',
      extra,
    });
  };
  const connectionState = async () =>
    ((await s.request('GET', '/connections', { token })).body.items as ApiAnswer[]).find(
      (c) => c.type === 'agent',
    )?.state as string | undefined;
  const connected = () =>
    until(
      () => `the agent connection; agent output:\n${(agent?.output() ?? '').slice(-2000)}`,
      async () => ((await connectionState()) === 'connected' ? true : undefined),
    );
  const task = async (method: string, path: string, body?: unknown, as = token) => {
    const answer = await s.request(method, path, { token: as, ...(body ? { body } : {}) });
    assert.equal(
      answer.status,
      202,
      `${JSON.stringify(answer.body)}\n${agent?.output().slice(-3000)}`,
    );
    return s.waitForTask(as, answer.body.id, 60_000);
  };
  const images = async (query = '', as = token) => {
    const answer = await s.request('GET', `/images${query}`, { token: as });
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
    return answer.body.items as ApiAnswer[];
  };

  before(async () => {
    mkdirSync(root, { recursive: true });
    mkdirSync(outside);
    makeImage(join(root, 'debian.qcow2'), 'qcow2', '2G');
    makeImage(join(root, 'appliance.vmdk'), 'vmdk', '1G');
    makeImage(join(root, 'scratch.img'), 'raw', '16M');
    makeDamagedQcow2(join(root, 'damaged.qcow2'), 7);
    makeIso(join(root, 'install.iso'), 'INSTALL', join(base, 'media'));
    makeImage(join(outside, 'private.qcow2'), 'qcow2', '1G');
    symlinkSync(join(outside, 'private.qcow2'), join(root, 'sneaky.qcow2'));
    symlinkSync(join(root, 'loop-2'), join(root, 'loop-1'));
    symlinkSync(join(root, 'loop-1'), join(root, 'loop-2'));
    s = await startTestServer();
    token = await s.login();
    const enrollment = (await s.request('POST', '/agents/enrollment-tokens', { token, body: {} }))
      .body.token;
    startAgent(['--token', enrollment]);
    await connected();
    hostId = await until(
      () => 'the agent host in the inventory',
      async () =>
        (await s.request('GET', '/hosts', { token })).body.items?.[0]?.id as string | undefined,
    );
  });
  after(async () => {
    try {
      await agent?.kill();
    } finally {
      await s.close();
      rmSync(base, { recursive: true, force: true });
    }
  });

  test('the host is scanned when its agent connects: every image with its facts, a damaged one flagged, nothing outside the roots', async () => {
    const found = await until(
      () => 'the scan at connect',
      async () => {
        const items = await images();
        return items.length >= 5 ? items : undefined;
      },
    );
    const byName = new Map(found.map((image) => [image.name, image]));
    assert.deepEqual([...byName.keys()].sort(), [
      'appliance.vmdk',
      'damaged.qcow2',
      'debian.qcow2',
      'install.iso',
      'scratch.img',
    ]);
    const debian = byName.get('debian.qcow2')!;
    assert.equal(debian.format, 'qcow2');
    assert.equal(debian.kind, 'disk');
    assert.equal(debian.virtualBytes, 2 * 1024 ** 3);
    assert.equal(debian.hostId, hostId);
    assert.equal(debian.hostName, 'library-host');
    assert.equal(debian.usage, 'image');
    assert.equal(debian.orphaned, false);
    assert.equal(byName.get('install.iso')!.kind, 'iso');
    assert.equal(byName.get('install.iso')!.label, 'INSTALL');
    assert.equal(byName.get('appliance.vmdk')!.virtualBytes, 1024 ** 3);
    assert.equal(byName.get('damaged.qcow2')!.problem.code, 'ZEN_IMAGE_CORRUPT');
    const scans = (await s.request('GET', `/tasks?targetId=${hostId}`, { token })).body
      .items as ApiAnswer[];
    const atConnect = scans.find((t) => t.kind === 'host.images.scan')!;
    assert.equal(atConnect.state, 'succeeded');
    assert.equal(atConnect.result.skipped.linksOutside, 1);
    assert.equal(atConnect.result.skipped.brokenLinks, 2);
    assert.equal(atConnect.result.corrupt, 1);
  });

  test("disks of VMs no host defines are orphaned, with their size; a defined VM's disk is in use", async () => {
    const create = (name: string) =>
      task('POST', '/vms', {
        name,
        hostId,
        cpus: 1,
        memoryBytes: 64 << 20,
        diskBytes: 32 << 20,
      });
    const kept = await create('kept');
    assert.equal(kept.state, 'succeeded', JSON.stringify(kept.error));
    const dropped = await create('dropped');
    assert.equal(dropped.state, 'succeeded', JSON.stringify(dropped.error));
    // The agent forgets 'dropped' (its definition lost): its disk and claim stay in the root.
    const droppedVm = (await s.request('GET', `/vms/${dropped.result.vmId}`, { token })).body;
    await agent!.kill();
    await until(
      () => 'the agent connection to drop',
      async () => ((await connectionState()) !== 'connected' ? true : undefined),
    );
    rmSync(join(stateDir, 'qemu', 'vms', droppedVm.externalId), { recursive: true, force: true });
    // A disk some other control plane's VM claimed: no VM Zenith ever knew.
    makeImage(join(root, 'stranger-disk0.qcow2'), 'qcow2', '1G');
    writeFileSync(join(root, 'stranger-pad'), 'not an image');
    new DiskClaims([root]).claim(join(root, 'stranger-disk0.qcow2'), {
      uuid: '0b5e55ed-0000-4000-8000-00000000abcd',
      name: 'stranger',
    });
    startAgent();
    await connected();
    // The connection answers connected a moment before its driver takes calls again.
    await until(
      () => 'the agent driver back',
      async () =>
        (await s.request('GET', `/vms/${kept.result.vmId}/snapshots`, { token })).status === 200
          ? true
          : undefined,
    );
    const scan = await task('POST', `/hosts/${hostId}/images/scan`);
    assert.equal(scan.state, 'succeeded', JSON.stringify(scan.error));
    assert.equal(
      scan.result.orphaned,
      2,
      JSON.stringify((await images('?kind=disk')).map((i) => [i.path, i.usage, i.owner])),
    );
    assert.ok(scan.result.orphanedBytes > 0);

    const orphans = await images('?orphaned=true');
    assert.deepEqual(orphans.map((image) => [image.owner.vmName, image.usage]).sort(), [
      ['dropped', 'vm-missing'],
      ['stranger', 'unregistered'],
    ]);
    const droppedDisk = orphans.find((image) => image.owner.vmName === 'dropped')!;
    assert.equal(droppedDisk.owner.vmId, droppedVm.id);
    assert.ok(droppedDisk.allocatedBytes > 0);
    const inUse = (await images('?kind=disk')).filter((image) => image.usage === 'in-use');
    assert.deepEqual(
      inUse.map((image) => image.owner.vmName),
      ['kept'],
    );
    const one = await s.request('GET', `/images/${droppedDisk.id}`, { token });
    assert.equal(one.status, 200);
    assert.equal(one.body.path, droppedDisk.path);
  });

  test('a file gone since the last scan is marked missing, not forgotten', async () => {
    rmSync(join(root, 'scratch.img'));
    assert.equal((await task('POST', `/hosts/${hostId}/images/scan`)).result.missing, 1);
    assert.equal((await images('?format=raw')).length, 0);
    const gone = await images('?format=raw&status=missing');
    assert.equal(gone.length, 1);
    assert.equal(gone[0]!.name, 'scratch.img');
    assert.equal(typeof gone[0]!.missingSince, 'number');
  });

  test('zenith images scan, list --orphaned and show', async () => {
    const zenith = cliRunner(s.baseUrl);
    const ok = async (args: string[], input?: string) => {
      const result = await zenith(args, input !== undefined ? { input } : {});
      assert.equal(result.code, 0, `${args.join(' ')}: ${result.stderr}`);
      return result.stdout;
    };
    await ok(['login', '--user', 'admin'], `${adminPassword}\n`);
    const scanned = await ok(['images', 'scan', 'library-host']);
    assert.match(scanned, /orphaned\s+2 \(/);
    const orphans = await ok(['images', 'list', '--orphaned']);
    assert.match(orphans, /stranger-disk0\.qcow2 .*unregistered \(stranger\)/);
    assert.match(orphans, /dropped\/disk0\.qcow2 .*vm-missing \(dropped\)/);
    assert.match(orphans, /2 orphaned disks take /);
    const listed = JSON.parse(await ok(['--json', 'images', 'list', '--kind', 'iso'])).items;
    assert.equal(listed.length, 1);
    const shown = await ok(['images', 'show', listed[0].id]);
    assert.match(shown, /label\s+INSTALL/);
    const corrupt = JSON.parse(await ok(['--json', 'images', 'list', '--format', 'qcow2'])).items;
    const damaged = corrupt.find((image: ApiAnswer) => image.name === 'damaged.qcow2');
    assert.match(await ok(['images', 'show', damaged.id]), /ZEN_IMAGE_CORRUPT: qcow2 version 7/);
  });

  test('images are read as their host is: a user who cannot read the host sees none of them', async () => {
    await s.addSimulatedFleet(token, { timeScale: 0, hostsPerCluster: 1, vmsPerHost: 0 });
    const simulatedHost = (
      (await s.request('GET', '/hosts?limit=100', { token })).body.items as ApiAnswer[]
    ).find((h) => h.id !== hostId)!;
    for (const [name, role] of [
      ['vic', 'viewer'],
      ['nora', 'none'],
    ])
      assert.equal(
        (
          await s.request('POST', '/users', {
            token,
            body: { name, role, password: `a-password-for-${name}` },
          })
        ).status,
        201,
      );
    // nora may read the simulated host only.
    await s.request('POST', '/role-bindings', {
      token,
      body: { subject: 'nora', role: 'viewer', scope: simulatedHost.id },
    });
    const vic = await s.login('vic', 'a-password-for-vic');
    const nora = await s.login('nora', 'a-password-for-nora');
    const some = (await images('', vic))[0]!;
    assert.ok(some);
    assert.deepEqual(await images('', nora), []);
    const hidden = await s.request('GET', `/images/${some.id}`, { token: nora });
    assert.equal(hidden.status, 404);
    assert.equal(hidden.body.error.code, 'ZEN_NOT_FOUND');
    // Scanning takes inventory.write, which nora holds nowhere.
    const notScanned = await s.request('POST', `/hosts/${hostId}/images/scan`, { token: nora });
    assert.equal(notScanned.status, 403);
    // A viewer reads, but does not scan.
    const refused = await s.request('POST', `/hosts/${hostId}/images/scan`, { token: vic });
    assert.equal(refused.status, 403);
    const malformed = await s.request('GET', '/images/not-an-image', { token });
    assert.equal(malformed.body.error.code, 'ZEN_BAD_ID');
  });
});
