/**
 * Synchronous replication at the QEMU level, against real QEMU (TCG) and qemu-storage-daemon: a
 * guest writing its numbered pattern is mirrored in write-blocking mode over TCP with TLS-PSK to a
 * replica daemon on 127.0.0.1, whose points in time hold every block the guest had reported
 * written before they were taken (RPO 0). A wrong key is refused; a daemon killed with SIGKILL
 * ends the mirror with an error the caller reads while the guest writes on; a link that goes
 * silent holds the guest's writes until the mirror is stopped, which cuts the connection and lets
 * them go on; a daemon outlives the process that started it and is found again from its directory.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import { isZenithError } from '../../../src/core/errors.js';
import { processAlive } from '../../../src/core/process.js';
import type { DiscoveredVm } from '../../../src/hypervisors/driver.js';
import { backingChain, createImage } from '../../../src/hypervisors/qemu/qemu-img.js';
import { QemuDriver } from '../../../src/hypervisors/qemu/qemu-driver.js';
import {
  findReplicaDaemon,
  startReplicaDaemon,
  type ReplicaDaemon,
  type ReplicaDaemonState,
} from '../../../src/hypervisors/qemu/sync-mirror-target.js';
import { newPskKey, type PskCredentials } from '../../../src/hypervisors/qemu/tls-psk.js';
import { guestBytes, patternPrefix } from '../../../src/testing/disk-image.js';
import { GuestConsole } from '../../../src/testing/guest-console.js';
import { guestAppend } from '../../../src/testing/guest-image.js';
import { startPhysicalLab, type PhysicalLab } from '../../../src/testing/physical-hosts.js';
import { freePort } from '../../../src/testing/ports.js';
import { until } from '../../../src/testing/wait.js';
import { startTcgDriver } from '../../../src/testing/tcg-driver.js';

const MiB = 1024 * 1024;
const DISK_BYTES = 64 * MiB;
const context = { signal: new AbortController().signal, progress: () => undefined };
const base = mkdtempSync(join(tmpdir(), 'zenith-sync-mirror-'));
const replicas = join(base, 'replicas');
const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');
let driver: QemuDriver;
let vmId: string;
let guest: GuestConsole;
/** The newest ready point of an asynchronous replica, which every test's overlay starts from. */
let readyPoint: string;
const daemons: ReplicaDaemon[] = [];
let lab: PhysicalLab | undefined;

const psk = (): PskCredentials => ({ identity: 'replication-r1', key: newPskKey() });
/** The most blocks the guest has said it wrote (it says so every 16 blocks). */
const reported = () => Math.max(0, ...guest.numbers('pattern'));
/** Waits until the guest says it wrote `more` blocks beyond what it had said; answers the count. */
const writtenMore = (more: number) => {
  const from = reported();
  return guest.waitForNumber('pattern', (n) => n >= from + more, 0, 60_000);
};
const vmNow = async () =>
  (await driver.discover()).objects.find(
    (o) => o.kind === 'vm' && o.externalId === vmId,
  ) as DiscoveredVm;

async function daemon(
  name: string,
  key: PskCredentials,
  where: { host: string; launcher?: string[] } = { host: '127.0.0.1' },
): Promise<ReplicaDaemon> {
  const started = await startReplicaDaemon({
    dir: join(base, 'daemons', name),
    base: readyPoint,
    overlay: join(replicas, `${name}-0.qcow2`),
    port: await freePort(),
    psk: key,
    ...where,
  });
  daemons.push(started);
  return started;
}

const target = (d: ReplicaDaemon, key: PskCredentials) => ({
  host: d.state.host,
  port: d.state.port,
  psk: key,
});

before(async () => {
  const started = await startTcgDriver(base, 'protected');
  driver = started.driver;
  const image = started.image;
  const vm = await driver.createVm(
    {
      name: 'protected',
      cpus: 1,
      memoryBytes: 128 * MiB,
      diskBytes: DISK_BYTES,
      hostExternalId: 'protected',
      options: {
        kernel: image.kernel,
        initrd: image.initrd,
        cmdline: guestAppend({ pattern: true }),
      },
    },
    context,
  );
  vmId = vm.externalId;
  readyPoint = join(replicas, 'point-0.qcow2');
  mkdirSync(replicas, { recursive: true });
  await createImage(readyPoint, { sizeBytes: DISK_BYTES });
  await driver.startVm(vmId, context);
  guest = await GuestConsole.unix(driver.serialSocket(vmId));
  await guest.waitForNumber('pattern', (n) => n >= 16, 0, 60_000);
});

after(async () => {
  // A guest that ended under the tests says why (its QEMU's stop cause), for whoever reads a failure.
  const vm = await vmNow().catch(() => undefined);
  if (vm && vm.powerState !== 'running')
    console.error(
      `the protected VM is ${vm.powerState}: ${String(vm.facts['power.stopCause'])}, ${String(vm.facts['power.reason'])}`,
    );
  guest?.close();
  for (const d of daemons) await d.stop().catch(() => undefined);
  await driver?.stopVm(vmId, context).catch(() => undefined);
  await driver?.close();
  await lab?.close();
  rmSync(base, { recursive: true, force: true });
});

test('with the mirror ready, every point taken on the replica holds every block the guest had reported written before it (RPO 0), on a chain down to the ready point', async () => {
  const key = psk();
  const replica = await daemon('rpo', key);
  assert.equal(statSync(join(replica.dir, 'psk', 'keys.psk')).mode & 0o777, 0o600);
  const status = await driver.syncMirrors.start(vmId, 'disk0', target(replica, key));
  assert.equal(status.state, 'ready');
  assert.equal((await driver.syncMirrors.status(vmId, 'disk0')).state, 'ready');

  const chain = [readyPoint];
  let previous = 0;
  for (let i = 1; i <= 3; i++) {
    await writtenMore(16 * i);
    const before = reported();
    const point = await replica.takePoint(join(replicas, `rpo-${i}.qcow2`));
    const held = patternPrefix(guestBytes(point.point));
    assert.ok(
      held >= before,
      `point ${i} holds ${held} blocks; the guest had said ${before} were written before it`,
    );
    assert.ok(held >= previous, 'a later point never holds less');
    previous = held;
    assert.deepEqual(await backingChain(point.point), chain.toReversed());
    chain.push(point.point);
    assert.equal(replica.state.overlay, point.overlay);
  }
  assert.equal(
    (await driver.syncMirrors.stop(vmId, 'disk0')).state,
    'ready',
    'stopped while ready',
  );
  assert.deepEqual(await driver.syncMirrors.status(vmId, 'disk0'), { state: 'none' });
  await writtenMore(16);
  await replica.stop();
  assert.equal(replica.running(), false);
});

test('a mirror offered another key is refused with ZEN_CONNECTION_AUTH_FAILED and leaves nothing in QEMU: the guest writes on, and the right key then mirrors', async () => {
  const key = psk();
  const replica = await daemon('wrong-key', key);
  await assert.rejects(
    driver.syncMirrors.start(vmId, 'disk0', target(replica, { ...key, key: newPskKey() })),
    (error: unknown) =>
      isZenithError(error) &&
      error.code === 'ZEN_CONNECTION_AUTH_FAILED' &&
      error.details.port === replica.state.port,
  );
  assert.deepEqual(await driver.syncMirrors.status(vmId, 'disk0'), { state: 'none' });
  await writtenMore(32);
  assert.equal((await vmNow()).powerState, 'running');
  assert.equal(replica.running(), true, 'the daemon refused one client and serves on');
  // Nothing of the refused attempt is left in QEMU: the same names serve the right key.
  assert.equal(
    (await driver.syncMirrors.start(vmId, 'disk0', target(replica, key))).state,
    'ready',
  );
  await driver.syncMirrors.stop(vmId, 'disk0');

  const closed = await freePort();
  await assert.rejects(
    driver.syncMirrors.start(vmId, 'disk0', { host: '127.0.0.1', port: closed, psk: key }),
    (error: unknown) => isZenithError(error) && error.code === 'ZEN_CONNECTION_FAILED',
    'nothing listens there',
  );
  await replica.stop();
});

test('a replica daemon killed with SIGKILL ends the mirror with an error the caller reads; the guest writes on, and the last point is intact', async () => {
  const key = psk();
  const replica = await daemon('killed', key);
  assert.equal(
    (await driver.syncMirrors.start(vmId, 'disk0', target(replica, key))).state,
    'ready',
  );
  await writtenMore(16);
  const point = await replica.takePoint(join(replicas, 'killed-1.qcow2'));
  const pointBytes = guestBytes(point.point);
  const held = patternPrefix(pointBytes);

  process.kill(replica.state.pid, 'SIGKILL');
  const failed = await until('the mirror to fail', async () => {
    const status = await driver.syncMirrors.status(vmId, 'disk0');
    return status.state === 'failed' ? status : undefined;
  });
  assert.match(failed.error, /error/i);
  const atFailure = reported();
  await writtenMore(48);
  assert.ok(reported() > atFailure, 'the guest keeps writing its own disk');
  assert.equal((await vmNow()).powerState, 'running');

  assert.equal(sha256(guestBytes(point.point)), sha256(pointBytes), 'the point is as it was');
  assert.equal(patternPrefix(guestBytes(point.point)), held);
  assert.deepEqual(await backingChain(point.point), [readyPoint]);
  assert.equal(await findReplicaDaemon(replica.dir), null, 'a dead daemon is not found again');

  const stopped = await driver.syncMirrors.stop(vmId, 'disk0');
  assert.deepEqual(stopped, failed, 'stopping answers why it failed');
  assert.deepEqual(await driver.syncMirrors.status(vmId, 'disk0'), { state: 'none' });
});

test('a link to the replica that goes silent holds the guest’s writes (QEMU 7.2) until the mirror is stopped: stopping cuts the connection, the guest writes on, the point taken before is intact', async () => {
  lab = await startPhysicalLab();
  const recovery = await lab.addHost({
    name: 'recovery',
    serverUrl: 'http://unused',
    enrollmentToken: 'unused',
    storageRoots: [],
    baseDir: base,
  });
  const key = psk();
  const replica = await daemon('silent', key, {
    host: recovery.address,
    launcher: ['ip', 'netns', 'exec', recovery.namespace],
  });
  assert.equal(
    (await driver.syncMirrors.start(vmId, 'disk0', target(replica, key))).state,
    'ready',
  );
  await writtenMore(16);
  const point = await replica.takePoint(join(replicas, 'silent-1.qcow2'));
  const pointBytes = guestBytes(point.point);

  await lab.cutNetwork(recovery);
  const stalled = await until('a write stuck on the silent link', async () => {
    const status = await driver.syncMirrors.status(vmId, 'disk0');
    return status.state === 'ready' && status.inFlightBytes > 0 ? status : undefined;
  });
  const atStall = reported();
  await new Promise((resolve) => setTimeout(resolve, 1000));
  assert.ok(reported() <= atStall + 16, 'the guest waits on its write');

  const started = Date.now();
  const stopped = await driver.syncMirrors.stop(vmId, 'disk0');
  assert.ok(Date.now() - started < 10_000, `stopped in ${Date.now() - started} ms`);
  assert.equal(stopped.state, stalled.state);
  assert.deepEqual(await driver.syncMirrors.status(vmId, 'disk0'), { state: 'none' });
  await writtenMore(48);
  assert.equal((await vmNow()).powerState, 'running');

  await lab.restoreNetwork(recovery);
  assert.equal(replica.running(), true);
  assert.equal(sha256(guestBytes(point.point)), sha256(pointBytes), 'the point is as it was');
  await replica.stop();
});

test('a replica daemon outlives the process that started it, and a fresh process finds it from its directory, mirrors to it and stops it', async () => {
  const key = psk();
  const dir = join(base, 'daemons', 'restarted');
  const options = {
    dir,
    base: readyPoint,
    overlay: join(replicas, 'restarted-0.qcow2'),
    host: '127.0.0.1',
    port: await freePort(),
    psk: key,
  };
  const { stdout } = await promisify(execFile)(process.execPath, [
    '--import',
    'tsx',
    join(import.meta.dirname, 'replica-daemon-child.ts'),
    JSON.stringify(options),
  ]);
  const started = JSON.parse(stdout) as ReplicaDaemonState;
  assert.ok(processAlive(started.pid), 'the daemon runs after its starter exited');

  const found = await findReplicaDaemon(dir);
  assert.ok(found);
  daemons.push(found);
  assert.deepEqual(found.state, started);
  assert.equal((await driver.syncMirrors.start(vmId, 'disk0', target(found, key))).state, 'ready');
  await writtenMore(16);
  const before = reported();
  const point = await found.takePoint(join(replicas, 'restarted-1.qcow2'));
  assert.ok(patternPrefix(guestBytes(point.point)) >= before);
  await driver.syncMirrors.stop(vmId, 'disk0');

  // A handle that let its QMP connection go (an agent shutting down) still stops it.
  await found.release();
  await found.stop({ deadlineMs: 20_000 });
  assert.equal(processAlive(started.pid), false);
  assert.equal(existsSync(join(dir, 'psk')), false, 'its key is removed with it');
  assert.equal(await findReplicaDaemon(dir), null);
  assert.ok(readFileSync(point.point).length > 0, 'its points stay');
});
