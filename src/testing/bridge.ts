/**
 * A real Linux bridge for tests of bridged NICs, made with iproute2 (tests
 * run as root), named uniquely per run so concurrent test files never share
 * one. It is up with an IPv6 link-local address of its own, so the host can
 * send packets into it: to ff02::1 (all nodes), which the bridge floods to
 * every port, and so to every guest on it.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { existsSync, readFileSync, readlinkSync, readdirSync } from 'node:fs';
import { basename } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface TestBridge {
  name: string;
  /** Sends `count` UDP datagrams of `payloadBytes` from the host to every node on the bridge. */
  sendToAllNodes(count: number, payloadBytes: number): Promise<void>;
  /** The bridge's ports (interface names). */
  ports(): string[];
  /** Deletes the bridge and any tap still attached to it (what a test left behind). */
  remove(): Promise<void>;
}

/** Whether a network interface of that name exists on the host. */
export function interfaceExists(name: string): boolean {
  return existsSync(`/sys/class/net/${name}`);
}

/** The bridge an interface is a port of, or null. */
export function bridgeOf(name: string): string | null {
  try {
    return basename(readlinkSync(`/sys/class/net/${name}/master`));
  } catch {
    return null;
  }
}

/** An interface's MAC address and whether it is up (`operstate`). */
export function linkOf(name: string): { mac: string; operstate: string } {
  const read = (file: string) => readFileSync(`/sys/class/net/${name}/${file}`, 'utf8').trim();
  return { mac: read('address'), operstate: read('operstate') };
}

export async function createTestBridge(): Promise<TestBridge> {
  // At most 15 bytes: zt-br- and 8 random hex digits.
  const name = `zt-br-${randomBytes(4).toString('hex')}`;
  const ip = (...args: string[]) => run('ip', args);
  await ip('link', 'add', 'name', name, 'type', 'bridge');
  try {
    // nodad: the address is usable at once (duplicate detection would wait for a port with a carrier).
    await ip(
      'address',
      'add',
      `fe80::${randomBytes(2).toString('hex')}:1/64`,
      'dev',
      name,
      'nodad',
    );
    await ip('link', 'set', 'dev', name, 'up');
  } catch (error) {
    await ip('link', 'del', 'dev', name).catch(() => undefined);
    throw new Error(
      `cannot set up the test bridge ${name} (is IPv6 enabled on this host?): ${String(error)}`,
      { cause: error },
    );
  }
  const ports = () =>
    existsSync(`/sys/class/net/${name}/brif`) ? readdirSync(`/sys/class/net/${name}/brif`) : [];
  return {
    name,
    ports,
    async sendToAllNodes(count, payloadBytes) {
      const socket = createSocket('udp6');
      const payload = Buffer.alloc(payloadBytes, 0x5a);
      try {
        for (let i = 0; i < count; i++)
          await new Promise<void>((resolve, reject) =>
            // Port 9 (discard): nobody answers; the guest's NIC counts the bytes all the same.
            socket.send(payload, 9, `ff02::1%${name}`, (error) =>
              error ? reject(error) : resolve(),
            ),
          );
      } finally {
        socket.close();
      }
    },
    async remove() {
      for (const port of ports())
        if (existsSync(`/sys/class/net/${port}/tun_flags`))
          await ip('link', 'del', 'dev', port).catch(() => undefined);
      await ip('link', 'del', 'dev', name).catch(() => undefined);
    },
  };
}
