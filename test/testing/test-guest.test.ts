import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { isAbsolute, join } from 'node:path';
import { createConnection } from 'node:net';
import { test } from 'node:test';
import { connectQmp } from '../../src/protocols/qmp/index.js';
import { ensureGuestImage, GUEST_READY_LINE } from '../../src/testing/guest-image.js';
import { lastTick, startTestQemu, waitForSerial } from '../../src/testing/qemu.js';

test('the test guest image is built from Debian packages and cached', async () => {
  const [first, second] = await Promise.all([ensureGuestImage(), ensureGuestImage()]);
  assert.deepEqual(first, second);
  for (const file of [first.kernel, first.initrd]) {
    assert.ok(isAbsolute(file), file);
    assert.ok(existsSync(file), `${file} exists`);
  }
  assert.ok(statSync(first.kernel).size > 4_000_000, 'a real kernel, not a stub');
  assert.match(
    first.kernel,
    /\.cache\/guest\/linux-image-[^/]+-cloud-amd64-[0-9a-f]{12}\/vmlinuz$/,
  );
});

test('the guest boots under TCG, says it is ready on the serial console, and ticks every 100 ms', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'zenith-guest-'));
  await ensureGuestImage();
  const started = Date.now();
  const qemu = await startTestQemu({
    qmpSocket: join(dir, 'qmp.sock'),
    serialFile: join(dir, 'serial.log'),
    memoryMiB: 128,
  });
  try {
    await waitForSerial(join(dir, 'serial.log'), new RegExp(GUEST_READY_LINE), 30_000);
    t.diagnostic(`QEMU spawn to ${GUEST_READY_LINE}: ${Date.now() - started} ms`);
    const tickStart = Date.now();
    const text = await waitForSerial(join(dir, 'serial.log'), /^tick 5\r?$/m, 10_000);
    assert.ok(
      text.indexOf(GUEST_READY_LINE) < text.indexOf('tick 0'),
      'ready comes before the first tick',
    );
    assert.ok(lastTick(text) >= 5);
    // Six ticks at 100 ms each, with generous room for a busy TCG host.
    assert.ok(
      Date.now() - tickStart < 5_000,
      `ticks come about every 100 ms (${Date.now() - tickStart} ms for 6)`,
    );
    const client = await connectQmp(join(dir, 'qmp.sock'));
    assert.equal((await client.execute('query-status')).status, 'running');
    await client.close();
  } finally {
    await qemu.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the guest console can be read from a unix socket instead of a file', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'zenith-guest-'));
  const qemu = await startTestQemu({
    qmpSocket: join(dir, 'qmp.sock'),
    serialSocket: join(dir, 'serial.sock'),
  });
  const serial = createConnection({ path: join(dir, 'serial.sock') });
  try {
    let text = '';
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no ticks on the socket: ${text}`)), 30_000);
      serial.on('data', (chunk: Buffer) => {
        text += chunk.toString('utf8');
        if (lastTick(text) >= 2) {
          clearTimeout(timer);
          resolve();
        }
      });
      serial.on('error', reject);
    });
    assert.ok(text.includes(GUEST_READY_LINE), 'connected before boot, so the ready line was seen');
  } finally {
    serial.destroy();
    await qemu.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});
