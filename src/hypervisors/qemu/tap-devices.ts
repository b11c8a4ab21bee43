/**
 * The host side of bridged NICs: taps Zenith makes itself (as root, the way
 * libvirt does) instead of QEMU's setuid bridge helper, so it knows their
 * names, can count their traffic and can remove them. A tap is created
 * persistent with iproute2, attached to its bridge and brought up before QEMU
 * starts; QEMU opens it by name (`-netdev tap,ifname=…`); it is deleted once
 * QEMU is gone.
 */
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { ZenithError } from '../../core/errors.js';
import type { TapNic } from './nic-names.js';

const run = promisify(execFile);

const sysNet = (name: string) => `/sys/class/net/${name}`;

/** Only tun/tap devices have tun_flags: an interface of any other kind is never touched. */
function isTap(name: string): boolean {
  return existsSync(`${sysNet(name)}/tun_flags`);
}

async function ip(args: string[]): Promise<void> {
  try {
    await run('ip', args);
  } catch (error) {
    const failure = error as NodeJS.ErrnoException & { stderr?: string };
    throw new ZenithError(
      'ZEN_DRIVER_ERROR',
      failure.code === 'ENOENT'
        ? 'bridged NICs need iproute2 (the ip command): apt-get install iproute2'
        : `ip ${args.join(' ')} failed: ${failure.stderr?.trim() || failure.message}`,
      { command: ['ip', ...args] },
      { cause: error },
    );
  }
}

/**
 * Creates the taps, each a port of its bridge and up. A tap of the same name
 * left behind (a crash) is removed and made anew. All or nothing: on a
 * failure the taps made so far are removed again.
 */
export async function createTaps(taps: readonly TapNic[]): Promise<void> {
  const made: string[] = [];
  try {
    for (const tap of taps) {
      // The spec was checked when the VM was created; the bridge may have gone since.
      if (!existsSync(`${sysNet(tap.bridge)}/bridge`))
        throw new ZenithError(
          'ZEN_INVALID_STATE',
          `there is no bridge '${tap.bridge}' on this host any more: create it, or change the VM's NICs`,
          { bridge: tap.bridge },
        );
      if (existsSync(sysNet(tap.name))) {
        if (!isTap(tap.name))
          throw new ZenithError(
            'ZEN_CONFLICT',
            `an interface named ${tap.name} exists and is not a tap: Zenith will not replace it`,
            { interface: tap.name },
          );
        await ip(['link', 'del', 'dev', tap.name]);
      }
      await ip(['tuntap', 'add', 'dev', tap.name, 'mode', 'tap']);
      made.push(tap.name);
      // The bridge's MTU, so adding the port does not lower it (the kernel adjusts a bridge to its smallest port).
      const mtu = readFileSync(`${sysNet(tap.bridge)}/mtu`, 'utf8').trim();
      await ip(['link', 'set', 'dev', tap.name, 'address', tap.mac, 'mtu', mtu]);
      await ip(['link', 'set', 'dev', tap.name, 'master', tap.bridge, 'up']);
    }
  } catch (error) {
    await removeTaps(made).catch(() => undefined);
    throw error;
  }
}

/** Deletes the taps that exist (a missing one is already gone). */
export async function removeTaps(names: readonly string[]): Promise<void> {
  for (const name of names) {
    if (!isTap(name)) continue;
    try {
      await ip(['link', 'del', 'dev', name]);
    } catch (error) {
      // Removed meanwhile by someone else: that is the outcome wanted.
      if (existsSync(sysNet(name))) throw error;
    }
  }
}

/**
 * What the guest received and sent through the taps, summed; null when a tap
 * cannot be read. The guest's point of view is the tap's turned around: what
 * the tap transmits goes to QEMU, into the guest.
 */
export function guestTraffic(
  names: readonly string[],
): { receivedBytes: number; sentBytes: number } | null {
  let receivedBytes = 0;
  let sentBytes = 0;
  try {
    for (const name of names) {
      receivedBytes += Number(readFileSync(`${sysNet(name)}/statistics/tx_bytes`, 'utf8'));
      sentBytes += Number(readFileSync(`${sysNet(name)}/statistics/rx_bytes`, 'utf8'));
    }
  } catch {
    return null;
  }
  return { receivedBytes, sentBytes };
}
