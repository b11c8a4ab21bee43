/**
 * The qemu-img operations the QEMU driver needs on disk images that no QEMU
 * process has open: create, inspect, copy (with progress), and internal
 * snapshots. Failures are ZEN_DRIVER_ERROR carrying qemu-img's own message.
 */
import { execFile, spawn } from 'node:child_process';
import { chmodSync, closeSync, existsSync, openSync, rmSync } from 'node:fs';
import { promisify } from 'node:util';
import { ZenithError } from '../../core/errors.js';

const run = promisify(execFile);

export interface ImageInfo {
  format: string;
  virtualSizeBytes: number;
  backingFile: string | null;
  /** Internal snapshots (qcow2), by tag. */
  snapshots: Array<{ tag: string; vmStateBytes: number }>;
}

async function qemuImg(args: string[]): Promise<string> {
  try {
    return (await run('qemu-img', args)).stdout;
  } catch (error) {
    throw failure(args[0] ?? 'qemu-img', error);
  }
}

function failure(operation: string, error: unknown): ZenithError {
  const stderr = (error as { stderr?: string }).stderr?.trim();
  const message = stderr || (error as Error).message;
  return new ZenithError(
    'ZEN_DRIVER_ERROR',
    `qemu-img ${operation} failed: ${message}`,
    { tool: 'qemu-img', operation, message },
    { cause: error },
  );
}

/** Reads an image's header; `-U` so that an image a QEMU holds can still be looked at. */
export async function imageInfo(file: string): Promise<ImageInfo> {
  const raw = JSON.parse(await qemuImg(['info', '-U', '--output=json', file])) as {
    format: string;
    'virtual-size': number;
    'full-backing-filename'?: string;
    'backing-filename'?: string;
    snapshots?: Array<{ name: string; 'vm-state-size': number }>;
  };
  return {
    format: raw.format,
    virtualSizeBytes: raw['virtual-size'],
    backingFile: raw['full-backing-filename'] ?? raw['backing-filename'] ?? null,
    snapshots: (raw.snapshots ?? []).map((s) => ({
      tag: s.name,
      vmStateBytes: s['vm-state-size'],
    })),
  };
}

/** The images under `file` (its backing chain, nearest first), as absolute paths. */
export async function backingChain(file: string): Promise<string[]> {
  const raw = JSON.parse(
    await qemuImg(['info', '-U', '--backing-chain', '--output=json', file]),
  ) as Array<{ filename: string }>;
  return raw.slice(1).map((image) => image.filename);
}

export const IMAGE_MODE = 0o640;

/**
 * Makes the file an image will be written to, readable by its owner and group only (a guest's disk
 * is its data): qemu-img keeps the mode of a file that exists, and would otherwise take the umask's
 * 0644. An existing file is tightened the same way.
 */
export function reserveImageFile(file: string): { created: boolean } {
  const created = !existsSync(file);
  closeSync(openSync(file, 'a', IMAGE_MODE));
  chmodSync(file, IMAGE_MODE);
  return { created };
}

/** A new qcow2 image: blank of a size, or an overlay whose reads fall through to `backingFile`. */
export async function createImage(
  file: string,
  source: { sizeBytes: number } | { backingFile: string; backingFormat?: string },
): Promise<void> {
  const reserved = reserveImageFile(file);
  try {
    await qemuImg(
      'backingFile' in source
        ? [
            'create',
            '-q',
            '-f',
            'qcow2',
            '-b',
            source.backingFile,
            '-F',
            source.backingFormat ?? 'qcow2',
            file,
          ]
        : ['create', '-q', '-f', 'qcow2', file, String(source.sizeBytes)],
    );
  } catch (error) {
    // Nothing left behind that was not there before.
    if (reserved.created) rmSync(file, { force: true });
    throw error;
  }
}

/**
 * Copies an image (and whatever backs it) into a new, self-contained qcow2
 * file, reporting 0..100 as it goes. An abort kills qemu-img; the caller
 * removes the partial target.
 */
export function convertImage(
  source: string,
  target: string,
  onProgress: (percent: number) => void,
  signal: AbortSignal,
  options: { sourceFormat?: 'raw' | 'qcow2'; outOfOrder?: boolean } = {},
): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(aborted());
    reserveImageFile(target);
    // A source's format is given where it is known: a raw image is never probed (its first bytes
    // are a guest's, and could read as another format's header).
    const from = options.sourceFormat ? ['-f', options.sourceFormat] : [];
    // Into a new image that nothing backs, writes may land out of order, several at once.
    const parallel = options.outOfOrder ? ['-W', '-m', '8'] : [];
    const child = spawn(
      'qemu-img',
      ['convert', '-p', ...from, ...parallel, '-O', 'qcow2', source, target],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let stderr = '';
    let last = -1;
    child.stdout.on('data', (chunk: Buffer) => {
      // -p draws "    (12.50/100%)\r" over and over.
      for (const match of chunk.toString('latin1').matchAll(/\((\d+(?:\.\d+)?)\/100%\)/g)) {
        const percent = Math.floor(Number(match[1]));
        if (percent !== last) onProgress((last = percent));
      }
    });
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const onAbort = () => child.kill('SIGKILL');
    signal.addEventListener('abort', onAbort, { once: true });
    child.once('error', (error) => {
      signal.removeEventListener('abort', onAbort);
      reject(failure('convert', error));
    });
    child.once('close', (code) => {
      signal.removeEventListener('abort', onAbort);
      if (signal.aborted) reject(aborted());
      else if (code === 0) resolve();
      else reject(failure('convert', Object.assign(new Error(`exit code ${code}`), { stderr })));
    });
  });
}

function aborted(): ZenithError {
  return new ZenithError('ZEN_TASK_CANCELLED', 'the copy was cancelled');
}

/** Internal snapshots of an image no QEMU has open: take (-c), apply (-a) or delete (-d) `tag`. */
export async function snapshotImage(
  action: 'create' | 'apply' | 'delete',
  tag: string,
  file: string,
): Promise<void> {
  const flag = { create: '-c', apply: '-a', delete: '-d' }[action];
  await qemuImg(['snapshot', flag, tag, file]);
}

/** A persistent dirty bitmap of a qcow2 image; `inUse`: not saved cleanly (its QEMU was killed), so untrustworthy. */
export interface ImageBitmap {
  name: string;
  inUse: boolean;
}

export async function imageBitmaps(file: string): Promise<ImageBitmap[]> {
  const raw = JSON.parse(await qemuImg(['info', '-U', '--output=json', file])) as {
    'format-specific'?: { data?: { bitmaps?: Array<{ name: string; flags: string[] }> } };
  };
  return (raw['format-specific']?.data?.bitmaps ?? []).map((bitmap) => ({
    name: bitmap.name,
    inUse: bitmap.flags.includes('in-use'),
  }));
}

/** Whether the image can keep persistent dirty bitmaps: qcow2 version 3 (compat 1.1), not 2 (0.10) or raw. */
export async function keepsBitmaps(file: string): Promise<boolean> {
  const raw = JSON.parse(await qemuImg(['info', '-U', '--output=json', file])) as {
    format: string;
    'format-specific'?: { data?: { compat?: string } };
  };
  return raw.format === 'qcow2' && raw['format-specific']?.data?.compat !== '0.10';
}

/** Adds a persistent bitmap that records writes from now on (the image must not be open). */
export async function addImageBitmap(file: string, name: string): Promise<void> {
  await qemuImg(['bitmap', '--add', '--enable', file, name]);
}

export async function removeImageBitmap(file: string, name: string): Promise<void> {
  await qemuImg(['bitmap', '--remove', file, name]);
}

/**
 * Writes an overlay's data into its backing image (which then reads as the overlay did); the
 * overlay is left as it is (`-d`), for the caller to remove. Run again after a cut-off, it writes
 * the same data again. An image a QEMU holds open is refused by its lock (ZEN_DISK_IN_USE).
 */
export async function commitImage(overlay: string): Promise<void> {
  try {
    await qemuImg(['commit', '-q', '-d', '-f', 'qcow2', overlay]);
  } catch (error) {
    throw lockedOr(error, overlay);
  }
}

/**
 * Points an overlay at another backing file without copying anything (`rebase -u`): only for a
 * backing file that reads exactly as the old one did (after a commit into it).
 */
export async function pointBackingAt(overlay: string, backing: string): Promise<void> {
  try {
    await qemuImg(['rebase', '-q', '-u', '-f', 'qcow2', '-b', backing, '-F', 'qcow2', overlay]);
  } catch (error) {
    throw lockedOr(error, overlay);
  }
}

/** qemu-img's failure to take an image's lock (a QEMU has it open) as ZEN_DISK_IN_USE. */
function lockedOr(error: unknown, file: string): unknown {
  if (error instanceof ZenithError && /lock/i.test(String(error.details.message)))
    return new ZenithError('ZEN_DISK_IN_USE', `${file} is open in a running VM`, { file });
  return error;
}
