/**
 * Backups of a running QEMU VM with its file systems frozen through the guest agent: the tiny
 * guest runs Debian's real qemu-ga and writes files without end to an ext4 file system on its
 * disk. A backup taken with the agent answering is quiesced — its ext4 needs no journal recovery —
 * and leaves the guest thawed and writing on; without an agent (no channel, or a channel nobody
 * answers) the backup is crash-consistent (the ext4 needs recovery), as fast as before, and says
 * so; a guest left frozen is thawed by the next backup.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, test } from 'node:test';
import { systemClock } from '../../../src/core/clock.js';
import { connectQga, type QgaClient } from '../../../src/protocols/qga/index.js';
import {
  AGENT_PING_TIMEOUT_MS,
  withGuestFrozen,
} from '../../../src/hypervisors/qemu/guest-quiesce.js';
import type { QemuVm } from '../../../src/hypervisors/qemu/qemu-vm.js';
import { QemuDriver } from '../../../src/hypervisors/qemu/qemu-driver.js';
import { restoreDisk, takeBackup } from '../../../src/services/backup/disk-backup.js';
import type { BackupManifest } from '../../../src/services/backup/repository/manifest.js';
import { BackupRepository } from '../../../src/services/backup/repository/repository.js';
import { GuestConsole } from '../../../src/testing/guest-console.js';
import { ensureAgentGuestImage, guestAppend } from '../../../src/testing/guest-image.js';
import { captureLogs } from '../../../src/testing/log-capture.js';
import { until } from '../../../src/testing/wait.js';

const MiB = 1024 * 1024;
const context = { signal: new AbortController().signal, progress: () => undefined };
const base = mkdtempSync(join(tmpdir(), 'zenith-quiesce-'));
const disks = join(base, 'disks');
const run = (command: string, ...args: string[]) =>
  execFileSync(command, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
const logs = captureLogs('info');
let driver: QemuDriver;
let repository: BackupRepository;
let image: { kernel: string; initrd: string };
const consoles: GuestConsole[] = [];

/** A running VM whose disk0 holds a fresh ext4 the guest mounts and writes to. */
async function runningGuest(name: string, options: { channel: boolean; agent: boolean }) {
  const raw = join(base, `${name}.raw`);
  run('truncate', '-s', '48M', raw);
  run('mkfs.ext4', '-q', '-F', raw);
  mkdirSync(join(disks, name), { recursive: true });
  const disk = join(disks, name, 'disk0.qcow2');
  run('qemu-img', 'convert', '-O', 'qcow2', raw, disk);
  rmSync(raw);
  const vm = await driver.createVm(
    {
      name,
      cpus: 1,
      memoryBytes: 192 * MiB,
      diskBytes: 0,
      hostExternalId: 'quiescer',
      options: {
        kernel: image.kernel,
        initrd: image.initrd,
        cmdline: guestAppend({ agent: options.agent, fs: 'vda' }),
        disks: [{ file: disk }],
        vnc: false,
        ...(options.channel ? { guestAgent: true } : {}),
      },
    },
    context,
  );
  await driver.startVm(vm.externalId, context);
  const guest = await GuestConsole.unix(driver.serialSocket(vm.externalId));
  consoles.push(guest);
  // Writing to its file system: it is mounted.
  await guest.waitForNumber('fs', (n) => n >= 16, 0, 120_000);
  return { id: vm.externalId, guest };
}

/** The host end of a VM's agent channel, once the agent answers. */
async function agentOf(vmId: string): Promise<QgaClient> {
  const socket = driver.agentSocket(vmId);
  return until(
    'the guest agent to answer',
    async () => {
      const client = await connectQga(socket).catch(() => undefined);
      if (!client) return undefined;
      try {
        await client.ping({ timeoutMs: 2_000 });
        return client;
      } catch {
        client.close();
        return undefined;
      }
    },
    120_000,
    500,
  );
}

async function backUp(
  vmId: string,
  name: string,
): Promise<{ manifest: BackupManifest; ms: number }> {
  const started = Date.now();
  const manifest = await takeBackup(repository, { vm: { id: vmId, name, uuid: null } }, [
    {
      diskId: 'disk0',
      open: () => driver.facets.diskStreams.openReader(vmId, 'disk0', {}, context),
    },
  ]);
  const ms = Date.now() - started;
  // The checkpoint is not needed here: the next backup reads in full.
  await driver.facets.diskStreams.releaseCheckpoint(vmId, 'disk0', {
    name: manifest.disks[0]!.checkpoint!,
  });
  return { manifest, ms };
}

/** The backed-up ext4 as e2fsprogs sees it: whether its journal needs recovery, and fsck's verdict. */
async function restoredFileSystem(manifest: BackupManifest) {
  const file = join(disks, 'restored', `${manifest.id}.qcow2`);
  const writer = await driver.facets.diskStreams.openWriter(
    { location: { path: file }, format: 'qcow2', capacityBytes: manifest.disks[0]!.capacityBytes },
    context,
  );
  await restoreDisk(repository, manifest.disks[0]!, writer);
  await writer.finish();
  const raw = join(base, `${manifest.id}.raw`);
  run('qemu-img', 'convert', '-O', 'raw', file, raw);
  const features = /Filesystem features:\s*(.*)/.exec(run('dumpe2fs', '-h', raw))?.[1] ?? '';
  const fsck = spawnSync('e2fsck', ['-fn', raw], { encoding: 'utf8' });
  rmSync(raw);
  return {
    needsRecovery: features.split(/\s+/).includes('needs_recovery'),
    fsckStatus: fsck.status,
    fsckOutput: `${fsck.stdout}${fsck.stderr}`,
  };
}

/** The driver as a process starting (again) makes it: it re-attaches to the VMs still running. */
async function startDriver(): Promise<QemuDriver> {
  const started = new QemuDriver({
    stateDir: join(base, 'state'),
    storageRoots: [disks, dirname(image.kernel)],
    accelerator: 'tcg',
    kvmUsable: false,
    hostName: 'quiescer',
    clock: systemClock,
    logger: logs.logger,
  });
  await started.connect();
  return started;
}

before(async () => {
  image = await ensureAgentGuestImage();
  driver = await startDriver();
  repository = await BackupRepository.create(join(base, 'repository'), { chunkSize: MiB });
});
after(async () => {
  for (const guest of consoles) guest.close();
  for (const object of (await driver?.discover())?.objects ?? [])
    if (object.kind === 'vm')
      await driver.stopVm(object.externalId, context).catch(() => undefined);
  await driver?.close();
  rmSync(base, { recursive: true, force: true });
});

test('with the agent answering, the backup freezes the file systems for its point in time: the ext4 restored needs no recovery, and the guest is thawed and writes on', async (t) => {
  const { id, guest } = await runningGuest('frozen', { channel: true, agent: true });
  const agent = await agentOf(id);
  assert.equal(await agent.freezeStatus(), 'thawed');
  agent.close();
  const { manifest } = await backUp(id, 'frozen');
  const disk = manifest.disks[0]!;
  assert.equal(disk.quiesced, true, disk.quiesceNote);
  assert.ok((disk.frozenFileSystems ?? 0) >= 1, `froze ${disk.frozenFileSystems} file systems`);
  const thawed = logs
    .lines()
    .find((line) => line.msg === 'guest file systems thawed after the point-in-time view');
  assert.ok(thawed, 'the thaw is logged');
  t.diagnostic(`frozen for ${String(thawed.frozenMs)} ms (freeze answered to thaw asked)`);

  const written = Math.max(...guest.numbers('fs'));
  const again = await agentOf(id);
  assert.equal(await again.freezeStatus(), 'thawed');
  again.close();
  await guest.waitForNumber('fs', (n) => n > written + 16, 0, 60_000);

  const fs = await restoredFileSystem(manifest);
  assert.equal(fs.needsRecovery, false, 'a frozen ext4 has its journal flushed');
  assert.equal(fs.fsckStatus, 0, fs.fsckOutput);
  assert.doesNotMatch(fs.fsckOutput, /journal recovery/);
});

test('a guest left frozen (a backup killed between freeze and thaw) is thawed by the next backup, which is quiesced', async () => {
  const [vm] = (await driver.discover()).objects.filter(
    (o) => o.kind === 'vm' && o.name === 'frozen',
  );
  const id = vm!.externalId;
  const agent = await agentOf(id);
  assert.ok((await agent.freeze()) >= 1);
  assert.equal(await agent.freezeStatus(), 'frozen');
  agent.close();
  const { manifest } = await backUp(id, 'frozen');
  assert.equal(manifest.disks[0]!.quiesced, true, manifest.disks[0]!.quiesceNote);
  assert.ok(
    logs.lines().some((line) => line.msg === 'the guest was left with frozen file systems: thawed'),
  );
  const after = await agentOf(id);
  assert.equal(await after.freezeStatus(), 'thawed');
  after.close();
});

test('a guest left frozen by a process that died is thawed when the driver starts again, not at its next backup', async () => {
  const [vm] = (await driver.discover()).objects.filter(
    (o) => o.kind === 'vm' && o.name === 'frozen',
  );
  const id = vm!.externalId;
  const warned = () =>
    logs
      .lines()
      .filter((line) => line.msg === 'the guest was left with frozen file systems: thawed').length;
  const warnedBefore = warned();
  const agent = await agentOf(id);
  assert.ok((await agent.freeze()) >= 1);
  agent.close();
  // The process dies (its QEMU runs on, as on a real host) and a new one starts.
  await driver.close();
  driver = await startDriver();
  const after = await agentOf(id);
  await until(
    'the guest thawed',
    async () => ((await after.freezeStatus()) === 'thawed' ? true : undefined),
    30_000,
    200,
  );
  after.close();
  assert.equal(warned(), warnedBefore + 1, 'the thaw is logged');
});

test('the guest stops writing while frozen, and is thawed when the step between freeze and thaw fails', async () => {
  const [vm] = (await driver.discover()).objects.filter(
    (o) => o.kind === 'vm' && o.name === 'frozen',
  );
  const id = vm!.externalId;
  const guest = consoles[0]!;
  // What the quiesce reads of a VM: its spec's channel and the socket's path.
  const qemuVm = {
    id,
    record: { spec: { guestAgent: true } },
    paths: { agentSocket: driver.agentSocket(id) },
  } as unknown as QemuVm;
  let writtenWhileFrozen = -1;
  await assert.rejects(
    withGuestFrozen(qemuVm, { clock: systemClock, logger: logs.logger }, async () => {
      const at = Math.max(...guest.numbers('fs'));
      await new Promise((resolve) => setTimeout(resolve, 2_000));
      writtenWhileFrozen = Math.max(...guest.numbers('fs')) - at;
      throw new Error('the transaction failed');
    }),
    /the transaction failed/,
  );
  // Thawed, it writes several files a second (see the next wait); frozen, its writes block.
  assert.equal(writtenWhileFrozen, 0);
  const agent = await agentOf(id);
  assert.equal(await agent.freezeStatus(), 'thawed');
  agent.close();
  const written = Math.max(...guest.numbers('fs'));
  await guest.waitForNumber('fs', (n) => n >= written + 8, 0, 5_000);
});

test('without a guest agent channel the backup is crash-consistent, as before, and says so: the ext4 restored needs journal recovery', async (t) => {
  const { id } = await runningGuest('plain', { channel: false, agent: false });
  const { manifest, ms } = await backUp(id, 'plain');
  t.diagnostic(`the backup took ${ms} ms without a channel`);
  const disk = manifest.disks[0]!;
  assert.equal(disk.quiesced, false);
  assert.equal(disk.frozenFileSystems, 0);
  assert.match(disk.quiesceNote ?? '', /no guest agent channel/);
  const fs = await restoredFileSystem(manifest);
  assert.equal(fs.needsRecovery, true, 'a mounted ext4 copied unfrozen needs its journal replayed');
  assert.match(fs.fsckOutput, /skipping journal recovery/);
});

test('a channel no agent answers does not hold the backup up past the ping timeout, and the backup is recorded unquiesced', async (t) => {
  const { id } = await runningGuest('silent', { channel: true, agent: false });
  const { manifest, ms } = await backUp(id, 'silent');
  t.diagnostic(`the backup took ${ms} ms with a silent channel`);
  const disk = manifest.disks[0]!;
  assert.equal(disk.quiesced, false);
  assert.match(disk.quiesceNote ?? '', /did not answer/);
  // The ping's wait, and the backup of a 48 MiB disk (a few seconds under TCG at most).
  assert.ok(ms < AGENT_PING_TIMEOUT_MS + 5_000, `the backup took ${ms} ms`);
});
