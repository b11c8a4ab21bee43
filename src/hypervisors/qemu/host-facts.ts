/** Facts about the local host that a QEMU driver reports: CPU, memory, accelerator, QEMU, storage. */
import { execFile } from 'node:child_process';
import { accessSync, constants, existsSync, readFileSync, readdirSync, statfsSync } from 'node:fs';
import { cpus, hostname, networkInterfaces, totalmem } from 'node:os';
import { promisify } from 'node:util';
import { ZenithError } from '../../core/errors.js';
import type { Facts } from '../driver.js';

const run = promisify(execFile);

export interface LocalHost {
  name: string;
  cpuCount: number;
  memoryBytes: number;
  kvmAvailable: boolean;
  qemuVersion: string;
}

export async function qemuVersion(binary: string): Promise<string> {
  try {
    const { stdout } = await run(binary, ['--version']);
    return /version\s+([\d.]+)/.exec(stdout)?.[1] ?? stdout.split('\n')[0] ?? 'unknown';
  } catch (error) {
    throw new ZenithError(
      'ZEN_CONNECTION_FAILED',
      `QEMU is not installed here ('${binary}' did not run): install qemu-system-x86 and qemu-utils`,
      { binary },
      { cause: error },
    );
  }
}

/** The network bridges on the host now (read on every use: an operator may add one at any time). */
export function hostBridges(): string[] {
  try {
    return readdirSync('/sys/class/net').filter((name) =>
      existsSync(`/sys/class/net/${name}/bridge`),
    );
  } catch {
    return [];
  }
}

function kvmAvailable(): boolean {
  try {
    accessSync('/dev/kvm', constants.R_OK | constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * Whether KVM guests can really run: /dev/kvm can exist on a nested host where
 * they cannot (there `-cpu host` aborts at once). Starts a paused machine for
 * a moment; usable when it is still up after two seconds.
 */
export async function probeKvm(binary: string): Promise<boolean> {
  if (!kvmAvailable()) return false;
  return new Promise((resolve) => {
    const child = execFile(
      binary,
      [
        '-accel',
        'kvm',
        '-cpu',
        'host',
        '-machine',
        'pc',
        '-nodefaults',
        '-display',
        'none',
        '-S',
        '-m',
        '16',
      ],
      () => undefined,
    );
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      resolve(true);
    }, 2000);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve(false);
    });
  });
}

export async function inspectLocalHost(binary: string, name?: string): Promise<LocalHost> {
  return {
    name: name ?? hostname(),
    cpuCount: cpus().length,
    memoryBytes: totalmem(),
    kvmAvailable: kvmAvailable(),
    qemuVersion: await qemuVersion(binary),
  };
}

/** A DMI value of the machine (/sys/class/dmi/id), null where the machine has none or hides it. */
function dmi(name: string): string | null {
  try {
    const value = readFileSync(`/sys/class/dmi/id/${name}`, 'utf8').trim();
    return value === '' ||
      /^(none|not specified|to be filled by o\.e\.m\.|default string)$/i.test(value)
      ? null
      : value;
  } catch {
    return null;
  }
}

/**
 * What ties this host to the physical machine a BMC reports (SMBIOS UUID, serial, NIC MACs): the
 * BMC connection links the two by them. MACs are those of this host's network namespace.
 */
export function machineIdentity(): Facts {
  const macs = new Set<string>();
  for (const addresses of Object.values(networkInterfaces()))
    for (const address of addresses ?? [])
      if (!address.internal && address.mac !== '00:00:00:00:00:00')
        macs.add(address.mac.toLowerCase());
  return {
    'hardware.smbiosUuid': dmi('product_uuid')?.toLowerCase() ?? null,
    'hardware.serial': dmi('product_serial'),
    'hardware.nicMacs': [...macs].sort(),
  };
}

export function hostFacts(
  host: LocalHost,
  options: { kvmUsable: boolean; storageRoots: string[] },
): Facts {
  let freeBytes: number | null = null;
  try {
    const stats = statfsSync(options.storageRoots[0] ?? '/');
    freeBytes = stats.bavail * stats.bsize;
  } catch {
    // an unreadable root: free space unknown
  }
  const model = cpus()[0]?.model ?? 'unknown';
  let osName = 'linux';
  try {
    osName = /PRETTY_NAME="([^"]+)"/.exec(readFileSync('/etc/os-release', 'utf8'))?.[1] ?? osName;
  } catch {
    // keep the default
  }
  return {
    'hypervisor.type': 'qemu',
    'host.state': 'connected',
    'cpu.cores': host.cpuCount,
    'cpu.model': model,
    'memory.totalBytes': host.memoryBytes,
    'accelerator.kvmAvailable': host.kvmAvailable,
    'accelerator.kvmUsable': options.kvmUsable,
    'qemu.version': host.qemuVersion,
    'storage.roots': options.storageRoots,
    'storage.freeBytes': freeBytes,
    'network.bridges': hostBridges(),
    'os.name': osName,
    ...machineIdentity(),
  };
}
