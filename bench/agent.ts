/**
 * The host agent: time from "create" to the guest's first serial output (create task, start task,
 * console ticket, first bytes of the guest's console), and the agent's reconnect time after a
 * control-plane restart, both with real QEMU (TCG) on this machine.
 *
 *   node --import tsx bench/agent.ts [--runs 3]
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import WebSocket from 'ws';
import { adminPassword } from '../src/testing/control-plane.js';
import {
  ensureGuestImage,
  GUEST_KERNEL_APPEND,
  GUEST_READY_LINE,
  guestAppend,
} from '../src/testing/guest-image.js';
import { freePort } from '../src/testing/ports.js';
import { startServerProcess, type ServerProcess } from '../src/testing/server-process.js';

const { values } = parseArgs({ options: { runs: { type: 'string', default: '3' } } });
const runs = Number(values.runs);
const zenithBin = join(import.meta.dirname, '..', 'bin', 'zenith.js');

async function api(
  base: string,
  token: string | undefined,
  method: string,
  path: string,
  body?: unknown,
): Promise<any> {
  const response = await fetch(`${base}/api/v1${path}`, {
    method,
    headers: {
      ...(token ? { authorization: `Bearer ${token}` } : {}),
      ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
    },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  return response.json();
}

async function until<T>(probe: () => Promise<T | undefined>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 20));
  }
}

const dataDir = mkdtempSync(join(tmpdir(), 'zenith-bench-agent-'));
const agentDir = mkdtempSync(join(tmpdir(), 'zenith-bench-agent-state-'));
const agentDirB = mkdtempSync(join(tmpdir(), 'zenith-bench-agent-state-b-'));
const others: ReturnType<typeof spawn>[] = [];
const image = await ensureGuestImage();
const port = await freePort();
let server: ServerProcess = await startServerProcess({ dataDir, port });
let token = (
  await api(server.url, undefined, 'POST', '/auth/login', {
    username: 'admin',
    password: adminPassword,
  })
).token as string;
const enrollment = (await api(server.url, token, 'POST', '/agents/enrollment-tokens', {}))
  .token as string;
const agent = spawn(
  process.execPath,
  [
    zenithBin,
    'agent',
    '--server',
    server.url,
    '--token',
    enrollment,
    '--state-dir',
    agentDir,
    '--storage-root',
    dirname(image.kernel),
    '--accelerator',
    'tcg',
    '--host-name',
    'bench-host',
  ],
  { stdio: 'ignore' },
);
const connected = async () =>
  (
    (await api(server.url, token, 'GET', '/connections')).items as Array<{
      type: string;
      state: string;
    }>
  ).find((c) => c.type === 'agent' && c.state === 'connected');
try {
  await until(connected);
  const host = (await api(server.url, token, 'GET', '/hosts')).items[0];
  const waitTask = (id: string) =>
    until(async () => {
      const task = await api(server.url, token, 'GET', `/tasks/${id}`);
      return ['succeeded', 'failed'].includes(task.state) ? task : undefined;
    });
  console.log(`Zenith host-agent benchmark, real QEMU (TCG), ${new Date().toISOString()}`);
  const firstOutput: number[] = [];
  for (let i = 0; i < runs; i++) {
    const started = performance.now();
    const created = await waitTask(
      (
        await api(server.url, token, 'POST', '/vms', {
          name: `bench-${i}`,
          hostId: host.id,
          cpus: 1,
          memoryBytes: 128 << 20,
          diskBytes: 0,
          options: { kernel: image.kernel, initrd: image.initrd, cmdline: GUEST_KERNEL_APPEND },
        })
      ).id,
    );
    const vmId = created.result.vmId as string;
    await waitTask((await api(server.url, token, 'POST', `/vms/${vmId}/start`)).id);
    const ticket = await api(server.url, token, 'POST', `/vms/${vmId}/console-tickets`, {
      kind: 'serial',
    });
    await new Promise<void>((resolve, reject) => {
      const socket = new WebSocket(`${server.url.replace('http', 'ws')}${ticket.path}`);
      let text = '';
      socket.on('message', (data: Buffer) => {
        text += data.toString();
        if (text.includes(GUEST_READY_LINE)) {
          socket.close();
          resolve();
        }
      });
      socket.on('error', reject);
    });
    firstOutput.push(performance.now() - started);
    await waitTask((await api(server.url, token, 'POST', `/vms/${vmId}/stop`)).id);
  }
  console.log(
    `  create → start → guest's "${GUEST_READY_LINE}" on the console through the control plane: ${firstOutput.map((ms) => `${(ms / 1000).toFixed(2)} s`).join(', ')}`,
  );

  // Live migration between two agents on this machine (shared storage), idle guests, QEMU's default 128 MiB/s cap.
  const enrollmentB = (await api(server.url, token, 'POST', '/agents/enrollment-tokens', {}))
    .token as string;
  const agentB = spawn(
    process.execPath,
    [
      zenithBin,
      'agent',
      '--server',
      server.url,
      '--token',
      enrollmentB,
      '--state-dir',
      agentDirB,
      '--storage-root',
      dirname(image.kernel),
      '--accelerator',
      'tcg',
      '--host-name',
      'bench-host-b',
    ],
    { stdio: 'ignore' },
  );
  others.push(agentB);
  await until(async () =>
    (
      (await api(server.url, token, 'GET', '/connections')).items as Array<{ state: string }>
    ).filter((c) => c.state === 'connected').length === 2
      ? true
      : undefined,
  );
  const hosts = (await api(server.url, token, 'GET', '/hosts')).items as Array<{
    id: string;
    name: string;
  }>;
  const hostB = hosts.find((h) => h.name === 'bench-host-b')!;
  const cap = 134217728;
  console.log(
    '  live migration between two agents (shared storage, bandwidth cap 128 MiB/s, QEMU default downtime limit 300 ms):',
  );
  console.log(
    '    guest     workload                              QEMU total  downtime  sent       passes  task wall  memory ÷ cap',
  );
  for (const memoryMiB of [256, 1024]) {
    // The dirtying guest rewrites a quarter of its memory with random data, over and over.
    const dirtyMiB = memoryMiB / 4;
    for (const [workload, autoConverge] of [
      ['idle', false],
      [`dirtying ${dirtyMiB} MiB`, false],
      [`dirtying ${dirtyMiB} MiB, auto-converge`, true],
    ] as const) {
      const dirtying = workload !== 'idle';
      const created = await waitTask(
        (
          await api(server.url, token, 'POST', '/vms', {
            name: `mig-${memoryMiB}-${dirtying ? 'dirty' : 'idle'}${autoConverge ? '-ac' : ''}`,
            hostId: host.id,
            cpus: 1,
            memoryBytes: memoryMiB << 20,
            diskBytes: 0,
            options: {
              kernel: image.kernel,
              initrd: image.initrd,
              cmdline: dirtying ? guestAppend({ dirtyMiB }) : GUEST_KERNEL_APPEND,
            },
          })
        ).id,
      );
      const vmId = created.result.vmId as string;
      await waitTask((await api(server.url, token, 'POST', `/vms/${vmId}/start`)).id);
      // Boot, and for the dirtying guest fill its source buffer (random bytes are slow under TCG).
      await new Promise((r) => setTimeout(r, dirtying ? 20_000 : 3000));
      const wall = performance.now();
      const taskId = (
        await api(server.url, token, 'POST', `/vms/${vmId}/migrate`, {
          targetHostId: hostB.id,
          maxBandwidthBytesPerSecond: cap,
          ...(autoConverge ? { autoConverge: true } : {}),
        })
      ).id as string;
      // A guest that dirties memory faster than the link carries it never converges: give up after 120 s.
      let lastPass = 0;
      const moved = await until(async () => {
        const task = await api(server.url, token, 'GET', `/tasks/${taskId}`);
        if (typeof task.progressDetails?.pass === 'number') lastPass = task.progressDetails.pass;
        if (['succeeded', 'failed', 'cancelled'].includes(task.state)) return task;
        if (performance.now() - wall > 120_000 && task.state === 'running')
          await api(server.url, token, 'POST', `/tasks/${taskId}/cancel`);
        return undefined;
      }, 180_000);
      const wallMs = performance.now() - wall;
      const limitMs = ((memoryMiB << 20) / cap) * 1000;
      const row = (cells: string[]) =>
        console.log(
          `    ${[`${memoryMiB} MiB`.padEnd(8), workload.padEnd(36), ...cells].join('  ')}`,
        );
      if (moved.state === 'succeeded')
        row([
          `${moved.result.totalTimeMs} ms`.padEnd(10),
          `${moved.result.downtimeMs} ms`.padEnd(8),
          `${(moved.result.transferredBytes / 1048576).toFixed(1)} MiB`.padEnd(9),
          String(lastPass).padEnd(6),
          `${(wallMs / 1000).toFixed(2)} s`.padEnd(9),
          `${(limitMs / 1000).toFixed(2)} s`,
        ]);
      else
        row([
          `${moved.state}: ${moved.error?.code} after ${(wallMs / 1000).toFixed(0)} s, ${lastPass} passes (did not converge)`,
        ]);
      const where = await api(server.url, token, 'GET', `/vms/${vmId}`);
      await waitTask((await api(server.url, token, 'POST', `/vms/${vmId}/stop`)).id);
      if (where.facts?.['power.state'] === undefined) throw new Error('the VM vanished');
    }
  }

  const reconnects: number[] = [];
  for (let i = 0; i < runs; i++) {
    await server.kill();
    const restarted = performance.now();
    server = await startServerProcess({ dataDir, port });
    token = (
      await api(server.url, undefined, 'POST', '/auth/login', {
        username: 'admin',
        password: adminPassword,
      })
    ).token as string;
    await until(connected);
    reconnects.push(performance.now() - restarted);
  }
  console.log(
    `  control-plane restart → agent connected again (includes the server's own start): ${reconnects.map((ms) => `${(ms / 1000).toFixed(2)} s`).join(', ')}`,
  );
} finally {
  agent.kill('SIGKILL');
  for (const other of others) other.kill('SIGKILL');
  rmSync(agentDirB, { recursive: true, force: true });
  await server.kill();
  rmSync(dataDir, { recursive: true, force: true });
  rmSync(agentDir, { recursive: true, force: true });
}
