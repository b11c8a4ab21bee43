import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { isZenithError } from '../../../src/core/errors.js';
import {
  buildCommandLine,
  resolveAccelerator,
} from '../../../src/hypervisors/qemu/command-line.js';
import { nicWiring, tapName } from '../../../src/hypervisors/qemu/nic-names.js';
import { validateSpec, type QemuVmSpec } from '../../../src/hypervisors/qemu/vm-spec.js';
import { pathWithinRoots } from '../../../src/core/paths.js';

const base = mkdtempSync(join(tmpdir(), 'zenith-spec-'));
const root = join(base, 'images');
const outside = join(base, 'secret');
mkdirSync(root);
mkdirSync(outside);
writeFileSync(join(outside, 'shadow'), 'x');
writeFileSync(join(root, 'vmlinuz'), 'kernel');
symlinkSync(outside, join(root, 'escape'));
after(() => rmSync(base, { recursive: true, force: true }));

const host = { storageRoots: [root], cpuCount: 2, memoryBytes: 4 * 1024 ** 3, bridges: ['br0'] };
const spec: QemuVmSpec = {
  name: 'web-1',
  cpus: 2,
  memoryMiB: 256,
  disks: [{ file: 'web-1/disk0.qcow2', sizeBytes: 1024 ** 3 }],
  boot: { kind: 'kernel', kernel: 'vmlinuz', cmdline: 'console=ttyS0' },
  nics: [{ mode: 'user' }],
  vnc: true,
  accelerator: 'auto',
};

const refused = (change: Partial<QemuVmSpec>, code: string) =>
  assert.throws(
    () => validateSpec({ ...spec, ...change }, host),
    (e) => isZenithError(e) && e.code === code,
    JSON.stringify(change),
  );

test('a sane spec passes, with every path resolved inside the storage root', () => {
  const valid = validateSpec(spec, host);
  assert.equal(valid.disks[0]!.file, join(root, 'web-1/disk0.qcow2'));
  assert.deepEqual(valid.boot, {
    kind: 'kernel',
    kernel: join(root, 'vmlinuz'),
    cmdline: 'console=ttyS0',
  });
});

test('impossible values are refused with a coded error before anything is created', () => {
  refused({ cpus: 0 }, 'ZEN_BAD_REQUEST');
  refused({ cpus: 64 }, 'ZEN_NO_CAPACITY');
  refused({ memoryMiB: 8 * 1024 }, 'ZEN_NO_CAPACITY');
  refused({ memoryMiB: 4 }, 'ZEN_BAD_REQUEST');
  refused({ name: '../evil' }, 'ZEN_BAD_REQUEST');
  refused({ nics: [{ mode: 'bridge', bridge: 'br-missing' }] }, 'ZEN_BAD_REQUEST');
  refused({ nics: [{ mode: 'tap' } as never] }, 'ZEN_BAD_REQUEST');
  refused(
    { nics: Array.from({ length: 17 }, () => ({ mode: 'user' as const })) },
    'ZEN_BAD_REQUEST',
  );
  refused({ disks: [], boot: { kind: 'disk' } }, 'ZEN_BAD_REQUEST');
});

test('no path can reach outside the storage roots: not with .., an absolute path or a symlink', () => {
  for (const path of [
    '../secret/shadow',
    join(outside, 'shadow'),
    'escape/shadow',
    'a/../../secret/x',
    '/etc/passwd',
  ]) {
    assert.throws(
      () => pathWithinRoots(path, [root]),
      (e) => isZenithError(e) && e.code === 'ZEN_BAD_REQUEST',
      path,
    );
  }
  refused({ disks: [{ file: 'escape/disk.qcow2', sizeBytes: 1024 ** 3 }] }, 'ZEN_BAD_REQUEST');
  refused({ boot: { kind: 'kernel', kernel: '/boot/vmlinuz' } }, 'ZEN_BAD_REQUEST');
  assert.equal(pathWithinRoots('new/dir/disk.qcow2', [root]), join(root, 'new/dir/disk.qcow2'));
});

test('the command line uses the accelerator the host can run, and quotes option values', () => {
  assert.equal(resolveAccelerator('auto', false), 'tcg');
  assert.equal(resolveAccelerator('auto', true), 'kvm');
  const valid = validateSpec(
    { ...spec, disks: [{ file: 'odd,name.qcow2', sizeBytes: 1024 ** 3 }] },
    host,
  );
  const args = buildCommandLine(
    valid,
    {
      qmpSocket: '/run/q.sock',
      serialSocket: '/run/s.sock',
      vncSocket: '/run/v.sock',
      agentSocket: '/run/a.sock',
      pidFile: '/run/pid',
    },
    'tcg',
    nicWiring(valid, 'q1', 'hostkey'),
  );
  const after = (flag: string) => args[args.indexOf(flag) + 1];
  assert.equal(after('-accel'), 'tcg');
  assert.equal(after('-cpu'), 'qemu64');
  assert.equal(after('-smp'), '2');
  assert.equal(after('-m'), '256');
  assert.equal(after('-kernel'), join(root, 'vmlinuz'));
  assert.ok(after('-drive')!.startsWith(`file=${join(root, 'odd,,name.qcow2')},format=qcow2`));
  assert.equal(after('-vnc'), 'unix:/run/v.sock');
  // A VNC console needs a display adapter (-nodefaults removes the default one).
  assert.equal(after('-device'), 'VGA');
  assert.equal(after('-netdev'), 'user,id=net0');
});

test('a guest agent channel is a virtio-serial port named for qemu-ga on a unix socket, only when asked', () => {
  const paths = {
    qmpSocket: '/q',
    serialSocket: '/s',
    vncSocket: '/v',
    agentSocket: '/run/a,b.qga',
    pidFile: '/p',
  };
  const withAgent = validateSpec({ ...spec, guestAgent: true }, host);
  const args = buildCommandLine(withAgent, paths, 'tcg', nicWiring(withAgent, 'q1', 'hostkey'));
  const after = (flag: string) => args.filter((_, i) => args[i - 1] === flag);
  assert.deepEqual(after('-chardev'), ['socket,id=qga0,path=/run/a,,b.qga,server=on,wait=off']);
  assert.ok(after('-device').includes('virtio-serial-pci,id=vserial0'));
  assert.ok(
    after('-device').includes(
      'virtserialport,bus=vserial0.0,chardev=qga0,name=org.qemu.guest_agent.0',
    ),
  );
  const without = validateSpec(spec, host);
  const plain = buildCommandLine(without, paths, 'tcg', nicWiring(without, 'q1', 'hostkey'));
  assert.ok(!plain.some((arg) => arg.includes('guest_agent') || arg.includes('virtio-serial')));
  assert.throws(
    () => validateSpec({ ...spec, guestAgent: 'yes' as unknown as boolean }, host),
    (error) => isZenithError(error) && error.code === 'ZEN_BAD_REQUEST',
  );
});

test('a bridged NIC is a tap Zenith made, named from the VM and the driver, with a MAC of its own', () => {
  const valid = validateSpec(
    { ...spec, nics: [{ mode: 'user' }, { mode: 'bridge', bridge: 'br0' }] },
    host,
  );
  const nics = nicWiring(valid, 'q1', 'hostkey');
  const args = buildCommandLine(
    valid,
    { qmpSocket: '/q', serialSocket: '/s', vncSocket: '/v', agentSocket: '/a', pidFile: '/p' },
    'tcg',
    nics,
  );
  const tap = tapName('hostkey', 'q1', 1);
  assert.match(tap, /^zt[0-9a-f]{10}1$/);
  assert.ok(Buffer.byteLength(tap) <= 15, 'Linux interface names are at most 15 bytes');
  assert.ok(Buffer.byteLength(tapName('hostkey', 'q1', 15)) <= 15);
  const netdevs = args.filter((_, i) => args[i - 1] === '-netdev');
  assert.deepEqual(netdevs, ['user,id=net0', `tap,id=net1,ifname=${tap},script=no,downscript=no`]);
  const devices = args.filter((_, i) => args[i - 1] === '-device');
  assert.deepEqual(devices, [
    'VGA',
    `virtio-net-pci,netdev=net0,mac=${nics[0]!.mac}`,
    `virtio-net-pci,netdev=net1,mac=${nics[1]!.mac}`,
    // A panicking guest tells QEMU, which powers it off (VM monitoring may restart it).
    'pvpanic',
  ]);
  assert.equal(args[args.indexOf('-action') + 1], 'panic=shutdown');
  // Every VM's NICs have MACs of their own; the tap's starts with fe so it never becomes the bridge's.
  assert.match(nics[1]!.mac, /^52:54:00(:[0-9a-f]{2}){3}$/);
  assert.notEqual(nics[0]!.mac, nics[1]!.mac);
  assert.notEqual(nicWiring(valid, 'q2', 'hostkey')[1]!.mac, nics[1]!.mac);
  assert.equal(nics[1]!.tap!.mac, `fe${nics[1]!.mac.slice(2)}`);
  // The same VM under another driver (the other end of a migration on one machine): another tap, same MAC.
  const elsewhere = nicWiring(valid, 'q1', 'otherkey')[1]!;
  assert.notEqual(elsewhere.tap!.name, tap);
  assert.equal(elsewhere.mac, nics[1]!.mac);
});
