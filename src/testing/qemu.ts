/**
 * A real QEMU process for tests, always TCG (KVM hangs on the test machines, see
 * FACTS.md), with a QMP unix socket and the tiny test guest on a serial port.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { setTimeout as delay } from 'node:timers/promises';
import { ensureGuestImage, GUEST_KERNEL_APPEND } from './guest-image.js';

export const QEMU_BINARY = 'qemu-system-x86_64';

export interface TestQemuOptions {
  /** Path of the QMP unix socket QEMU listens on. */
  qmpSocket: string;
  /** Guest serial console written to this file. */
  serialFile?: string;
  /** Or served on this unix socket (QEMU listens, does not wait for a client). */
  serialSocket?: string;
  /** Guest memory; default 128. */
  memoryMiB?: number;
  /** Start as a migration destination listening on 127.0.0.1:PORT. */
  incomingPort?: number;
  /** Boot the tiny test guest (default); false runs an empty machine (firmware only). */
  guest?: boolean;
  /** More QEMU arguments (drives, devices), appended last. */
  extraArgs?: string[];
}

export interface TestQemu {
  pid: number;
  process: ChildProcess;
  /** Resolves with the exit code (null when killed by a signal); keeps the test process alive meanwhile. */
  waitForExit(): Promise<number | null>;
  /** Everything QEMU wrote to stderr so far. */
  stderr(): string;
  /** SIGTERM, then SIGKILL after 5 s; removes the QMP socket. Idempotent. */
  stop(): Promise<void>;
}

/** Starts QEMU and resolves once its QMP socket exists. */
export async function startTestQemu(options: TestQemuOptions): Promise<TestQemu> {
  const args = [
    '-accel',
    'tcg',
    '-nodefaults',
    '-no-user-config',
    '-display',
    'none',
    '-no-reboot',
    '-m',
    String(options.memoryMiB ?? 128),
    '-qmp',
    `unix:${options.qmpSocket},server=on,wait=off`,
  ];
  if (options.serialFile) args.push('-serial', `file:${options.serialFile}`);
  else if (options.serialSocket)
    args.push('-serial', `unix:${options.serialSocket},server=on,wait=off`);
  if (options.guest !== false) {
    const image = await ensureGuestImage();
    args.push('-kernel', image.kernel, '-initrd', image.initrd, '-append', GUEST_KERNEL_APPEND);
  }
  if (options.incomingPort !== undefined)
    args.push('-incoming', `tcp:127.0.0.1:${options.incomingPort}`);

  if (options.extraArgs) args.push(...options.extraArgs);
  rmSync(options.qmpSocket, { force: true });
  const child = spawn(QEMU_BINARY, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString('utf8');
  });
  let exitCode: number | null | undefined;
  const exited = new Promise<number | null>((resolve) => {
    child.once('exit', (code) => {
      exitCode = code;
      resolve(code);
    });
    child.once('error', (error: NodeJS.ErrnoException) => {
      stderr +=
        error.code === 'ENOENT'
          ? `${QEMU_BINARY} is not installed: the test command installs the Debian package qemu-system-x86`
          : String(error);
      exitCode = null;
      resolve(null);
    });
  });

  // QEMU must neither keep a finished (or failed) test process alive nor outlive it:
  // the child does not hold the event loop, and dies with the test process.
  child.unref();
  (child.stderr as { unref?: () => void } | null)?.unref?.();
  const killOnExit = () => child.kill('SIGKILL');
  process.once('exit', killOnExit);
  const forget = () => process.off('exit', killOnExit);
  exited.then(forget, forget);
  const waitForExit = async () => {
    const keepAlive = setInterval(() => {}, 1_000);
    try {
      return await exited;
    } finally {
      clearInterval(keepAlive);
    }
  };

  const stop = async () => {
    if (exitCode === undefined) {
      child.kill('SIGTERM');
      const killer = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await waitForExit();
      clearTimeout(killer);
    }
    rmSync(options.qmpSocket, { force: true });
    if (options.serialSocket) rmSync(options.serialSocket, { force: true });
  };

  const deadline = Date.now() + 15_000;
  const sockets = [options.qmpSocket, ...(options.serialSocket ? [options.serialSocket] : [])];
  while (!sockets.every(isListening)) {
    if (exitCode !== undefined) throw new Error(`QEMU exited before opening QMP: ${stderr.trim()}`);
    if (Date.now() > deadline) {
      await stop();
      throw new Error(
        `QEMU did not listen on ${sockets.join(' and ')} within 15 s: ${stderr.trim()}`,
      );
    }
    await delay(10);
  }
  return { pid: child.pid ?? 0, process: child, waitForExit, stderr: () => stderr, stop };
}

/**
 * True once a unix socket at `path` is listening. QEMU binds (the file appears)
 * before it listens, and a connect in between is refused; probing with a
 * connect would take QMP's only client slot, so read the kernel's table.
 */
function isListening(path: string): boolean {
  if (!existsSync(path)) return false;
  const listeningFlag = 0x10000; // __SO_ACCEPTCON
  return readFileSync('/proc/net/unix', 'utf8')
    .split('\n')
    .some((line) => {
      const fields = line.trim().split(/\s+/);
      return fields[7] === path && (parseInt(fields[3] ?? '0', 16) & listeningFlag) !== 0;
    });
}

/** Polls a serial log file until `pattern` matches its content; returns the content. */
export async function waitForSerial(
  file: string,
  pattern: RegExp,
  timeoutMs = 30_000,
): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const text = existsSync(file) ? readFileSync(file, 'utf8') : '';
    if (pattern.test(text)) return text;
    if (Date.now() > deadline) {
      throw new Error(
        `serial ${file} did not show ${String(pattern)} within ${timeoutMs} ms; it holds:\n${text.slice(-2000)}`,
      );
    }
    await delay(20);
  }
}

/** The highest `tick N` the guest printed in this serial text, or -1. */
export function lastTick(serialText: string): number {
  let last = -1;
  for (const match of serialText.matchAll(/^tick (\d+)\r?$/gm))
    last = Math.max(last, Number(match[1]));
  return last;
}
