/**
 * "Physical hosts" for the BMC tests: each is a `zenith agent` in a PID and
 * network namespace of its own, the machine a BMC (ipmi_sim's chassis control,
 * or the Redfish simulator's power hooks through a MachineProcess) starts on
 * power-on and kills — agent, QEMUs and all — on power-off. The namespaces
 * hang off one bridge in the test's own namespace, so the agents reach the
 * control plane (listening on the bridge's address) and each other (live
 * migrations), and each host's NIC has a MAC the test chooses (a Redfish BMC
 * reports it, and Zenith links the machine to the agent's host by it).
 *
 * The agent's state directory survives power cycles like a disk: it enrolls
 * on the first boot with a one-time token and reconnects with its
 * certificate on the next ones. Needs root (ip netns, veth, bridges). The
 * machine is `ip netns exec NS unshare --pid --fork --kill-child --mount-proc
 * bash -c INIT zenith agent …`: `unshare --net=FILE` does not join FILE's
 * namespace, it makes a new one and mounts it over FILE. The namespace's
 * first process is a small init (bash, which reaps orphans as an init must),
 * not the agent: as on a real host, the agent alone may die (its QEMUs, its
 * fencing sentinel run on) and start again in the same host.
 */
import { execFile, spawn } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
const zenithBin = join(import.meta.dirname, '../../bin/zenith.js');
/**
 * The host's init: runs the agent, then waits forever, reaping every process that ends (bash
 * reaps any child on SIGCHLD, the orphans a dead agent leaves included).
 */
const hostInit = '"$@" & while :; do sleep 1 & wait $!; done';

export interface PhysicalHost {
  name: string;
  namespace: string;
  /** The host's address on the lab bridge. */
  address: string;
  /** Its NIC's MAC address (lower case). */
  mac: string;
  /** The bridge's end of its veth: down is its control network cut. */
  veth: string;
  stateDir: string;
  /** The command the BMC runs to "boot" the machine (an init and the agent in its namespaces). */
  machineCommand: string[];
  /** The agent's own command line (what the init starts). */
  agentCommand: string[];
}

export interface PhysicalLab {
  /** The bridge's address: the control plane listens here for the agents. */
  gateway: string;
  /** Adds a host; `serverUrl` is the control plane as the agent reaches it (http://gateway:port). */
  addHost(options: {
    name: string;
    serverUrl: string;
    enrollmentToken: string;
    storageRoots: string[];
    baseDir: string;
  }): Promise<PhysicalHost>;
  /** Cuts the host's network (its veth down at the bridge): a partition, the host itself runs on. */
  cutNetwork(host: PhysicalHost): Promise<void>;
  restoreNetwork(host: PhysicalHost): Promise<void>;
  /**
   * Throttles what reaches the host (its veth at the bridge: what others send it) to a token bucket
   * of `mbit` Mbit/s; `null` lifts it.
   */
  throttle(
    host: PhysicalHost,
    link: { mbit: number; burst: string; latency: string } | null,
  ): Promise<void>;
  /**
   * Every process in the host's namespaces (its agent, its QEMUs), with ids as this test's
   * namespace sees them (the agent reports ids of its own PID namespace).
   */
  processes(host: PhysicalHost): Promise<Array<{ pid: number; command: string }>>;
  /** Crashes the host: SIGKILL to everything in its namespaces, at once. */
  crash(host: PhysicalHost): Promise<void>;
  /** SIGKILL to the host's agent process only (its QEMUs and anything else run on); its pids. */
  killAgent(host: PhysicalHost): Promise<number[]>;
  /** Starts the agent again in the running host's namespaces (after killAgent). */
  startAgent(host: PhysicalHost): Promise<void>;
  /** Removes every namespace and the bridge (kill the machines first). */
  close(): Promise<void>;
}

const ip = (...args: string[]) => run('ip', args);

/** One lab per test process: a bridge 10.(77+n).x.1/24 and namespaces on it. */
export async function startPhysicalLab(): Promise<PhysicalLab> {
  const tag = (process.pid % 100_000).toString(36);
  const bridge = `zbr${tag}`;
  const subnet = 100 + (process.pid % 100);
  const gateway = `10.${subnet}.${(process.pid >> 8) % 250}.1`;
  const prefix = gateway.slice(0, gateway.lastIndexOf('.'));
  const namespaces: string[] = [];
  // No forwarding delay: a new port forwards at once (by default it listens and learns for 15 s).
  await ip('link', 'add', bridge, 'type', 'bridge', 'forward_delay', '0');
  await ip('addr', 'add', `${gateway}/24`, 'dev', bridge);
  await ip('link', 'set', bridge, 'up');
  let next = 2;
  return {
    gateway,
    async addHost({ name, serverUrl, enrollmentToken, storageRoots, baseDir }) {
      const n = next++;
      const namespace = `zph${tag}-${n}`;
      const outside = `zv${tag}o${n}`;
      const inside = `zv${tag}i${n}`;
      const mac = `02:5a:${hex(subnet)}:${hex((process.pid >> 8) % 250)}:00:${hex(n)}`;
      const address = `${prefix}.${n}`;
      await ip('netns', 'add', namespace);
      namespaces.push(namespace);
      await ip('link', 'add', outside, 'type', 'veth', 'peer', 'name', inside);
      await ip('link', 'set', outside, 'master', bridge);
      await ip('link', 'set', outside, 'up');
      await ip('link', 'set', inside, 'netns', namespace);
      const inNs = (...args: string[]) => ip('netns', 'exec', namespace, 'ip', ...args);
      await inNs('link', 'set', inside, 'address', mac);
      await inNs('addr', 'add', `${address}/24`, 'dev', inside);
      await inNs('link', 'set', inside, 'up');
      await inNs('link', 'set', 'lo', 'up');
      await waitUntilForwarding(outside);
      const stateDir = join(baseDir, `${name}-state`);
      mkdirSync(stateDir, { recursive: true });
      // `ip netns exec` joins the namespace (and execs, keeping the process id the BMC kills);
      // `unshare --net=FILE` would not join it but make a new one and mount it over FILE.
      const agentCommand = [
        process.execPath,
        zenithBin,
        'agent',
        '--server',
        serverUrl,
        '--token',
        enrollmentToken,
        '--state-dir',
        stateDir,
        ...storageRoots.flatMap((root) => ['--storage-root', root]),
        '--accelerator',
        'tcg',
        '--migration-address',
        address,
        '--host-name',
        name,
      ];
      const machineCommand = [
        'ip',
        'netns',
        'exec',
        namespace,
        'unshare',
        '--pid',
        '--fork',
        '--kill-child',
        '--mount-proc',
        'bash',
        '-c',
        hostInit,
        'zenith-host',
        ...agentCommand,
      ];
      return {
        name,
        namespace,
        address,
        mac,
        veth: outside,
        stateDir,
        machineCommand,
        agentCommand,
      };
    },
    async cutNetwork(host) {
      await ip('link', 'set', host.veth, 'down');
    },
    async throttle(host, link) {
      if (link === null)
        await run('tc', ['qdisc', 'del', 'dev', host.veth, 'root']).catch(() => undefined);
      else
        await run('tc', [
          'qdisc',
          'replace',
          'dev',
          host.veth,
          'root',
          'tbf',
          'rate',
          `${link.mbit}mbit`,
          'burst',
          link.burst,
          'latency',
          link.latency,
        ]);
    },
    async restoreNetwork(host) {
      await ip('link', 'set', host.veth, 'up');
      await waitUntilForwarding(host.veth);
    },
    processes: (host) => processesIn(host.namespace),
    async crash(host) {
      for (const { pid } of await processesIn(host.namespace)) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // Gone already: its namespace's init took it along.
        }
      }
    },
    async killAgent(host) {
      const agents = (await processesIn(host.namespace)).filter((p) => isAgent(p.command));
      for (const { pid } of agents) process.kill(pid, 'SIGKILL');
      return agents.map((p) => p.pid);
    },
    async startAgent(host) {
      // Into the namespaces of the host's init (its first process), as a child of nsenter, which
      // ends with it (with the host, when the machine is killed).
      const init = (await processesIn(host.namespace)).find((p) => namespacePid(p.pid) === 1);
      if (!init) throw new Error(`${host.name} is not running`);
      // Its output goes to agent.log in its state directory, for whoever reads a failure.
      const log = openSync(join(host.stateDir, 'agent.log'), 'a');
      try {
        const child = spawn(
          'nsenter',
          ['-t', String(init.pid), '-p', '-m', '-n', '--', ...host.agentCommand],
          { detached: true, stdio: ['ignore', log, log] },
        );
        await new Promise<void>((resolve, reject) => {
          child.once('spawn', () => resolve());
          child.once('error', reject);
        });
        child.unref();
      } finally {
        closeSync(log);
      }
    },
    async close() {
      for (const namespace of namespaces)
        await ip('netns', 'del', namespace).catch(() => undefined);
      await ip('link', 'del', bridge).catch(() => undefined);
    },
  };
}

async function processesIn(namespace: string): Promise<Array<{ pid: number; command: string }>> {
  const { stdout } = await ip('netns', 'pids', namespace);
  return stdout
    .split('\n')
    .filter((line) => /^\d+$/.test(line.trim()))
    .flatMap((line) => {
      const pid = Number(line.trim());
      try {
        const command = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ').trim();
        return [{ pid, command }];
      } catch {
        return [];
      }
    });
}

/** The agent's own process (`zenith agent …`), not its sentinel's (`zenith agent-sentinel …`). */
function isAgent(command: string): boolean {
  return command.startsWith(`${process.execPath} ${zenithBin} agent `);
}

/** A process's id inside its own PID namespace (the last of /proc/PID/status's NSpid). */
function namespacePid(pid: number): number | null {
  try {
    const line = /^NSpid:\s+(.+)$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
    return line ? Number(line.trim().split(/\s+/).at(-1)) : null;
  } catch {
    return null;
  }
}

/** Waits until the bridge forwards through the host's port (an agent's first connection may not fail). */
async function waitUntilForwarding(port: string): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const { stdout } = await run('bridge', ['link', 'show', 'dev', port]);
    if (/state forwarding/.test(stdout)) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`the lab bridge does not forward through ${port}`);
}

function hex(n: number): string {
  return (n & 0xff).toString(16).padStart(2, '0');
}
