/**
 * Backup and restore of VMs on agent hosts (real `zenith agent` processes, real QEMU): the agent's
 * disk-stream facet over the channel. A VM on one agent backed up in full, then only what changed
 * (stopped, and running), restored onto the other agent and onto the control plane's own QEMU host
 * with its disk exactly as at the backup's point, booted; a restore test on an agent; and a
 * `kill -9` of the agent in the middle of a backup of its running VM: no backup made, the VM runs
 * on, and the next backup, once the agent is back, is whole and correct. A VM with a guest agent
 * on an agent host is backed up with its file systems frozen, and the catalogue says so.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { processAlive } from '../../src/core/process.js';
import { killAgents, spawnAgent, type AgentProcess } from '../../src/testing/agent-process.js';
import { startTestServer, type TestServer } from '../../src/testing/control-plane.js';
import { guestBytesHash as hashOf } from '../../src/testing/disk-image.js';
import { consoleTicks, GuestConsole } from '../../src/testing/guest-console.js';
import {
  ensureAgentGuestImage,
  ensureGuestImage,
  guestAppend,
  GUEST_KERNEL_APPEND,
  GUEST_READY_LINE,
} from '../../src/testing/guest-image.js';
import { until } from '../../src/testing/wait.js';

const MiB = 1024 * 1024;

describe('backup and restore of VMs on agent hosts (real agents, real QEMU)', () => {
  let s: TestServer;
  let token: string;
  let image: { kernel: string; initrd: string };
  const base = mkdtempSync(join(tmpdir(), 'zenith-agent-backup-'));
  const dirs = [join(base, 'agent-a'), join(base, 'agent-b')];
  const storage = (i: number) => join(dirs[i]!, 'storage');
  const localRoot = join(base, 'local');
  const hostNames = ['ab-a', 'ab-b'];
  const agents: AgentProcess[] = [];
  const startAgent = (i: number, enrollment?: string) => {
    agents[i] = spawnAgent({
      serverUrl: s.baseUrl,
      stateDir: dirs[i]!,
      // The guest images' cache: the plain guest's and the one with a guest agent.
      storageRoots: [storage(i), dirname(dirname(image.kernel))],
      hostName: hostNames[i]!,
      extra: enrollment ? ['--token', enrollment] : [],
    });
  };
  const connectionOf = async (name: string) =>
    (await s.request('GET', '/connections', { token })).body.items.find(
      (c: { name: string }) => c.name === `agent-${name}`,
    ) as { id: string; state: string } | undefined;
  const agentConnected = (name: string) =>
    until(
      () => `${name} connected\n${agents[hostNames.indexOf(name)]?.output().slice(-2000)}`,
      async () => ((await connectionOf(name))?.state === 'connected' ? true : undefined),
    );

  const task = async (method: string, path: string, body?: unknown) => {
    const answer = await s.request(method, path, { token, ...(body ? { body } : {}) });
    assert.equal(answer.status, 202, JSON.stringify(answer.body));
    return s.waitForTask(token, answer.body.id, 180_000);
  };
  const succeeded = async (method: string, path: string, body?: unknown) => {
    const done = await task(method, path, body);
    assert.equal(done.state, 'succeeded', JSON.stringify(done.error));
    return done.result;
  };
  const vm = async (id: string) => (await s.request('GET', `/vms/${id}`, { token })).body;
  const write = (file: string, pattern: number, offset: number, length: number) =>
    execFileSync('qemu-io', ['-f', 'qcow2', '-c', `write -P ${pattern} ${offset} ${length}`, file]);
  const newVm = async (name: string, hostName: string, diskBytes: number) =>
    (
      await succeeded('POST', '/vms', {
        name,
        hostId: (await s.request('GET', `/hosts/${hostName}`, { token })).body.id,
        cpus: 1,
        memoryBytes: 128 * MiB,
        diskBytes,
        options: { kernel: image.kernel, initrd: image.initrd, cmdline: GUEST_KERNEL_APPEND },
      })
    ).vmId as string;

  before(async () => {
    image = await ensureGuestImage();
    s = await startTestServer();
    token = await s.login();
    for (const i of [0, 1]) {
      const enrollment = (await s.request('POST', '/agents/enrollment-tokens', { token, body: {} }))
        .body.token;
      startAgent(i, enrollment);
    }
    for (const name of hostNames) await agentConnected(name);
    const local = await s.request('POST', '/connections', {
      token,
      body: {
        name: 'ab-local',
        type: 'qemu',
        settings: {
          storageRoots: [localRoot, dirname(image.kernel)],
          accelerator: 'tcg',
          hostName: 'ab-local',
        },
      },
    });
    assert.equal(local.body.state, 'connected', local.body.lastError);
    const repository = await s.request('POST', '/backup-repositories', {
      token,
      body: { name: 'main', path: join(s.dataDir, 'backups', 'main') },
    });
    assert.equal(repository.status, 201, JSON.stringify(repository.body));
  });
  after(async () => {
    for (const each of (await s.request('GET', '/vms?limit=100', { token })).body.items ?? [])
      if (typeof each.facts['qemu.pid'] === 'number' && processAlive(each.facts['qemu.pid']))
        process.kill(each.facts['qemu.pid'], 'SIGKILL');
    try {
      await killAgents(agents);
    } finally {
      await s.close();
      rmSync(base, { recursive: true, force: true });
    }
  });

  test('a VM on an agent: full, then only what changed (stopped, running); restored onto the other agent and the local host, as it was, and it boots; a restore test on an agent leaves nothing', async () => {
    const vmId = await newVm('ab', 'ab-a', 64 * MiB);
    const disk = join(storage(0), 'ab', 'disk0.qcow2');
    write(disk, 0x11, 0, 8 * MiB);
    write(disk, 0x22, 40 * MiB, 2 * MiB);
    const capabilities = (await s.request('GET', `/vms/${vmId}/capabilities`, { token })).body;
    assert.ok(capabilities.capabilities.includes('vm.backup'), JSON.stringify(capabilities));

    // Full: only the chunks with data cross the channel (3 of 16); the two alike are stored once.
    const full = await succeeded('POST', `/vms/${vmId}/backups`, { repository: 'main' });
    assert.equal(full.scope, 'full');
    assert.equal(full.readBytes, 12 * MiB);
    assert.deepEqual([full.newChunks, full.sharedChunks], [2, 1]);

    write(disk, 0x33, 20 * MiB, MiB);
    const pointHash = hashOf(disk);
    const second = await succeeded('POST', `/vms/${vmId}/backups`, { repository: 'main' });
    assert.equal(second.scope, 'incremental');
    assert.equal(second.readBytes, MiB, 'only the MiB the change wrote, not its 4 MiB chunk');
    assert.deepEqual([second.newChunks, second.sharedChunks], [1, 3]);

    // Running: read through the agent's QEMU while the guest runs.
    await succeeded('POST', `/vms/${vmId}/start`);
    const third = await succeeded('POST', `/vms/${vmId}/backups`, { repository: 'main' });
    assert.equal(third.scope, 'incremental');
    assert.ok(third.readBytes <= 4 * MiB, `read ${third.readBytes} bytes`);
    assert.deepEqual(
      readdirSync(join(dirs[0]!, 'qemu')).flatMap((d) =>
        readdirSync(join(dirs[0]!, 'qemu', d)).filter((f) => f.startsWith('fleece-')),
      ),
      [],
      'the point-in-time overlay is gone with the read',
    );
    await succeeded('POST', `/vms/${vmId}/stop`);

    // Onto the other agent and onto the control plane's own host: each a new VM, disk as at the point.
    for (const [host, root] of [
      ['ab-b', storage(1)],
      ['ab-local', localRoot],
    ] as const) {
      const restored = await succeeded('POST', `/backups/${second.backupId}/restore`, {
        host,
        name: `ab-on-${host}`,
      });
      const copy = await vm(restored.vmId);
      assert.equal(copy.computed['location.hostName'], host);
      assert.equal(copy.facts['power.state'], 'stopped');
      const [restoredDir] = readdirSync(root).filter((d) => d.startsWith(`ab-on-${host}-`));
      assert.equal(hashOf(join(root, restoredDir!, 'disk0.qcow2')), pointHash, `on ${host}`);
      await succeeded('POST', `/vms/${restored.vmId}/start`);
      assert.equal((await consoleTicks(s, token, restored.vmId, 2)).length, 2, `boots on ${host}`);
      await succeeded('POST', `/vms/${restored.vmId}/stop`);
    }

    // A restore test on an agent host: booted, then nothing of it left there.
    const dirsBefore = readdirSync(storage(1)).sort();
    const passed = await succeeded('POST', `/backups/${third.backupId}/test`, {
      host: 'ab-b',
      marker: GUEST_READY_LINE,
      timeoutSeconds: 120,
    });
    assert.equal(passed.booted, true);
    assert.deepEqual(readdirSync(storage(1)).sort(), dirsBefore);
  });

  test('a disk scattered into 32,768 runs (more than one message of the channel holds) backs up through the agent and restores as it was', async () => {
    const vmId = await newVm('ab-frag', 'ab-a', 16 * MiB);
    const disk = join(storage(0), 'ab-frag', 'disk0.qcow2');
    // 512-byte clusters, every other one written: a run per cluster (large disks written here and
    // there come to this many runs with 64 KiB clusters).
    const raw = join(base, 'frag.raw');
    const bytes = Buffer.alloc(16 * MiB);
    for (let i = 0; i < 16 * 1024; i++) bytes.fill(1 + (i % 250), i * 1024, i * 1024 + 512);
    writeFileSync(raw, bytes);
    execFileSync('qemu-img', [
      'convert',
      '-q',
      '-S',
      '512',
      '-f',
      'raw',
      '-O',
      'qcow2',
      '-o',
      'cluster_size=512',
      raw,
      disk,
    ]);
    rmSync(raw);
    const runs = (
      JSON.parse(
        execFileSync('qemu-img', ['map', '--output=json', disk], {
          maxBuffer: 64 * MiB,
        }).toString(),
      ) as unknown[]
    ).length;
    assert.ok(runs >= 32_768, `${runs} runs`);
    const sourceHash = hashOf(disk);
    const full = await succeeded('POST', `/vms/${vmId}/backups`, { repository: 'main' });
    assert.equal(full.scope, 'full');
    assert.equal(full.readBytes, 16 * MiB);
    const restored = await succeeded('POST', `/backups/${full.backupId}/restore`, {
      host: 'ab-b',
      name: 'ab-frag-back',
    });
    const [restoredDir] = readdirSync(storage(1)).filter((d) => d.startsWith('ab-frag-back-'));
    assert.equal(hashOf(join(storage(1), restoredDir!, 'disk0.qcow2')), sourceHash);
    assert.equal((await vm(restored.vmId)).computed['location.hostName'], 'ab-b');
  });

  test('a VM with a guest agent on an agent host is backed up with its ext4 frozen; the task and the catalogue say so', async () => {
    const agentImage = await ensureAgentGuestImage();
    const vmId = (
      await succeeded('POST', '/vms', {
        name: 'ab-qga',
        hostId: (await s.request('GET', '/hosts/ab-a', { token })).body.id,
        cpus: 1,
        memoryBytes: 192 * MiB,
        diskBytes: 48 * MiB,
        options: {
          kernel: agentImage.kernel,
          initrd: agentImage.initrd,
          cmdline: guestAppend({ agent: true, fs: 'vda' }),
          guestAgent: true,
        },
      })
    ).vmId as string;
    assert.equal((await vm(vmId)).facts['guest.agentChannel'], true);
    // An ext4 written over the new blank disk while the VM is stopped.
    const raw = join(base, 'ext4.raw');
    execFileSync('truncate', ['-s', '48M', raw]);
    execFileSync('mkfs.ext4', ['-q', '-F', raw]);
    execFileSync('qemu-img', [
      'convert',
      '-n',
      '-f',
      'raw',
      '-O',
      'qcow2',
      raw,
      join(storage(0), 'ab-qga', 'disk0.qcow2'),
    ]);
    rmSync(raw);
    await succeeded('POST', `/vms/${vmId}/start`);
    const guest = await GuestConsole.ofVm(s, token, vmId);
    try {
      await guest.waitForNumber('fs', (n) => n >= 16, 0, 120_000);
      const result = await succeeded('POST', `/vms/${vmId}/backups`, { repository: 'main' });
      assert.equal(result.quiesced, true, JSON.stringify(result));
      assert.ok(result.frozenFileSystems >= 1, JSON.stringify(result));
      const [listed] = (await s.request('GET', `/backups?vm=${vmId}`, { token })).body.items;
      assert.equal(listed.quiesced, true);
      assert.equal(listed.disks[0].quiesced, true);
      assert.ok(listed.disks[0].frozenFileSystems >= 1);
      // Thawed: it writes on.
      const written = Math.max(...guest.numbers('fs'));
      await guest.waitForNumber('fs', (n) => n >= written + 8, 0, 30_000);
    } finally {
      guest.close();
    }
    await succeeded('POST', `/vms/${vmId}/stop`);
  });

  test('kill -9 of the agent in the middle of a backup of its running VM: no backup, the guest runs on, and the next backup is whole', async () => {
    const vmId = await newVm('ab-kill', 'ab-a', 96 * MiB);
    const disk = join(storage(0), 'ab-kill', 'disk0.qcow2');
    // Random bytes (they neither compress nor repeat): a backup long enough to be killed in.
    const noise = join(base, 'noise.bin');
    execFileSync('sh', ['-c', `head -c ${80 * MiB} /dev/urandom > ${noise}`]);
    execFileSync('qemu-io', ['-f', 'qcow2', '-c', `write -s ${noise} 0 80M`, disk]);
    rmSync(noise);
    await succeeded('POST', `/vms/${vmId}/start`);
    const pid = (await vm(vmId)).facts['qemu.pid'] as number;
    const backupsBefore = (await s.request('GET', `/backups?vm=${vmId}`, { token })).body.items;
    assert.equal(backupsBefore.length, 0);

    const started = await s.request('POST', `/vms/${vmId}/backups`, {
      token,
      body: { repository: 'main' },
    });
    assert.equal(started.status, 202, JSON.stringify(started.body));
    await until(
      'the backup reading',
      async () => {
        const progress = (await s.request('GET', `/tasks/${started.body.id}`, { token })).body;
        return (progress.progressDetails?.readBytes ?? 0) > 0 ? true : undefined;
      },
      60_000,
      20,
    );
    await agents[0]!.kill();
    const failed = await s.waitForTask(token, started.body.id, 120_000);
    assert.equal(failed.state, 'failed', JSON.stringify(failed));
    assert.match(failed.error.code, /^ZEN_/);
    assert.equal(
      (await s.request('GET', `/backups?vm=${vmId}`, { token })).body.items.length,
      0,
      'nothing a reader could take for a backup',
    );
    assert.ok(processAlive(pid), "the guest's QEMU runs on without its agent");

    startAgent(0);
    await agentConnected('ab-a');
    assert.equal(
      (
        await until('the VM reported again', async () => {
          const found = await vm(vmId);
          return found.status === 'present' && found.facts['power.state'] === 'running'
            ? found
            : undefined;
        })
      ).facts['qemu.pid'],
      pid,
      'the same QEMU, never a second',
    );
    const whole = await succeeded('POST', `/vms/${vmId}/backups`, { repository: 'main' });
    assert.equal(whole.scope, 'full');
    assert.ok(whole.readBytes >= 80 * MiB, `read ${whole.readBytes} bytes`);
    await succeeded('POST', `/vms/${vmId}/stop`);
    const sourceHash = hashOf(disk);
    const restored = await succeeded('POST', `/backups/${whole.backupId}/restore`, {
      host: 'ab-b',
      name: 'ab-kill-back',
    });
    const [restoredDir] = readdirSync(storage(1)).filter((d) => d.startsWith('ab-kill-back-'));
    assert.equal(hashOf(join(storage(1), restoredDir!, 'disk0.qcow2')), sourceHash);
    assert.equal(restored.backupId, whole.backupId);
    // What the killed read left in QEMU (its overlay, its checkpoint) was cleared by the next one.
    assert.equal(
      spawnSync('sh', ['-c', `ls ${join(dirs[0]!, 'qemu')}/*/fleece-* 2>/dev/null`]).stdout.length,
      0,
    );
  });
});
