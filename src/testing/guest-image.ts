/**
 * THE tiny test guest: Debian's cloud kernel and a busybox initramfs whose
 * /init prints `ZENITH-GUEST READY` on ttyS0, then `tick N` every 100 ms forever
 * (a migration test checks the counter keeps going on the destination).
 * With `zenith.net=up` it loads the virtio-net driver (a module in the cloud
 * kernel, copied into the initramfs) and brings every NIC up, so they take
 * packets in (a NIC without a driver does not) and IPv6 announces itself.
 * Built once from Debian packages into .cache/guest/<key>/ and shared by every
 * test; concurrent builders each build in a temp dir and the first rename wins.
 *
 * The guest with an agent (`ensureAgentGuestImage`, `zenith.agent=on`) boots the same initramfs
 * with a second archive appended (the kernel unpacks both): the REAL qemu-ga of Debian's
 * qemu-guest-agent package as installed on this machine, every library `ldd` lists and the
 * dynamic loader, and the virtio_console module. /init then runs qemu-ga on the virtio-serial
 * port named org.qemu.guest_agent.0 (the VM needs `guestAgent: true`), and with `zenith.fs=vdX`
 * mounts that disk's ext4 file system (ext4 is built into the cloud kernel) at /mnt and writes
 * files to it without end, so a backup has a file system to freeze. The plain guest stays as
 * small as it was: only tests that ask for the agent build and boot the larger initramfs.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  realpathSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface GuestImage {
  /** Absolute path of the kernel (bzImage). */
  kernel: string;
  /** Absolute path of the gzip'd newc initramfs. */
  initrd: string;
}

/** The serial line the guest prints once /init runs. */
export const GUEST_READY_LINE = 'ZENITH-GUEST READY';

/**
 * Kernel command line for the guest: serial console, quiet boot (serial output is slow under TCG),
 * and no_timer_check: on a starved host the emulated timer misses the kernel's IO-APIC check, which
 * then panics at boot (seen under heavy load).
 */
export const GUEST_KERNEL_APPEND = 'console=ttyS0 quiet panic=-1 no_timer_check';

/** The line the guest prints once its NICs are up (with `net: true`). */
export const GUEST_NET_UP_LINE = 'ZENITH-GUEST NET UP';

/**
 * The command line for a guest that keeps dirtying `dirtyMiB` of its memory, brings its NIC up,
 * crashes its kernel after `panicAfterTicks` ticks (then reboots, as `panic=-1` says; see /init —
 * unless `pvpanic` loads the pvpanic driver, which tells QEMU, and QEMU powers the VM off), or
 * powers itself off after `poweroffAfterTicks` ticks (`poweroff -f`), or writes the numbered
 * pattern to its first disk (`pattern`, see `PATTERN_BLOCK_BYTES`).
 */
export function guestAppend(
  options: {
    dirtyMiB?: number;
    net?: boolean;
    panicAfterTicks?: number;
    pvpanic?: boolean;
    poweroffAfterTicks?: number;
    pattern?: boolean;
    /** Run qemu-ga (needs ensureAgentGuestImage's initrd and a VM with a guest agent channel). */
    agent?: boolean;
    /** Mount this disk's ext4 file system (e.g. `vda`) at /mnt and write files to it without end. */
    fs?: string;
  } = {},
): string {
  return [
    GUEST_KERNEL_APPEND,
    ...(options.dirtyMiB ? [`zenith.dirty=${options.dirtyMiB}`] : []),
    ...(options.net ? ['zenith.net=up'] : []),
    ...(options.pvpanic ? ['zenith.pvpanic=on'] : []),
    ...(options.pattern ? ['zenith.pattern=on'] : []),
    ...(options.agent ? ['zenith.agent=on'] : []),
    ...(options.fs ? [`zenith.fs=${options.fs}`] : []),
    ...(options.panicAfterTicks !== undefined
      ? [`zenith.panic-after=${options.panicAfterTicks}`]
      : []),
    ...(options.poweroffAfterTicks !== undefined
      ? [`zenith.poweroff-after=${options.poweroffAfterTicks}`]
      : []),
  ].join(' ');
}

/**
 * With `pattern`, the guest writes its first disk (/dev/vda) a block at a time from the start, in
 * order, each made durable (fsync) before the next: block N holds the line `zenith-pattern N` and
 * zeroes. It prints `pattern N` on the console after every 16th block (N blocks written so far) and
 * stops at the disk's end. Any point-in-time copy of the disk holds exactly a prefix of the blocks.
 */
export const PATTERN_BLOCK_BYTES = 4096;

/** The virtio block driver (and what it depends on), for `zenith.pattern=on`. */
const DISK_MODULES = ['virtio_pci', 'virtio_blk'];

/** The line the guest prints once qemu-ga runs (with `agent: true`). */
export const GUEST_AGENT_LINE = 'ZENITH-GUEST AGENT STARTED';
/** The line the guest prints once `fs`'s file system is mounted; then `fs N` every 4 files written. */
export const GUEST_FS_LINE = 'ZENITH-GUEST FS MOUNTED';

/** The virtio-serial driver qemu-ga's port needs (with `zenith.agent=on`). */
const AGENT_MODULES = ['virtio_console'];
const AGENT_BINARY = '/usr/sbin/qemu-ga';

/** The virtio PCI transport and the virtio-net driver; what they depend on is found in the modules themselves. */
const NET_MODULES = ['virtio_pci', 'virtio_net'];
/** The driver of QEMU's ISA pvpanic device (found by ACPI), with `zenith.pvpanic=on`. */
const PANIC_MODULES = ['pvpanic_mmio'];

const KERNEL_META_PACKAGE = 'linux-image-cloud-amd64';
const BUSYBOX_PACKAGE = 'busybox-static';

const INIT_SCRIPT = `#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
exec >/dev/ttyS0 2>&1 </dev/null
echo "${GUEST_READY_LINE}"
# zenith.dirty=N on the kernel command line: rewrite N MiB of memory with random bytes, forever
# (a memory-dirtying workload for migration benchmarks).
for arg in $(cat /proc/cmdline); do
  case "$arg" in
    zenith.dirty=*) dirty="\${arg#zenith.dirty=}" ;;
    zenith.net=up) net=up ;;
    zenith.panic-after=*) panic_after="\${arg#zenith.panic-after=}" ;;
    zenith.pvpanic=on) pvpanic=on ;;
    zenith.poweroff-after=*) poweroff_after="\${arg#zenith.poweroff-after=}" ;;
    zenith.pattern=on) pattern=on ;;
    zenith.agent=on) agent=on ;;
    zenith.fs=*) fs="\${arg#zenith.fs=}" ;;
  esac
done
# zenith.net=up: load the virtio-net driver (modules absent from the image are built in) and bring every NIC up.
if [ -n "$net" ]; then
  for module in $(cat /lib/modules/load-order); do insmod "/lib/modules/$module"; done
  up=0
  for dev in /sys/class/net/eth*; do ip link set "\${dev##*/}" up && up=$((up + 1)); done
  if [ "$up" -gt 0 ]; then echo "${GUEST_NET_UP_LINE}"; else echo "ZENITH-GUEST NET FAILED"; fi
fi
# zenith.pvpanic=on: load the pvpanic driver, so that a kernel panic is told to QEMU.
if [ -n "$pvpanic" ]; then
  for module in $(cat /lib/modules/panic-load-order); do insmod "/lib/modules/$module"; done
fi
# zenith.pattern=on: write the numbered pattern to /dev/vda, a block at a time, each made durable
# before the next (see PATTERN_BLOCK_BYTES).
if [ -n "$pattern" ]; then
  for module in $(cat /lib/modules/disk-load-order); do insmod "/lib/modules/$module" 2>/dev/null; done
  (
    n=0
    blocks=$(( $(cat /sys/block/vda/size) * 512 / ${PATTERN_BLOCK_BYTES} ))
    while [ "$n" -lt "$blocks" ]; do
      echo "zenith-pattern $n" | dd of=/dev/vda bs=${PATTERN_BLOCK_BYTES} seek="$n" count=1 conv=sync,notrunc,fsync 2>/dev/null || break
      n=$((n + 1))
      if [ $((n % 16)) -eq 0 ]; then echo "pattern $n"; fi
    done
    echo "pattern $n"
  ) &
fi
# zenith.fs=vdX: mount that disk's ext4 at /mnt and write files there without end (16 files of
# 64 KiB in turn, each made durable), printing "fs N" after every 4th.
if [ -n "$fs" ]; then
  for module in $(cat /lib/modules/disk-load-order); do insmod "/lib/modules/$module" 2>/dev/null; done
  mkdir -p /mnt
  if mount -t ext4 "/dev/$fs" /mnt; then
    echo "${GUEST_FS_LINE}"
    (
      n=0
      while true; do
        dd if=/dev/urandom of="/mnt/file$((n % 16))" bs=64k count=1 conv=fsync 2>/dev/null
        n=$((n + 1))
        if [ $((n % 4)) -eq 0 ]; then echo "fs $n"; fi
      done
    ) &
  else
    echo "ZENITH-GUEST FS FAILED"
  fi
fi
# zenith.agent=on: run qemu-ga (in the appended archive) on the port named org.qemu.guest_agent.0.
if [ -n "$agent" ]; then
  for module in $(cat /lib/modules/agent-load-order); do insmod "/lib/modules/$module" 2>/dev/null; done
  port=
  for tries in 1 2 3 4 5 6 7 8 9 10; do
    for p in /sys/class/virtio-ports/*; do
      if [ "$(cat "$p/name" 2>/dev/null)" = org.qemu.guest_agent.0 ]; then port="/dev/\${p##*/}"; fi
    done
    if [ -n "$port" ] && [ -e "$port" ]; then break; fi
    usleep 100000
  done
  mkdir -p /tmp /var/run
  if [ -n "$port" ]; then
    /usr/sbin/qemu-ga -m virtio-serial -p "$port" -t /tmp -l /tmp/qemu-ga.log &
    echo "${GUEST_AGENT_LINE}"
  else
    echo "ZENITH-GUEST AGENT FAILED"
  fi
fi
if [ -n "$dirty" ]; then
  (
    mkdir -p /tmp
    mount -t tmpfs -o size=$((dirty * 2 + 8))m tmpfs /tmp
    dd if=/dev/urandom of=/tmp/source bs=1M count="$dirty" 2>/dev/null
    while true; do cp /tmp/source /tmp/copy; done
  ) &
fi
i=0
while true; do
  echo "tick $i"
  # zenith.panic-after=N: crash the kernel after N ticks (a guest that resets itself).
  if [ -n "$panic_after" ] && [ "$i" -ge "$panic_after" ]; then echo c > /proc/sysrq-trigger; fi
  # zenith.poweroff-after=N: the guest powers itself off after N ticks (ACPI power-off, at once).
  if [ -n "$poweroff_after" ] && [ "$i" -ge "$poweroff_after" ]; then poweroff -f; fi
  i=$((i + 1))
  usleep 100000
done
`;

const repoRoot = resolve(import.meta.dirname, '..', '..');
const cacheDir = join(repoRoot, '.cache', 'guest');

/** A build run once per process and shared by every caller; a failed one is tried again next time. */
function builtOnce<T>(build: () => Promise<T>): () => Promise<T> {
  let building: Promise<T> | undefined;
  return () => {
    building ??= build().catch((error: unknown) => {
      building = undefined;
      throw error;
    });
    return building;
  };
}

/** Builds the guest on first use (about 27 MB of downloads) and returns its files. */
export const ensureGuestImage: () => Promise<GuestImage> = builtOnce(() => buildOnce());

async function buildOnce(): Promise<GuestImage> {
  const kernelPackage = await resolveKernelPackage();
  const { finalDir, image, built } = cacheEntry(
    kernelPackage,
    INIT_SCRIPT,
    NET_MODULES.join(),
    PANIC_MODULES.join(),
    DISK_MODULES.join(),
  );
  if (built) return image;

  for (const tool of ['cpio', 'gzip', 'dpkg', 'apt-get']) await requireTool(tool);
  mkdirSync(cacheDir, { recursive: true });
  const work = mkdtempSync(join(cacheDir, '.build-'));
  try {
    await run('apt-get', ['download', '-qq', kernelPackage, BUSYBOX_PACKAGE], { cwd: work }).catch(
      (error: Error & { stderr?: string }) => {
        throw new Error(
          `cannot download ${kernelPackage} and ${BUSYBOX_PACKAGE} with apt-get (is the network to the Debian mirror up, and did apt-get update run?): ${error.stderr ?? error.message}`,
          { cause: error },
        );
      },
    );
    const extracted = await extractDebs(work);
    const out = join(work, 'out');
    mkdirSync(out);
    const vmlinuz = readdirSync(join(extracted, 'boot')).find((f) => f.startsWith('vmlinuz-'));
    if (!vmlinuz) throw new Error(`${kernelPackage} has no boot/vmlinuz-*`);
    copyFileSync(join(extracted, 'boot', vmlinuz), join(out, 'vmlinuz'));

    const root = join(work, 'root');
    for (const dir of ['bin', 'dev', 'proc', 'sys'])
      mkdirSync(join(root, dir), { recursive: true });
    copyFileSync(join(extracted, 'bin', 'busybox'), join(root, 'bin', 'busybox'));
    copyModules(
      join(extracted, 'lib', 'modules'),
      join(root, 'lib', 'modules'),
      NET_MODULES,
      'load-order',
    );
    copyModules(
      join(extracted, 'lib', 'modules'),
      join(root, 'lib', 'modules'),
      PANIC_MODULES,
      'panic-load-order',
    );
    copyModules(
      join(extracted, 'lib', 'modules'),
      join(root, 'lib', 'modules'),
      DISK_MODULES,
      'disk-load-order',
    );
    chmodSync(join(root, 'bin', 'busybox'), 0o755);
    writeFileSync(join(root, 'init'), INIT_SCRIPT, { mode: 0o755 });
    // /dev/console lets the kernel give /init a console before devtmpfs is mounted;
    // only root may create it, and /init works without it (it reopens ttyS0 itself).
    await run('mknod', [join(root, 'dev', 'console'), 'c', '5', '1']).catch(() => undefined);
    await packInitramfs(root, join(out, 'initrd.gz'));
    publish(out, finalDir, image);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  return image;
}

/**
 * The guest with qemu-ga (see the top of this file): the same kernel, and the initramfs with a
 * second archive appended. Needs qemu-ga installed here (`apt-get install -y qemu-guest-agent`,
 * scripts/test-debs.txt). Built once into .cache/guest/<key>-agent/.
 */
export const ensureAgentGuestImage: () => Promise<GuestImage> = builtOnce(() => buildAgentOnce());

async function buildAgentOnce(): Promise<GuestImage> {
  const base = await ensureGuestImage();
  if (!existsSync(AGENT_BINARY))
    throw new Error(
      `${AGENT_BINARY} is missing; the test command installs it from scripts/test-debs.txt (apt-get install -y qemu-guest-agent)`,
    );
  // The libraries qemu-ga loads, as ldd resolves them here, and the loader itself.
  const libraries = [
    ...(await run('ldd', [AGENT_BINARY])).stdout.matchAll(/(\/\S+) \(0x[0-9a-f]+\)/g),
  ].map((match) => match[1]!);
  const binary = readFileSync(AGENT_BINARY);
  const { finalDir, image, built } = cacheEntry(
    `${basename(dirname(base.initrd))}-agent`,
    binary,
    libraries.join(),
    AGENT_MODULES.join(),
  );
  if (built) return image;

  const work = mkdtempSync(join(cacheDir, '.build-agent-'));
  try {
    const kernelPackage = await resolveKernelPackage();
    await run('apt-get', ['download', '-qq', kernelPackage], { cwd: work });
    const extracted = await extractDebs(work);
    const root = join(work, 'root');
    mkdirSync(join(root, 'usr', 'sbin'), { recursive: true });
    copyFileSync(AGENT_BINARY, join(root, 'usr', 'sbin', 'qemu-ga'));
    chmodSync(join(root, 'usr', 'sbin', 'qemu-ga'), 0o755);
    for (const library of libraries) {
      // Kept at the path the loader looks for it (the loader itself at /lib64/…).
      mkdirSync(join(root, dirname(library)), { recursive: true });
      copyFileSync(realpathSync(library), join(root, library));
    }
    copyModules(
      join(extracted, 'lib', 'modules'),
      join(root, 'lib', 'modules'),
      AGENT_MODULES,
      'agent-load-order',
    );
    const out = join(work, 'out');
    mkdirSync(out);
    const appended = join(work, 'agent.cpio.gz');
    await packInitramfs(root, appended);
    // Linux unpacks concatenated archives in turn: the base guest, then qemu-ga over it.
    writeFileSync(
      join(out, 'initrd.gz'),
      Buffer.concat([readFileSync(base.initrd), readFileSync(appended)]),
    );
    copyFileSync(base.kernel, join(out, 'vmlinuz'));
    publish(out, finalDir, image);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  return image;
}

/**
 * A build's place in the cache: `.cache/guest/<name>-<digest of its inputs>/`, its files, and
 * whether they are there already.
 */
function cacheEntry(name: string, ...inputs: Array<string | Buffer>) {
  const hash = createHash('sha256');
  for (const input of inputs) hash.update(input);
  const finalDir = join(cacheDir, `${name}-${hash.digest('hex').slice(0, 12)}`);
  const image: GuestImage = {
    kernel: join(finalDir, 'vmlinuz'),
    initrd: join(finalDir, 'initrd.gz'),
  };
  return { finalDir, image, built: existsSync(image.kernel) && existsSync(image.initrd) };
}

/** Unpacks every .deb downloaded into `work` into one directory, and answers it. */
async function extractDebs(work: string): Promise<string> {
  const extracted = join(work, 'extracted');
  for (const deb of readdirSync(work).filter((f) => f.endsWith('.deb')))
    await run('dpkg', ['-x', join(work, deb), extracted]);
  return extracted;
}

/** Writes the tree under `root` as a gzipped newc cpio archive (an initramfs) to `file`. */
async function packInitramfs(root: string, file: string): Promise<void> {
  await run('sh', ['-c', 'find . | cpio -o -H newc --quiet | gzip -1 > "$0"', file], {
    cwd: root,
  });
}

/** Moves a finished build into the cache, unless another process finished the same one first. */
function publish(out: string, finalDir: string, image: GuestImage): void {
  try {
    renameSync(out, finalDir);
  } catch (error) {
    // Another process finished first: its files are identical, keep them.
    if (!existsSync(image.initrd)) throw error;
  }
}

/**
 * Copies the modules `names` and their dependencies (each module's `depends=`
 * in its .modinfo) into `target`, with the file `listName` listing them
 * dependencies first. A module the kernel has built in is not found and not
 * needed. Only uncompressed modules: busybox's insmod reads nothing else.
 */
function copyModules(
  modulesDir: string,
  target: string,
  names: readonly string[],
  listName: string,
): void {
  const paths = new Map<string, string>();
  const walk = (dir: string) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      if (entry.isDirectory()) walk(join(dir, entry.name));
      else if (entry.name.endsWith('.ko'))
        paths.set(entry.name.slice(0, -3).replaceAll('-', '_'), join(dir, entry.name));
    }
  };
  if (existsSync(modulesDir)) walk(modulesDir);
  mkdirSync(target, { recursive: true });
  const order: string[] = [];
  const add = (name: string) => {
    const path = paths.get(name);
    if (!path || order.includes(`${name}.ko`)) return;
    const depends = /depends=([^\0]*)\0/.exec(readFileSync(path, 'latin1'))?.[1] ?? '';
    for (const dependency of depends.split(',').filter(Boolean)) add(dependency);
    copyFileSync(path, join(target, `${name}.ko`));
    order.push(`${name}.ko`);
  };
  for (const name of names) add(name);
  writeFileSync(join(target, listName), `${order.join('\n')}\n`);
}

async function resolveKernelPackage(): Promise<string> {
  let output: string;
  try {
    output = (await run('apt-cache', ['depends', KERNEL_META_PACKAGE])).stdout;
  } catch (error) {
    throw new Error(
      `apt-cache depends ${KERNEL_META_PACKAGE} failed (run apt-get update first): ${String(error)}`,
      { cause: error },
    );
  }
  const match = /Depends:\s+(linux-image-\S+-cloud-amd64)/.exec(output);
  if (!match?.[1]) {
    throw new Error(`cannot resolve the kernel package behind ${KERNEL_META_PACKAGE}: ${output}`);
  }
  return match[1];
}

async function requireTool(tool: string): Promise<void> {
  try {
    await run('sh', ['-c', `command -v ${tool}`]);
  } catch {
    throw new Error(
      `${tool} is missing; the test command installs it from scripts/test-debs.txt (apt-get install -y ${tool})`,
    );
  }
}
