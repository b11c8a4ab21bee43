/**
 * qemu-nbd (QEMU's own NBD server, Debian's qemu-utils) serving one image on a
 * unix socket: the real peer of the NBD client's tests.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { until } from './wait.js';

export interface QemuNbdOptions {
  image: string;
  socket: string;
  format?: 'qcow2' | 'raw';
  exportName?: string;
  readOnly?: boolean;
  /** A persistent dirty bitmap of the image to offer as the context qemu:dirty-bitmap:NAME. */
  bitmap?: string;
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
    '--persistent',
    '--shared=8',
  ];
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
  try {
    await until(
      () => `qemu-nbd's socket ${options.socket}`,
      async () => {
        if (exited) throw new Error(`qemu-nbd exited: ${output.trim()}`);
        return existsSync(options.socket) ? true : undefined;
      },
      20_000,
    );
  } catch (error) {
    child.kill('SIGKILL');
    throw error;
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
