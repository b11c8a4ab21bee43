/** Turns a validated VM spec into the QEMU command line the driver owns. Pure: no processes, no files. */
import type { NicWiring } from './nic-names.js';
import type { QemuVmSpec } from './vm-spec.js';

export interface RuntimePaths {
  qmpSocket: string;
  serialSocket: string;
  vncSocket: string;
  /** The host end of the guest agent channel (with `guestAgent`). */
  agentSocket: string;
  pidFile: string;
}

/** `auto` becomes kvm only where /dev/kvm exists and the host says KVM is usable. */
export function resolveAccelerator(
  requested: QemuVmSpec['accelerator'],
  kvmUsable: boolean,
): 'kvm' | 'tcg' {
  if (requested === 'auto') return kvmUsable ? 'kvm' : 'tcg';
  return requested;
}

/** Characters QEMU's option parser treats specially in a value are doubled (`,` → `,,`). */
function optionValue(value: string): string {
  return value.replaceAll(',', ',,');
}

/** `nics` holds each NIC's MAC and, for a bridged one, its tap (nic-names.ts), in the spec's order. */
export function buildCommandLine(
  spec: QemuVmSpec,
  paths: RuntimePaths,
  accelerator: 'kvm' | 'tcg',
  nics: readonly NicWiring[],
): string[] {
  const args = [
    '-name',
    `guest=${optionValue(spec.name)}`,
    '-accel',
    accelerator,
    // `-cpu host`/`max` need KVM; under TCG a fixed model is the portable choice.
    '-cpu',
    accelerator === 'kvm' ? 'host' : 'qemu64',
    '-smp',
    String(spec.cpus),
    '-m',
    String(spec.memoryMiB),
    '-nodefaults',
    '-no-user-config',
    '-display',
    'none',
    '-qmp',
    `unix:${optionValue(paths.qmpSocket)},server=on,wait=off`,
    '-serial',
    `unix:${optionValue(paths.serialSocket)},server=on,wait=off`,
    '-pidfile',
    paths.pidFile,
  ];
  if (spec.uuid) args.push('-uuid', spec.uuid);
  // -nodefaults leaves no display adapter: without one the VNC server shows only QEMU's
  // "no graphic display device" notice. Standard VGA is what every guest and firmware drives.
  if (spec.vnc) args.push('-vnc', `unix:${optionValue(paths.vncSocket)}`, '-device', 'VGA');
  spec.disks.forEach((disk, index) => {
    args.push('-drive', `file=${optionValue(disk.file)},format=qcow2,if=virtio,id=disk${index}`);
  });
  if (spec.guestAgent)
    args.push(
      '-chardev',
      `socket,id=qga0,path=${optionValue(paths.agentSocket)},server=on,wait=off`,
      '-device',
      'virtio-serial-pci,id=vserial0',
      '-device',
      'virtserialport,bus=vserial0.0,chardev=qga0,name=org.qemu.guest_agent.0',
    );
  if (spec.boot.kind === 'kernel') {
    args.push('-kernel', spec.boot.kernel);
    if (spec.boot.initrd) args.push('-initrd', spec.boot.initrd);
    if (spec.boot.cmdline) args.push('-append', spec.boot.cmdline);
  }
  if (nics.length !== spec.nics.length) throw new Error('every NIC needs its wiring');
  nics.forEach((nic, index) => {
    // A tap Zenith made and owns: QEMU runs no scripts on it (tap-devices.ts sets it up and removes it).
    const netdev = nic.tap
      ? `tap,id=net${index},ifname=${nic.tap.name},script=no,downscript=no`
      : `user,id=net${index}${spec.nics[index]?.mode === 'user' && spec.nics[index].isolated ? ',restrict=on' : ''}`;
    args.push('-netdev', netdev, '-device', `virtio-net-pci,netdev=net${index},mac=${nic.mac}`);
  });
  // A guest kernel that panics says so through pvpanic (Linux's pvpanic-mmio driver binds to it by
  // ACPI); QEMU then powers the VM off with the cause guest-panic, so a panicked guest never hangs
  // running, and VM monitoring can restart it. shutdown is QEMU 7.2's default, stated here.
  args.push('-device', 'pvpanic', '-action', 'panic=shutdown');
  return args;
}
