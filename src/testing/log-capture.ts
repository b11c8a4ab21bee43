/** A logger configured as the server's (redaction included) whose lines a test can read back. */
import { Writable } from 'node:stream';
import { createLogger, type Logger } from '../core/logger.js';

export interface CapturedLogs {
  logger: Logger;
  /** Every line written so far, parsed. */
  lines(): Array<Record<string, unknown>>;
  /** Every line as written, for searching the raw text. */
  text(): string;
}

export function captureLogs(level = 'info'): CapturedLogs {
  const written: string[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _encoding, done) {
      written.push(chunk.toString('utf8'));
      done();
    },
  });
  return {
    logger: createLogger({ level, destination }),
    lines: () =>
      written
        .join('')
        .split('\n')
        .filter((line) => line !== '')
        .map((line) => JSON.parse(line) as Record<string, unknown>),
    text: () => written.join(''),
  };
}
