/**
 * What a zenith process does with a promise rejection nobody handled. Such a rejection is a bug:
 * something failed and no caller was waiting for it, so whatever it held (a lock, a half-made
 * change) may be held for good. The process does not carry on in that state: it reports the
 * rejection once, under the stable code ZEN_UNHANDLED_REJECTION, and exits with 70 (EX_SOFTWARE)
 * for its supervisor to restart it (tasks are recovered at start, VMs outlive an agent). The code
 * is what tests look for in the output of the processes they start (src/testing).
 * See docs/decisions/0029-unhandled-rejections.md.
 */
import type { ErrorCode } from './errors.js';
import type { Logger } from './logger.js';

export const unhandledRejectionCode = 'ZEN_UNHANDLED_REJECTION' satisfies ErrorCode;
/** EX_SOFTWARE of sysexits.h: an internal software error. */
export const unhandledRejectionExitCode = 70;

type Report = (reason: unknown) => void;

const describe = (reason: unknown): string =>
  reason instanceof Error ? (reason.stack ?? reason.message) : String(reason);

/** Until a command has its logger: one line on stderr. */
let report: Report = (reason) =>
  process.stderr.write(`zenith: ${unhandledRejectionCode}: ${describe(reason)}\n`);
let installed = false;

function exitOn(reason: unknown): void {
  try {
    report(reason);
  } catch {
    process.stderr.write(`zenith: ${unhandledRejectionCode}: ${describe(reason)}\n`);
  }
  // pino flushes what it holds on exit.
  process.exit(unhandledRejectionExitCode);
}

/** Installs the process's one handler (at the start of the zenith command); idempotent. */
export function exitOnUnhandledRejection(): void {
  if (installed) return;
  installed = true;
  process.on('unhandledRejection', exitOn);
}

/** From now on the rejection is reported through this logger (zenith serve, zenith agent). */
export function reportUnhandledRejectionsTo(logger: Logger): void {
  exitOnUnhandledRejection();
  report = (reason) =>
    logger.fatal(
      { code: unhandledRejectionCode, err: reason },
      'a promise was rejected and nothing handled it (a bug): the process exits',
    );
}
