/**
 * A failover is durable: the control plane (`zenith serve`, a real process with its SQLite data
 * directory) is killed with SIGKILL in the middle of the failover of five VMs, started again, and
 * finishes it — every VM runs exactly once, counted as QEMU processes across the hosts' PID
 * namespaces. The hosts are `zenith agent`s in their own network and PID namespaces
 * (src/testing/physical-hosts.ts) with a shared storage directory; host A's machine is behind
 * Zenith's Redfish service simulator (a simulator of our own), which fences it.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { GUEST_KERNEL_APPEND, ensureGuestImage } from '../../src/testing/guest-image.js';
import { adminPassword, type ApiAnswer } from '../../src/testing/control-plane.js';
import { MachineProcess } from '../../src/testing/machine-process.js';
import {
  startPhysicalLab,
  type PhysicalHost,
  type PhysicalLab,
} from '../../src/testing/physical-hosts.js';
import {
  startRedfishSimulator,
  type RedfishSimulator,
} from '../../src/testing/redfish-simulator.js';
import { startServerProcess, type ServerProcess } from '../../src/testing/server-process.js';
import { until } from '../../src/testing/wait.js';

const priorities = ['highest', 'high', 'medium', 'low', 'lowest'] as const;

describe('a control plane killed in the middle of a failover finishes it after a restart', () => {
  let lab: PhysicalLab;
  let server: ServerProcess;
  let sim: RedfishSimulator;
  let token = '';
  const machines: Record<string, MachineProcess> = {};
  const physical: Record<string, PhysicalHost> = {};
  const baseDir = mkdtempSync(join(tmpdir(), 'zenith-ha-kill-'));
  const dataDir = join(baseDir, 'data');
  const shared = join(baseDir, 'shared');
  let image: { kernel: string; initrd: string };

  const api = async (method: string, path: string, body?: unknown) => {
    const response = await fetch(`${server.url}/api/v1${path}`, {
      method,
      headers: {
        authorization: `Bearer ${token}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await response.text();
    return { status: response.status, body: text ? JSON.parse(text) : null };
  };
  const ok = async (method: string, path: string, body?: unknown) => {
    const answer = await api(method, path, body);
    assert.ok(
      answer.status < 300,
      `${method} ${path}: ${answer.status} ${JSON.stringify(answer.body)}`,
    );
    return answer.body!;
  };
  const login = async () => {
    const response = await fetch(`${server.url}/api/v1/auth/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ username: 'admin', password: adminPassword }),
    });
    token = ((await response.json()) as { token: string }).token;
  };
  const start = async () => {
    server = await startServerProcess({ dataDir, host: lab.gateway, port: port });
    await login();
  };
  let port = 0;
  const task = async (method: string, path: string, body?: unknown) => {
    const accepted = await ok(method, path, body);
    return until(
      `task ${accepted.id as string}`,
      async () => {
        const now = (await api('GET', `/tasks/${accepted.id as string}`)).body!;
        return ['succeeded', 'failed', 'cancelled'].includes(now.state as string) ? now : undefined;
      },
      90_000,
      200,
    );
  };
  const connected = (name: string) =>
    until(
      `${name} connected`,
      async () => {
        const host = await api('GET', `/hosts/${name}`);
        if (host.status !== 200) return undefined;
        const connection = await api('GET', `/connections/${host.body!.connectionId as string}`);
        return connection.body?.state === 'connected' ? true : undefined;
      },
      90_000,
      250,
    );
  /** Every QEMU process across the hosts, by the VM UUID on its command line. */
  const qemuCounts = async () => {
    const counts = new Map<string, number>();
    for (const host of Object.values(physical))
      for (const { command } of await lab.processes(host)) {
        const uuid = /qemu-system\S*.*-uuid (\S+)/.exec(command)?.[1];
        if (uuid) counts.set(uuid, (counts.get(uuid) ?? 0) + 1);
      }
    return counts;
  };

  before(async () => {
    image = await ensureGuestImage();
    mkdirSync(shared, { recursive: true });
    mkdirSync(dataDir, { recursive: true });
    lab = await startPhysicalLab();
    await start();
    port = Number(new URL(server.url).port);
    for (const name of ['k-a', 'k-b', 'k-c']) {
      const enrollment = await ok('POST', '/agents/enrollment-tokens', {});
      const host = await lab.addHost({
        name,
        serverUrl: server.url,
        enrollmentToken: enrollment.token as string,
        storageRoots: [shared, dirname(image.kernel)],
        baseDir,
      });
      physical[name] = host;
      machines[name] = new MachineProcess(host.machineCommand);
    }
    sim = await startRedfishSimulator({
      machines: 1,
      hooks: {
        powerOn: () => machines['k-a']!.start(),
        powerOff: () => machines['k-a']!.stop(),
      },
    });
    sim.machine('System1').macs = [physical['k-a']!.mac];
    for (const machine of Object.values(machines)) await machine.start();
    for (const name of Object.keys(machines)) await connected(name);
    await ok('POST', '/connections', {
      name: 'bmc-a',
      type: 'redfish',
      settings: {
        url: sim.url,
        username: sim.username,
        thumbprint: sim.thumbprint,
        pollSeconds: 1,
      },
      secret: sim.password,
    });
    await until('k-a linked to its machine', async () =>
      typeof (await ok('GET', '/hosts/k-a')).computed['machine.id'] === 'string' ? true : undefined,
    );
  });
  after(async () => {
    try {
      await sim?.close();
      for (const machine of Object.values(machines)) await machine.stop();
      await server?.kill('SIGKILL').catch(() => undefined);
    } finally {
      await lab?.close();
      rmSync(baseDir, { recursive: true, force: true });
    }
  });

  test('five VMs fail over; SIGKILL of zenith serve mid-way; after its restart each runs exactly once', async (t) => {
    const vmIds: string[] = [];
    for (const [index, priority] of priorities.entries()) {
      const created = await task('POST', '/vms', {
        name: `vm-${index}`,
        hostId: 'k-a',
        cpus: 1,
        memoryBytes: 64 * 2 ** 20,
        diskBytes: 4 * 2 ** 20,
        options: { kernel: image.kernel, initrd: image.initrd, cmdline: GUEST_KERNEL_APPEND },
      });
      assert.equal(created.state, 'succeeded', JSON.stringify(created.error));
      const vmId = created.result.vmId as string;
      vmIds.push(vmId);
      const started = await task('POST', `/vms/${vmId}/start`);
      assert.equal(started.state, 'succeeded', JSON.stringify(started.error));
      // One priority level each: the restarts go one after another, so there is a middle.
      await ok('POST', '/policies', {
        name: `p-${index}`,
        scope: { kind: 'vm', id: vmId },
        settings: { ha: { restartPriority: priority } },
      });
    }
    await ok('POST', '/policies', {
      name: 'ha',
      scope: { kind: 'global' },
      settings: { ha: { enabled: true, failureDetectionSeconds: 3, selfFenceSeconds: 3 } },
    });
    await until(
      'all five protected',
      async () => {
        const vms = ((await ok('GET', '/ha/vms')).items as ApiAnswer[]).filter((vm) =>
          vmIds.includes(vm.vmId as string),
        );
        return vms.length === 5 && vms.every((vm) => vm.state === 'protected') ? true : undefined;
      },
      60_000,
      250,
    );
    const uuids = await Promise.all(
      vmIds.map(async (id) => (await ok('GET', `/vms/${id}`)).facts['vm.uuid'] as string),
    );
    const before = await qemuCounts();
    for (const uuid of uuids) assert.equal(before.get(uuid), 1, 'each runs once on A');

    // Host A crashes; the failover starts; zenith serve is killed once some, not all, run again.
    await machines['k-a']!.stop();
    const middle = await until(
      'the failover half-way',
      async () => {
        const [failover] = ((await api('GET', '/ha/failovers')).body?.items ?? []) as ApiAnswer[];
        const restarts = (failover?.restarts ?? []) as ApiAnswer[];
        const started = restarts.filter((r) => r.state === 'running' || r.state === 'starting');
        return started.length >= 1 && started.length < 5 ? { failover, started } : undefined;
      },
      60_000,
      20,
    );
    await server.kill('SIGKILL');
    t.diagnostic(
      `killed with ${middle.started.length} of 5 restarts started (${middle.started
        .map((r) => `${r.vmName as string}:${r.state as string}`)
        .join(', ')})`,
    );
    await start();
    const failover = await until(
      'the failover to finish after the restart',
      async () => {
        const found = ((await ok('GET', '/ha/failovers')).items as ApiAnswer[]).find(
          (f) => f.id === middle.failover.id,
        );
        return found?.state === 'done' ? found : undefined;
      },
      120_000,
      250,
    ).catch(async (error: unknown) => {
      const state = JSON.stringify({
        failovers: await api('GET', '/ha/failovers'),
        ha: await api('GET', '/ha'),
      });
      throw new Error(`${(error as Error).message}: ${state}\n${server.output().slice(-6000)}`);
    });
    assert.deepEqual(
      (failover.restarts as ApiAnswer[]).map((r) => r.state),
      ['running', 'running', 'running', 'running', 'running'],
    );
    // Exactly once each: one QEMU per VM across every host, none on A (powered off).
    const counts = await qemuCounts();
    for (const uuid of uuids) assert.equal(counts.get(uuid), 1, `VM ${uuid} runs once`);
    for (const [index, vmId] of vmIds.entries()) {
      const vm = await ok('GET', `/vms/${vmId}`);
      assert.equal(vm.facts['power.state'], 'running', `vm-${index}`);
      assert.notEqual(vm.computed['location.hostName'], 'k-a');
      const listed = (await ok('GET', `/vms?filter=name=vm-${index}`)).items as ApiAnswer[];
      assert.equal(listed.length, 1, `vm-${index} listed once`);
    }
  });
});
