/**
 * Watching a guest's serial console for a line that says it is up (a restore test): the bytes as
 * they come, kept to the last 64 KiB, matched line by line against a regular expression, until
 * it matches, the time is up or the task is cancelled. The stream is always closed.
 */
import type { Duplex } from 'node:stream';

const keptBytes = 64 * 1024;

export interface ConsoleWatch {
  matched: boolean;
  /** The line that matched. */
  line: string | null;
  /** The console's last output (up to 500 characters), for a report when it did not match. */
  tail: string;
}

/**
 * Watches the console of a VM started with its guest held while `letRun` lets it run, so that
 * nothing it prints is missed; a `letRun` that fails ends the watch and is thrown.
 */
export async function watchFromTheStart(
  stream: Duplex,
  marker: RegExp,
  timeoutMs: number,
  letRun: () => Promise<void>,
  signal?: AbortSignal,
): Promise<ConsoleWatch> {
  const watching = watchConsole(stream, marker, timeoutMs, signal);
  try {
    await letRun();
  } catch (error) {
    stream.destroy();
    await watching;
    throw error;
  }
  return watching;
}

export function watchConsole(
  stream: Duplex,
  marker: RegExp,
  timeoutMs: number,
  signal?: AbortSignal,
): Promise<ConsoleWatch> {
  return new Promise((resolve) => {
    let text = '';
    let settled = false;
    const finish = (matched: boolean, line: string | null) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      stream.destroy();
      resolve({ matched, line, tail: text.slice(-500) });
    };
    const onAbort = () => finish(false, null);
    const timer = setTimeout(() => finish(false, null), timeoutMs);
    signal?.addEventListener('abort', onAbort, { once: true });
    stream.on('data', (chunk: Buffer) => {
      text = (text + chunk.toString('latin1')).slice(-keptBytes);
      // Carriage returns and escape sequences aside, a prompt may end a line not yet ended.
      const lines = text.replace(/\r/g, '').split('\n');
      const hit = lines.find((line) => marker.test(line));
      if (hit !== undefined) finish(true, hit.trim());
    });
    stream.on('error', () => finish(false, null));
    stream.on('close', () => finish(false, null));
  });
}
