/**
 * A high availability lab for tests and benchmarks: `zenith serve` as a real process (so it can be
 * killed with SIGKILL and started again on the same data directory), physical hosts that are each a
 * `zenith agent` in its own PID and network namespace (./physical-hosts.ts) with a storage
 * directory they all share, and BMCs for some of them — Zenith's Redfish service simulator (a
 * simulator of our own), whose power hooks start and kill the host's namespaces. Guests are the
 * tiny TCG test guest (./guest-image.ts) with their disks on the shared directory.
 */
/* eslint-disable @typescript-eslint/no-unsafe-assignment, @typescript-eslint/no-unsafe-member-access, @typescript-eslint/no-unsafe-return --
   the raw API's answers are untyped JSON (ApiAnswer), read here as the tests read them */
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statfsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import type { HaSettings } from '../services/policy/policy-document.js';
import { adminPassword, type ApiAnswer, type TestServer } from './control-plane.js';
import { consoleTicks, GuestConsole } from './guest-console.js';
import {
  ensureAgentGuestImage,
  ensureGuestImage,
  GUEST_KERNEL_APPEND,
  type GuestImage,
} from './guest-image.js';
import { MachineProcess } from './machine-process.js';
import { startPhysicalLab, type PhysicalHost, type PhysicalLab } from './physical-hosts.js';
import { startRedfishSimulator, type RedfishSimulator } from './redfish-simulator.js';
import { startServerProcess, type ServerProcess } from './server-process.js';
import { until } from './wait.js';

const exec = promisify(execFile);

export interface HaLabOptions {
  /** Host names; each a namespaced agent. */
  hosts: string[];
  /** The hosts whose machine is behind a (simulated Redfish) BMC, linked by MAC. */
  bmcHosts?: string[];
  /** The global HA policy's settings (HA on when given). */
  ha?: HaSettings;
  /** Prefix of the temporary directory. */
  prefix?: string;
  /**
   * `per-host`: each host's disks on a storage directory of its own (sites that share nothing, as
   * replication needs); default one directory all hosts share (as HA's restarts need).
   */
  storage?: 'shared' | 'per-host';
  /**
   * With `per-host` storage: hosts whose storage directory is a tmpfs of this many MiB (mounted
   * before the host starts, so its namespace sees the same filesystem), to run out of room on.
   */
  storageLimitsMiB?: Record<string, number>;
  /** Guests that run qemu-ga may be run (runVm's `agent`): the hosts can read that guest's files. */
  agentGuests?: boolean;
}

export interface QemuProcess {
  host: string;
  pid: number;
  uuid: string;
  /** Started to receive a live migration (`-incoming`; it stays on the command line after). */
  incoming: boolean;
  /** CPU time used so far, in clock ticks (utime + stime): a running guest's grows, a paused one's hardly. */
  cpuTicks: number;
}

export interface HaLab {
  lab: PhysicalLab;
  image: GuestImage;
  physical: Record<string, PhysicalHost>;
  machines: Record<string, MachineProcess>;
  sim: RedfishSimulator | undefined;
  server: ServerProcess;
  /** The REST API as the admin; answers whatever the status. */
  api(method: string, path: string, body?: unknown): Promise<{ status: number; body: ApiAnswer }>;
  /** The same, throwing on a status of 300 or more. */
  ok(method: string, path: string, body?: unknown): Promise<ApiAnswer>;
  /** Submits a task and waits for its end (any end). */
  task(method: string, path: string, body?: unknown, timeoutMs?: number): Promise<ApiAnswer>;
  /** Waits until the host's agent is connected. */
  connected(name: string, timeoutMs?: number): Promise<void>;
  /**
   * Creates and starts a tiny guest on the host (128 MiB: with 64 the cloud kernel may reset in a
   * loop); its id. `cmdline` replaces the guest's kernel command line, `diskMiB` its disk's 4 MiB;
   * `start: false` leaves it defined, stopped; `agent` boots the guest that runs qemu-ga, with a
   * guest agent channel (its command line should say `agent: true`, see guestAppend).
   */
  runVm(
    name: string,
    hostId: string,
    memoryMiB?: number,
    options?: { cmdline?: string; diskMiB?: number; start?: boolean; agent?: boolean },
  ): Promise<string>;
  /** The storage directory a host's disks are made on. */
  storageOf(host: string): string;
  /**
   * Resizes a host's tmpfs storage (`storageLimitsMiB`) to `bytes` (rounded up to a page), or to
   * what it holds now plus `bytes` with `{ free: true }`: its writes fail with ENOSPC past it.
   */
  setStorageLimit(host: string, bytes: number, options?: { free?: boolean }): Promise<void>;
  /**
   * Waits until high availability protects the VM: its description (what a restart runs) is
   * taken. A fault before that leaves nothing to restart it from.
   */
  protectedVm(vmId: string, timeoutMs?: number): Promise<void>;
  /** Every QEMU process across the hosts, with the VM UUID on its command line. */
  qemus(): Promise<QemuProcess[]>;
  /** The next `count` `tick N` lines of the guest's serial console, read through the API: it runs. */
  consoleTicks(vmId: string, count: number): Promise<number[]>;
  /** The VM's serial console through the API, read from now on (close it when done). */
  openConsole(vmId: string): Promise<GuestConsole>;
  /**
   * Kills `zenith serve` (SIGKILL by default) and starts it again on the same data directory, after
   * `whileDown` (ms, or work done meanwhile).
   */
  restartServer(signal?: NodeJS.Signals, whileDown?: number | (() => Promise<void>)): Promise<void>;
  /**
   * Submits a live migration slowed to a few MB/s, so that a fault lands in the middle of it;
   * answers its task id once it is under way (5 %).
   */
  slowMigration(vmId: string, targetHostId: string, bytesPerSecond: number): Promise<string>;
  /** The task once it has ended, whatever the end; the server's log in the error if it does not. */
  taskEnded(taskId: string, timeoutMs?: number): Promise<ApiAnswer>;
  close(): Promise<void>;
}

export async function startHaLab(options: HaLabOptions): Promise<HaLab> {
  const image = await ensureGuestImage();
  const agentImage = options.agentGuests ? await ensureAgentGuestImage() : undefined;
  const baseDir = mkdtempSync(join(tmpdir(), options.prefix ?? 'zenith-ha-lab-'));
  const dataDir = join(baseDir, 'data');
  const shared = join(baseDir, 'shared');
  mkdirSync(shared, { recursive: true });
  mkdirSync(dataDir, { recursive: true });
  const storageOf = (host: string) => {
    if (options.storage !== 'per-host') return shared;
    const dir = join(baseDir, `storage-${host}`);
    mkdirSync(dir, { recursive: true });
    return dir;
  };
  const requireAgentImage = () => {
    if (!agentImage) throw new Error('a guest with qemu-ga needs the lab started with agentGuests');
    return agentImage;
  };
  const mounted: string[] = [];
  const setStorageLimit = async (host: string, bytes: number, limit: { free?: boolean } = {}) => {
    const dir = storageOf(host);
    if (!mounted.includes(dir)) throw new Error(`${host}'s storage is not a tmpfs of the lab's`);
    // A size under what the tmpfs holds is refused (EINVAL): what it holds is read again and the
    // remount tried again while something still writes there (a replication cycle in flight).
    for (let attempt = 1; ; attempt++) {
      const { bsize, blocks, bfree } = statfsSync(dir);
      const size = (limit.free ? (blocks - bfree) * bsize : 0) + bytes;
      try {
        await exec('mount', ['-o', `remount,size=${Math.ceil(size / 4096) * 4096}`, dir]);
        return;
      } catch (error) {
        if (attempt >= 40) throw error;
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    }
  };
  const physical: Record<string, PhysicalHost> = {};
  const machines: Record<string, MachineProcess> = {};
  let lab: PhysicalLab | undefined;
  let sim: RedfishSimulator | undefined;
  let server: ServerProcess | undefined;
  let port = 0;
  let token = '';

  const api = async (method: string, path: string, body?: unknown) => {
    const response = await fetch(`${server!.url}/api/v1${path}`, {
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
  /** The console readers speak to a server by its base URL and the API's request shape. */
  const consoleServer = () =>
    ({
      get baseUrl() {
        return server!.url;
      },
      request: async (method: string, path: string, options: { body?: unknown }) =>
        api(method, path, options.body),
    }) as unknown as TestServer;
  const ok = async (method: string, path: string, body?: unknown) => {
    const answer = await api(method, path, body);
    if (answer.status >= 300)
      throw new Error(`${method} ${path}: ${answer.status} ${JSON.stringify(answer.body)}`);
    return answer.body;
  };
  const task = async (method: string, path: string, body?: unknown, timeoutMs = 120_000) => {
    const accepted = await ok(method, path, body);
    return until(
      `task ${accepted.id as string} (${method} ${path})`,
      async () => {
        const now = await api('GET', `/tasks/${accepted.id as string}`);
        return ['succeeded', 'failed', 'cancelled'].includes(now.body?.state as string)
          ? now.body
          : undefined;
      },
      timeoutMs,
      200,
    );
  };
  const start = async () => {
    server = await startServerProcess({ dataDir, host: lab!.gateway, port });
    port = Number(new URL(server.url).port);
    const response = await fetch(`${server.url}/api/v1/auth/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ username: 'admin', password: adminPassword }),
    });
    token = ((await response.json()) as { token: string }).token;
  };
  const connected = async (name: string, timeoutMs = 90_000) => {
    await until(
      `${name} connected`,
      async () => {
        const host = await api('GET', `/hosts/${name}`);
        if (host.status !== 200) return undefined;
        const connection = await api('GET', `/connections/${host.body.connectionId as string}`);
        return connection.body?.state === 'connected' ? true : undefined;
      },
      timeoutMs,
      250,
    );
  };
  const close = async () => {
    try {
      for (const host of Object.values(physical)) await lab?.restoreNetwork(host);
      await sim?.close();
      for (const machine of Object.values(machines)) await machine.stop();
      await server?.kill('SIGKILL').catch(() => undefined);
    } finally {
      await lab?.close();
      for (const dir of mounted) await exec('umount', ['-l', dir]).catch(() => undefined);
      rmSync(baseDir, { recursive: true, force: true });
    }
  };

  try {
    for (const [host, mib] of Object.entries(options.storageLimitsMiB ?? {})) {
      const dir = storageOf(host);
      await exec('mount', ['-t', 'tmpfs', '-o', `size=${mib}m,mode=0755`, `zenith-${host}`, dir]);
      mounted.push(dir);
    }
    lab = await startPhysicalLab();
    await start();
    for (const name of options.hosts) {
      const enrollment = await ok('POST', '/agents/enrollment-tokens', {});
      const host = await lab.addHost({
        name,
        serverUrl: server!.url,
        enrollmentToken: enrollment.token as string,
        storageRoots: [
          storageOf(name),
          dirname(image.kernel),
          ...(agentImage ? [dirname(agentImage.kernel)] : []),
        ],
        baseDir,
      });
      physical[name] = host;
      machines[name] = new MachineProcess(host.machineCommand);
    }
    const bmcHosts = options.bmcHosts ?? [];
    if (bmcHosts.length > 0) {
      const byMachine = (id: string) => bmcHosts[Number(/(\d+)$/.exec(id)?.[1] ?? 1) - 1]!;
      sim = await startRedfishSimulator({
        machines: bmcHosts.length,
        hooks: {
          powerOn: (id) => machines[byMachine(id)]!.start(),
          powerOff: (id) => machines[byMachine(id)]!.stop(),
        },
      });
      for (const [index, name] of bmcHosts.entries())
        sim.machine(`System${index + 1}`).macs = [physical[name]!.mac];
    }
    for (const machine of Object.values(machines)) await machine.start();
    for (const name of options.hosts) await connected(name);
    if (sim) {
      await ok('POST', '/connections', {
        name: 'bmcs',
        type: 'redfish',
        settings: {
          url: sim.url,
          username: sim.username,
          thumbprint: sim.thumbprint,
          pollSeconds: 1,
          fenceDeadlineSeconds: 6,
        },
        secret: sim.password,
      });
      for (const name of bmcHosts)
        await until(`${name} linked to its machine`, async () =>
          typeof (await ok('GET', `/hosts/${name}`)).computed['machine.id'] === 'string'
            ? true
            : undefined,
        );
    }
    if (options.ha)
      await ok('POST', '/policies', {
        name: 'ha',
        scope: { kind: 'global' },
        settings: { ha: { enabled: true, ...options.ha } },
      });
  } catch (error) {
    await close().catch(() => undefined);
    throw error;
  }

  return {
    lab,
    image,
    physical,
    machines,
    sim,
    get server() {
      return server!;
    },
    api,
    ok,
    task,
    connected,
    storageOf,
    setStorageLimit,
    async runVm(name, hostId, memoryMiB = 128, vmOptions = {}) {
      const created = await task('POST', '/vms', {
        name,
        hostId,
        cpus: 1,
        memoryBytes: memoryMiB * 2 ** 20,
        diskBytes: (vmOptions.diskMiB ?? 4) * 2 ** 20,
        options: {
          ...(vmOptions.agent
            ? {
                kernel: requireAgentImage().kernel,
                initrd: requireAgentImage().initrd,
                guestAgent: true,
              }
            : { kernel: image.kernel, initrd: image.initrd }),
          cmdline: vmOptions.cmdline ?? GUEST_KERNEL_APPEND,
        },
      });
      if (created.state !== 'succeeded')
        throw new Error(`creating ${name}: ${JSON.stringify(created.error)}`);
      const id = created.result.vmId as string;
      if (vmOptions.start === false) return id;
      const started = await task('POST', `/vms/${id}/start`);
      if (started.state !== 'succeeded')
        throw new Error(`starting ${name}: ${JSON.stringify(started.error)}`);
      return id;
    },
    async protectedVm(vmId, timeoutMs = 30_000) {
      let seen: ApiAnswer = null;
      await until(
        () => `${vmId} protected by HA (last seen: ${JSON.stringify(seen)})`,
        async () => {
          seen = await ok('GET', `/ha/vms/${vmId}`);
          return seen.state === 'protected' ? true : undefined;
        },
        timeoutMs,
        200,
      );
    },
    consoleTicks(vmId, count) {
      return consoleTicks(consoleServer(), token, vmId, count);
    },
    openConsole(vmId) {
      return GuestConsole.ofVm(consoleServer(), token, vmId);
    },
    async qemus() {
      const found: QemuProcess[] = [];
      for (const [name, host] of Object.entries(physical))
        for (const { pid, command } of await lab.processes(host)) {
          const uuid = /qemu-system\S*.*-uuid (\S+)/.exec(command)?.[1];
          if (uuid)
            found.push({
              host: name,
              pid,
              uuid,
              incoming: / -incoming /.test(command),
              cpuTicks: cpuTicksOf(pid),
            });
        }
      return found;
    },
    async slowMigration(vmId, targetHostId, bytesPerSecond) {
      const submitted = await ok('POST', `/vms/${vmId}/migrate`, {
        targetHostId,
        maxBandwidthBytesPerSecond: bytesPerSecond,
      });
      const taskId = submitted.id as string;
      await until(
        'the migration under way',
        async () => {
          const found = await ok('GET', `/tasks/${taskId}`);
          return found.state === 'running' && (found.progress as number) >= 5 ? true : undefined;
        },
        60_000,
        50,
      );
      return taskId;
    },
    taskEnded(taskId, timeoutMs = 180_000) {
      return until(
        `task ${taskId} to end`,
        async () => {
          const found = await ok('GET', `/tasks/${taskId}`);
          return ['succeeded', 'failed', 'cancelled'].includes(found.state as string)
            ? found
            : undefined;
        },
        timeoutMs,
        250,
      ).catch((error: unknown) => {
        throw new Error(`${(error as Error).message}\n${server!.output().slice(-6000)}`);
      });
    },
    async restartServer(signal = 'SIGKILL', whileDown = 0) {
      // A server that reported an unhandled rejection is a finding: said, after it runs again.
      let failure: Error | undefined;
      await server!.kill(signal).catch((error: unknown) => (failure = error as Error));
      if (typeof whileDown === 'function') await whileDown();
      else if (whileDown > 0) await new Promise((resolve) => setTimeout(resolve, whileDown));
      await start();
      if (failure) throw failure;
    },
    close,
  };
}

/** utime + stime of a process (fields 14 and 15 of /proc/PID/stat, after the command's parentheses). */
function cpuTicksOf(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(fields[11]) + Number(fields[12]);
  } catch {
    return 0;
  }
}
