/**
 * govmomi's vSphere simulator for one test file, with an inventory of the
 * asked shape, over TLS with its own certificate (tests pin its thumbprint).
 * The binary is built once from src/testing/vsphere-simulator/main.go (see
 * go-build.ts). A restart keeps the port and the certificate.
 *
 *   const sim = await startVsphereSimulator({ clusters: 2, vmsPerPool: 3 });
 *   ... connect to sim.url with sim.thumbprint ...
 *   await sim.stop();
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { ensureGoProgram } from './go-build.js';

export interface SimulatorShape {
  /** A standalone ESXi instead of a vCenter (then only datastores and vmsPerPool apply). */
  esx?: boolean;
  datacenters?: number;
  clustersPerDatacenter?: number;
  hostsPerCluster?: number;
  standaloneHostsPerDatacenter?: number;
  /** VMs per resource pool and per standalone host. */
  vmsPerPool?: number;
  /** Child resource pools per cluster. */
  poolsPerCluster?: number;
  datastores?: number;
  portgroupsPerDatacenter?: number;
  /** Datacenters placed in a folder. */
  folders?: number;
  /** Power the model's VMs on (default true). */
  autostart?: boolean;
  /** VMs (by name) whose VMware Tools run; the simulator's VMs have none otherwise. */
  toolsVms?: string[];
  /** Sessions expire after this much idle time. */
  sessionIdleSeconds?: number;
}

export interface VsphereSimulator {
  readonly url: string;
  /** SHA-256 thumbprint of its certificate. */
  readonly thumbprint: string;
  /** Its certificate (PEM), to trust as a CA. */
  readonly certificatePem: string;
  /** Any non-empty user name and password log in. */
  readonly username: string;
  readonly password: string;
  readonly pid: number;
  /** Stops and starts it again on the same port: sessions, morefs of new objects and changes are gone. */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

export function simulatorBinary(): Promise<string> {
  return ensureGoProgram('vsphere-simulator', 'src/testing/vsphere-simulator');
}

export async function startVsphereSimulator(shape: SimulatorShape = {}): Promise<VsphereSimulator> {
  const binary = await simulatorBinary();
  const dir = mkdtempSync(join(tmpdir(), 'zenith-vcsim-'));
  const certFile = join(dir, 'cert.pem');
  const keyFile = join(dir, 'key.pem');
  const args = (listen: string) => [
    `-listen=${listen}`,
    `-cert=${certFile}`,
    `-key=${keyFile}`,
    ...(shape.esx ? ['-esx'] : []),
    `-dc=${shape.datacenters ?? 1}`,
    `-cluster=${shape.clustersPerDatacenter ?? 1}`,
    `-host=${shape.hostsPerCluster ?? 3}`,
    `-standalone-host=${shape.standaloneHostsPerDatacenter ?? 1}`,
    `-vm=${shape.vmsPerPool ?? 2}`,
    `-pool=${shape.poolsPerCluster ?? 0}`,
    `-ds=${shape.datastores ?? 1}`,
    `-pg=${shape.portgroupsPerDatacenter ?? 1}`,
    `-folder=${shape.folders ?? 0}`,
    `-autostart=${shape.autostart ?? true}`,
    `-idle=${shape.sessionIdleSeconds ?? 0}s`,
    ...(shape.toolsVms?.length ? [`-tools=${shape.toolsVms.join(',')}`] : []),
  ];
  let started = await launch(binary, args('127.0.0.1:0'), dir);
  const listen = new URL(started.url).host;
  let stopped = false;
  const simulator: VsphereSimulator = {
    get url() {
      return started.url;
    },
    get thumbprint() {
      return started.thumbprint;
    },
    certificatePem: readFileSync(certFile, 'utf8'),
    username: 'zenith',
    password: 'simulator-password',
    get pid() {
      return started.child.pid ?? 0;
    },
    async restart() {
      await terminate(started.child);
      started = await launch(binary, args(listen), dir);
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      await terminate(started.child);
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return simulator;
}

interface Launched {
  child: ChildProcess;
  url: string;
  thumbprint: string;
}

async function launch(binary: string, args: string[], dir: string): Promise<Launched> {
  // TMPDIR: the simulator's datastores are directories under it, removed with the fixture.
  const child = spawn(binary, args, {
    stdio: ['pipe', 'pipe', 'pipe'],
    env: { ...process.env, TMPDIR: dir },
  });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-4000);
  });
  const lines = createInterface({ input: child.stdout });
  try {
    const first = await new Promise<string>((resolve, reject) => {
      lines.once('line', resolve);
      child.once('exit', (code, signal) =>
        reject(
          new Error(
            `the vSphere simulator exited (${code ?? signal}) before it answered: ${stderr}`,
          ),
        ),
      );
      child.once('error', reject);
    });
    const info = JSON.parse(first) as { url: string; thumbprint: string };
    return { child, url: info.url, thumbprint: info.thumbprint };
  } catch (error) {
    child.kill('SIGKILL');
    throw error;
  }
}

async function terminate(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(timer);
}
