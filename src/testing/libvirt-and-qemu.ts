/**
 * Two hosts of different families on one test control plane: `lv-a`, a real libvirtd with a
 * directory pool `images` (its QEMU runs as root, so that it reads the shared guest image where it
 * lies), and `lq-b`, a QEMU host of the control plane's own machine; both under TCG. What the
 * tests that move data between families (backup and restore, replication) start from.
 */
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { startTestServer, type TestServer } from './control-plane.js';
import { ensureGuestImage } from './guest-image.js';
import { startLibvirtd, type LibvirtdDaemon } from './libvirtd.js';

export interface LibvirtAndQemu {
  daemon: LibvirtdDaemon;
  s: TestServer;
  /** An administrator's token. */
  token: string;
  /** The guest image's kernel and initrd. */
  image: { kernel: string; initrd: string };
  /** lv-a's pool directory and lq-b's storage root, below `base`. */
  poolDir: string;
  qemuRoot: string;
}

export async function startLibvirtAndQemu(base: string): Promise<LibvirtAndQemu> {
  const image = await ensureGuestImage();
  const poolDir = join(base, 'pool');
  const qemuRoot = join(base, 'qemu');
  const daemon = await startLibvirtd({ qemuConf: 'user = "root"\ngroup = "root"' });
  await daemon.createDirPool('images', poolDir);
  mkdirSync(qemuRoot, { recursive: true });
  const s = await startTestServer();
  const token = await s.login();
  for (const body of [
    {
      name: 'lv-a',
      type: 'libvirt',
      settings: {
        uri: `qemu:///system?socket=${daemon.socketPath}`,
        accelerator: 'tcg',
        storagePool: 'images',
        hostName: 'lv-a',
      },
    },
    {
      name: 'lq-b',
      type: 'qemu',
      settings: {
        storageRoots: [qemuRoot, dirname(image.kernel)],
        accelerator: 'tcg',
        hostName: 'lq-b',
      },
    },
  ]) {
    const added = (await s.request('POST', '/connections', { token, body })).body as {
      state: string;
      lastError?: string;
    };
    assert.equal(added.state, 'connected', added.lastError);
  }
  return { daemon, s, token, image, poolDir, qemuRoot };
}
