/**
 * The image library of a libvirt host: a real libvirtd with a directory pool of images qemu-img and
 * genisoimage made; scanned when the connection comes up, and on demand after files were added and
 * removed behind libvirt's back (the scan refreshes the pool). A domain defined on a volume (its
 * disk then in use) is not part of it: defining one costs this daemon a QEMU probe of 30 s and
 * more on a loaded machine (docs/images.md).
 */
import assert from 'node:assert/strict';

import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  startTestServer,
  type ApiAnswer,
  type TestServer,
} from '../../../src/testing/control-plane.js';
import { parseVolumeXml } from '../../../src/hypervisors/libvirt/libvirt-storage-scan.js';
import { startLibvirtd, type LibvirtdDaemon } from '../../../src/testing/libvirtd.js';
import { until } from '../../../src/testing/wait.js';
import { makeImage, makeIso, makeOverlay } from '../../../src/testing/image-files.js';

test("a volume's description: path, format, sizes, backing store and modification time", () => {
  // As libvirt 9.0 describes a qcow2 overlay in a directory pool.
  const volume = parseVolumeXml(`<volume type='file'>
  <name>web-disk0.qcow2</name><key>/pool/web-disk0.qcow2</key><source></source>
  <capacity unit='bytes'>4294967296</capacity><allocation unit='bytes'>200704</allocation>
  <physical unit='bytes'>196624</physical>
  <target><path>/pool/web-disk0.qcow2</path><format type='qcow2'/>
    <permissions><mode>0644</mode><owner>0</owner><group>0</group></permissions>
    <timestamps><atime>1765170000.1</atime><mtime>1765170123.456789</mtime><ctime>1765170123.5</ctime></timestamps>
    <compat>1.1</compat><clusterSize unit='B'>65536</clusterSize><features/></target>
  <backingStore><path>/pool/golden.qcow2</path><format type='qcow2'/></backingStore>
</volume>`);
  assert.deepEqual(volume, {
    name: 'web-disk0.qcow2',
    path: '/pool/web-disk0.qcow2',
    format: 'qcow2',
    capacityBytes: 4294967296,
    allocationBytes: 200704,
    physicalBytes: 196624,
    backingPath: '/pool/golden.qcow2',
    modifiedAt: 1765170123456,
  });
});

describe('the image library of a libvirt host (a real libvirtd, its storage pool)', () => {
  let daemon: LibvirtdDaemon;
  let s: TestServer;
  let token: string;
  const base = mkdtempSync(join(tmpdir(), 'zenith-libvirt-scan-'));
  const poolDir = join(base, 'pool');
  const images = async (query = '') =>
    (await s.request('GET', `/images${query}`, { token })).body.items as ApiAnswer[];

  before(async () => {
    mkdirSync(poolDir, { recursive: true });
    makeImage(join(poolDir, 'golden.qcow2'), 'qcow2', '4G');
    makeOverlay(join(poolDir, 'web-disk0.qcow2'), join(poolDir, 'golden.qcow2'));
    makeImage(join(poolDir, 'legacy.vmdk'), 'vmdk', '1G');
    makeImage(join(poolDir, 'scratch.img'), 'raw', '32M');
    makeIso(join(poolDir, 'setup.iso'), 'SETUP', join(base, 'media'));
    daemon = await startLibvirtd({ virtlogd: false });
    await daemon.createDirPool('images', poolDir);
    s = await startTestServer();
    token = await s.login();
    const added = await s.request('POST', '/connections', {
      token,
      body: {
        name: 'kvm-scan',
        type: 'libvirt',
        settings: {
          uri: `qemu:///system?socket=${daemon.socketPath}`,
          accelerator: 'tcg',
          storagePool: 'images',
          hostName: 'kvm-scan',
        },
      },
    });
    assert.equal(added.status, 201, JSON.stringify(added.body));
  });
  after(async () => {
    await s?.close();
    await daemon?.stop();
    rmSync(base, { recursive: true, force: true });
  });

  test("the pool's volumes are in the library when the connection comes up, with libvirt's facts", async () => {
    const found = await until(
      () => 'the scan at connect',
      async () => {
        const items = await images();
        return items.length >= 5 ? items : undefined;
      },
    );
    const byName = new Map(found.map((image) => [image.name, image]));
    assert.deepEqual([...byName.keys()].sort(), [
      'golden.qcow2',
      'legacy.vmdk',
      'scratch.img',
      'setup.iso',
      'web-disk0.qcow2',
    ]);
    assert.equal(byName.get('golden.qcow2')!.virtualBytes, 4 * 1024 ** 3);
    assert.equal(byName.get('golden.qcow2')!.usage, 'image');
    const disk = byName.get('web-disk0.qcow2')!;
    assert.equal(disk.backingFile, join(poolDir, 'golden.qcow2'));
    assert.equal(disk.usage, 'image');
    assert.equal(disk.owner, null);
    assert.equal(byName.get('legacy.vmdk')!.format, 'vmdk');
    assert.equal(byName.get('scratch.img')!.format, 'raw');
    assert.equal(byName.get('setup.iso')!.kind, 'iso');
    assert.equal(disk.root, poolDir);
  });

  test('a scan on demand refreshes the pool: a file added by hand appears, a removed one is missing', async () => {
    makeImage(join(poolDir, 'uploaded.qcow2'), 'qcow2', '2G');
    rmSync(join(poolDir, 'scratch.img'));
    const host = (await s.request('GET', '/hosts', { token })).body.items[0];
    const answer = await s.request('POST', `/hosts/${host.id}/images/scan`, { token });
    assert.equal(answer.status, 202, JSON.stringify(answer.body));
    const done = await s.waitForTask(token, answer.body.id, 30_000);
    assert.equal(done.state, 'succeeded', JSON.stringify(done.error));
    assert.equal(done.result.created, 1);
    assert.equal(done.result.missing, 1);
    assert.equal(done.result.orphaned, 0);
    assert.ok((await images('?format=qcow2')).some((image) => image.name === 'uploaded.qcow2'));
    assert.deepEqual(
      (await images('?status=missing')).map((image) => image.name),
      ['scratch.img'],
    );
  });
});
