/**
 * The output of a zenith process a test started (`zenith serve`, `zenith agent`, a `zenith`
 * command), watched for ZEN_UNHANDLED_REJECTION: the product reports a promise rejection nothing
 * handled under that code and exits (src/core/unhandled-rejections.ts). The test that ends such a
 * process fails there (check() throws, naming the process and showing its output); if no test
 * ends it, the test process fails when it exits, with the same message on stderr.
 */
import type { ChildProcess } from 'node:child_process';
import { unhandledRejectionCode } from '../core/unhandled-rejections.js';

/** The product's two forms: a pino line (serve, agent) and the command's stderr line. */
const reported = new RegExp(
  `"code":"${unhandledRejectionCode}"|zenith: ${unhandledRejectionCode}:`,
);

/** Processes that reported one and whose test has not been failed for it yet. */
const pending = new Set<ProcessOutput>();
let exitHooked = false;

function failOnExit(): void {
  if (exitHooked) return;
  exitHooked = true;
  process.once('exit', () => {
    for (const output of pending) process.stderr.write(`\n${output.failure()}\n`);
    if (pending.size > 0) process.exitCode = 1;
  });
}

export class ProcessOutput {
  #text = '';
  #rejected = false;
  /** Resolves when the process has exited and all its output is read. */
  readonly closed: Promise<void>;

  constructor(
    /** How the failure names the process, e.g. `zenith agent (host-1)`. */
    readonly name: string,
    child: ChildProcess,
  ) {
    const take = (chunk: Buffer) => {
      const text = chunk.toString();
      this.#text += text;
      // Only the tail can hold a new match: a line may have been cut between chunks.
      if (!this.#rejected && reported.test(this.#text.slice(-(text.length + 200)))) {
        this.#rejected = true;
        pending.add(this);
        failOnExit();
      }
    };
    child.stdout?.on('data', take);
    child.stderr?.on('data', take);
    this.closed = new Promise((resolve) => child.once('close', () => resolve()));
  }

  /** Everything the process wrote so far, stdout and stderr interleaved as they arrived. */
  get text(): string {
    return this.#text;
  }

  /** Whether the process reported an unhandled rejection. */
  get rejected(): boolean {
    return this.#rejected;
  }

  failure(): string {
    return `${this.name} reported an unhandled promise rejection (${unhandledRejectionCode}); its output:\n${this.#text.slice(-20_000)}`;
  }

  /** The error to fail a test with when the process reported an unhandled rejection; that test then owns it. */
  error(): Error | undefined {
    if (!this.#rejected) return undefined;
    pending.delete(this);
    return new Error(this.failure());
  }

  /** Throws when the process reported an unhandled rejection: the test calling it fails. */
  check(): void {
    const error = this.error();
    if (error) throw error;
  }
}
