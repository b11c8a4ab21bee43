/**
 * Backup and restore of a VM on an agent host (its disk's bytes over the agent channel, protocol
 * 1.5) beside the same on the control plane's own QEMU host (a unix socket to QEMU), in one run:
 * two VMs with the same disk content (`--size` MiB, 1024 by default: 64 MiB segments of shared
 * libraries, libraries, random bytes, nothing, nothing, in turn), each backed up in full into a
 * repository of its own and restored onto its own host. Figures are of the data read or written.
 * Not part of the suite; take figures on a quiet machine.
 *
 *   node --import tsx bench/agent-backup.ts [--size 1024]
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import { killAgents, spawnAgent, type AgentProcess } from '../src/testing/agent-process.js';
import { startTestServer } from '../src/testing/control-plane.js';
import { ensureGuestImage, GUEST_KERNEL_APPEND } from '../src/testing/guest-image.js';
import { until } from '../src/testing/wait.js';
import { writeRealisticDisk } from './disk-content.js';

const { values } = parseArgs({ options: { size: { type: 'string', default: '1024' } } });
const MiB = 1024 * 1024;
const size = Number(values.size) * MiB;
const base = mkdtempSync(join(tmpdir(), 'zenith-bench-agent-backup-'));
const rate = (bytes: number, ms: number) => `${(bytes / MiB / (ms / 1000)).toFixed(0)} MiB/s`;

function content(): string {
  const raw = join(base, 'content.raw');
  writeRealisticDisk(raw, size);
  return raw;
}

const loadBefore = loadavg()[0]!;
const image = await ensureGuestImage();
const s = await startTestServer();
const agents: AgentProcess[] = [];
try {
  const token = await s.login();
  const succeeded = async (method: string, path: string, body?: unknown) => {
    const answer = await s.request(method, path, { token, ...(body ? { body } : {}) });
    if (answer.status !== 202) throw new Error(JSON.stringify(answer.body));
    const done = await s.waitForTask(token, answer.body.id, 30 * 60_000);
    if (done.state !== 'succeeded') throw new Error(JSON.stringify(done.error));
    return done.result;
  };
  const enrollment = (await s.request('POST', '/agents/enrollment-tokens', { token, body: {} }))
    .body.token;
  const agentRoot = join(base, 'agent', 'storage');
  agents.push(
    spawnAgent({
      serverUrl: s.baseUrl,
      stateDir: join(base, 'agent'),
      storageRoots: [agentRoot, dirname(image.kernel)],
      hostName: 'bench-agent',
      extra: ['--token', enrollment],
    }),
  );
  const localRoot = join(base, 'local');
  await s.request('POST', '/connections', {
    token,
    body: {
      name: 'bench-local',
      type: 'qemu',
      settings: {
        storageRoots: [localRoot, dirname(image.kernel)],
        accelerator: 'tcg',
        hostName: 'bench-local',
      },
    },
  });
  await until(
    'the agent connected',
    async () =>
      (await s.request('GET', '/hosts/bench-agent', { token })).status === 200 ? true : undefined,
    60_000,
  );
  const raw = content();
  const results: string[] = [];
  for (const [host, root] of [
    ['bench-local', localRoot],
    ['bench-agent', agentRoot],
  ] as const) {
    const vmId = (
      await succeeded('POST', '/vms', {
        name: `vm-${host}`,
        hostId: (await s.request('GET', `/hosts/${host}`, { token })).body.id,
        cpus: 1,
        memoryBytes: 128 * MiB,
        diskBytes: size,
        options: { kernel: image.kernel, initrd: image.initrd, cmdline: GUEST_KERNEL_APPEND },
      })
    ).vmId as string;
    execFileSync('qemu-img', [
      'convert',
      '-n',
      '-f',
      'raw',
      '-O',
      'qcow2',
      raw,
      join(root, `vm-${host}`, 'disk0.qcow2'),
    ]);
    await s.request('POST', '/backup-repositories', {
      token,
      body: { name: `repo-${host}`, path: join(s.dataDir, 'backups', host) },
    });
    let started = performance.now();
    const backup = await succeeded('POST', `/vms/${vmId}/backups`, { repository: `repo-${host}` });
    const backupMs = performance.now() - started;
    started = performance.now();
    await succeeded('POST', `/backups/${backup.backupId}/restore`, {
      host,
      name: `back-${host}`,
    });
    const restoreMs = performance.now() - started;
    results.push(
      `${host.padEnd(12)} full backup ${(backupMs / 1000).toFixed(1)} s (${rate(backup.readBytes, backupMs)} of ${(backup.readBytes / MiB).toFixed(0)} MiB read); restore ${(restoreMs / 1000).toFixed(1)} s (${rate(size, restoreMs)} of the ${(size / MiB).toFixed(0)} MiB disk)`,
    );
  }
  console.log(`disk ${size / MiB} MiB; load average before ${loadBefore.toFixed(2)}`);
  for (const line of results) console.log(line);
  console.log(`load average after ${loadavg()[0]!.toFixed(2)}`);
} finally {
  await killAgents(agents).catch(() => undefined);
  await s.close();
  rmSync(base, { recursive: true, force: true });
}
