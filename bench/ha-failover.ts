/**
 * High availability: detection time (crash → declared failed) and recovery time (crash → every
 * protected VM running again elsewhere) with 1 and 10 VMs on the failed host, for a host fenced
 * through its BMC and for one without a BMC (fenced by its storage lease and self-fencing).
 * Real `zenith agent`s in their own network and PID namespaces (root needed), a shared storage
 * directory, tiny TCG guests (64 MiB); host A's BMC is Zenith's Redfish service simulator (a
 * simulator of our own). A crash kills everything in the host's namespaces at once.
 *
 *   node --import tsx bench/ha-failover.ts [--rounds 3] [--vms 1,10]
 *
 * Prints each round's figures and the configured timings beside them; vSphere HA documents 15 s
 * to declare a host failed (its default) before restarting its VMs.
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import { ok, startTestServer, type ApiAnswer } from '../src/testing/control-plane.js';
import { ensureGuestImage, GUEST_KERNEL_APPEND } from '../src/testing/guest-image.js';
import { MachineProcess } from '../src/testing/machine-process.js';
import { startPhysicalLab, type PhysicalHost } from '../src/testing/physical-hosts.js';
import { startRedfishSimulator } from '../src/testing/redfish-simulator.js';
import { until } from '../src/testing/wait.js';

const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '3' },
    vms: { type: 'string', default: '1,10' },
  },
});
const rounds = Number(values.rounds);
const sizes = values.vms.split(',').map(Number);
const detectionSeconds = 3;
const selfFenceSeconds = 3;

const image = await ensureGuestImage();
const baseDir = mkdtempSync(join(tmpdir(), 'zenith-ha-bench-'));
const shared = join(baseDir, 'shared');
mkdirSync(shared, { recursive: true });
const lab = await startPhysicalLab();
const s = await startTestServer({ listenHost: lab.gateway, ha: { graceMs: 1000, tickMs: 250 } });
const admin = await s.login();
const machines: Record<string, MachineProcess> = {};
const physical: Record<string, PhysicalHost> = {};
const names = ['bench-a', 'bench-b', 'bench-c'];
const sim = await startRedfishSimulator({
  machines: 1,
  hooks: {
    powerOn: () => machines['bench-a']!.start(),
    powerOff: () => machines['bench-a']!.stop(),
  },
});
const get = async (path: string) => ok(await s.request('GET', path, { token: admin }));
const task = async (method: string, path: string, body?: unknown) => {
  const accepted = ok(await s.request(method, path, { token: admin, body }), 202);
  const done = await s.waitForTask(admin, accepted.id as string, 120_000);
  if (done.state !== 'succeeded') throw new Error(`${path}: ${JSON.stringify(done.error)}`);
  return done;
};
const connected = (name: string) =>
  until(
    `${name} connected`,
    async () => {
      const host = await s.request('GET', `/hosts/${name}`, { token: admin });
      if (host.status !== 200) return undefined;
      const connection = await get(`/connections/${host.body.connectionId as string}`);
      return connection.state === 'connected' ? true : undefined;
    },
    90_000,
    200,
  );
const healthy = (name: string) =>
  until(
    `${name} healthy`,
    async () =>
      ((await get('/ha')).hosts as ApiAnswer[]).find((h) => h.name === name)?.state === 'healthy'
        ? true
        : undefined,
    90_000,
    200,
  );

try {
  for (const name of names) {
    const token = ok(
      await s.request('POST', '/agents/enrollment-tokens', { token: admin, body: {} }),
      201,
    ).token as string;
    const host = await lab.addHost({
      name,
      serverUrl: s.baseUrl,
      enrollmentToken: token,
      storageRoots: [shared, dirname(image.kernel)],
      baseDir,
    });
    physical[name] = host;
    machines[name] = new MachineProcess(host.machineCommand);
  }
  sim.machine('System1').macs = [physical['bench-a']!.mac];
  for (const machine of Object.values(machines)) await machine.start();
  for (const name of names) await connected(name);
  ok(
    await s.request('POST', '/connections', {
      token: admin,
      body: {
        name: 'bmc-a',
        type: 'redfish',
        settings: {
          url: sim.url,
          username: sim.username,
          thumbprint: sim.thumbprint,
          pollSeconds: 1,
        },
        secret: sim.password,
      },
    }),
    201,
  );
  ok(
    await s.request('POST', '/policies', {
      token: admin,
      body: {
        name: 'ha',
        scope: { kind: 'global' },
        settings: {
          ha: { enabled: true, failureDetectionSeconds: detectionSeconds, selfFenceSeconds },
        },
      },
    }),
    201,
  );
  console.log(
    `configured: failureDetectionSeconds ${detectionSeconds}, selfFenceSeconds ${selfFenceSeconds}, channel pinged every 1 s, storage heartbeat every 1 s; vSphere HA: a host is declared failed after 15 s by default`,
  );
  console.log(
    `load average before: ${loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}`,
  );
  let serial = 0;
  for (const count of sizes)
    for (const [victim, fencing] of [
      ['bench-a', 'BMC'],
      ['bench-b', 'no BMC (lease)'],
    ] as const)
      for (let round = 0; round < rounds; round++) {
        // count VMs on the victim, protected.
        const ids: string[] = [];
        for (let i = 0; i < count; i++) {
          const created = await task('POST', '/vms', {
            name: `b${serial++}`,
            hostId: victim,
            cpus: 1,
            memoryBytes: 64 * 2 ** 20,
            diskBytes: 4 * 2 ** 20,
            options: { kernel: image.kernel, initrd: image.initrd, cmdline: GUEST_KERNEL_APPEND },
          });
          const id = created.result.vmId as string;
          ids.push(id);
          await task('POST', `/vms/${id}/start`);
        }
        await until(
          'protected',
          async () => {
            const vms = ((await get('/ha/vms')).items as ApiAnswer[]).filter((vm) =>
              ids.includes(vm.vmId as string),
            );
            return vms.length === count && vms.every((vm) => vm.state === 'protected')
              ? true
              : undefined;
          },
          120_000,
          200,
        );
        const crashedAt = Date.now();
        await machines[victim]!.stop();
        const failover = await until(
          'failover done',
          async () => {
            const found = ((await get('/ha/failovers')).items as ApiAnswer[]).find(
              (f) => f.hostName === victim && f.detectedAt >= crashedAt,
            );
            return found?.state === 'done' ? found : undefined;
          },
          180_000,
          100,
        );
        const running = Math.max(...(failover.restarts as ApiAnswer[]).map((r) => r.runningAt));
        console.log(
          `${count} VM(s), ${fencing}: detected ${failover.detectedAt - crashedAt} ms, fenced ${
            failover.fencedAt - crashedAt
          } ms, all running ${running - crashedAt} ms after the crash (${(failover.restarts as ApiAnswer[]).length} restarted)`,
        );
        // Clean up: the VMs go, the host comes back.
        for (const id of ids) {
          await task('POST', `/vms/${id}/stop`).catch(() => undefined);
          await task('DELETE', `/vms/${id}`).catch(() => undefined);
        }
        if (victim === 'bench-a') await task('POST', '/hosts/bench-a/power', { action: 'on' });
        else await machines[victim]!.start();
        await connected(victim);
        await healthy(victim);
      }
  console.log(
    `load average after: ${loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}`,
  );
} finally {
  await sim.close();
  for (const machine of Object.values(machines)) await machine.stop();
  await s.close();
  await lab.close();
  rmSync(baseDir, { recursive: true, force: true });
}
