/**
 * qemu-nbd (Debian's qemu-utils) serving one image no QEMU process holds, on a unix socket: how a
 * stopped VM's disk is read for a backup, and how a restored disk is written.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { ZenithError } from '../../core/errors.js';

export interface QemuNbdOptions {
  image: string;
  socket: string;
  format?: 'qcow2' | 'raw';
  exportName?: string;
  readOnly?: boolean;
  /** A persistent dirty bitmap of the image to offer as the context qemu:dirty-bitmap:NAME. */
  bitmap?: string;
  /**
   * Keep serving after the last client leaves (tests that connect several times). Otherwise it
   * ends with its one client — and so with the process that reads or writes through it, even one
   * killed with SIGKILL: no qemu-nbd outlives its user holding the image's lock.
   */
  persistent?: boolean;
}

export interface QemuNbd {
  readonly pid: number;
  /** What it wrote to stderr: the reason when it refuses to start. */
  readonly output: () => string;
  stop(signal?: NodeJS.Signals): Promise<void>;
}

export async function startQemuNbd(options: QemuNbdOptions): Promise<QemuNbd> {
  const args = [
    `--socket=${options.socket}`,
    `--format=${options.format ?? 'qcow2'}`,
    `--export-name=${options.exportName ?? 'disk0'}`,
    '--shared=8',
  ];
  if (options.persistent) args.push('--persistent');
  if (options.readOnly) args.push('--read-only');
  if (options.bitmap) args.push(`--bitmap=${options.bitmap}`);
  args.push(options.image);
  const child = spawn('qemu-nbd', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let output = '';
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  let exited = false;
  const closed = new Promise<void>((resolve) =>
    child.once('close', () => {
      exited = true;
      resolve();
    }),
  );
  child.once('error', (error) => (output += String(error)));
  // The socket file appears at bind(), a moment before qemu-nbd listens: its client retries a
  // refused connection (nbd-disk-stream.ts). A probe connection would end a one-client server.
  const deadline = Date.now() + 20_000;
  while (!existsSync(options.socket)) {
    if (exited || Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new ZenithError(
        'ZEN_DRIVER_ERROR',
        `qemu-nbd could not serve ${options.image}: ${output.trim() || 'no socket in 20 s'}`,
        { image: options.image },
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return {
    pid: child.pid!,
    output: () => output,
    async stop(signal = 'SIGTERM') {
      if (!exited) child.kill(signal);
      await closed;
    },
  };
}
