/**
 * Runs test files in the order given, N at a time: `node --import tsx scripts/run-tests.mjs FILE…`
 * (scripts/test gives them longest first). `node --test FILE…` would sort them by name first.
 * Each file runs in a process of its own with this process's flags (--import tsx …), as under
 * `node --test`; the report is TAP on stdout (spec on a terminal), and the exit code is 1 if any
 * test or file failed. ZENITH_TEST_CONCURRENCY (default 2) and ZENITH_TEST_TIMEOUT_MS (default
 * 300000, per test) tune it. Plain JavaScript: node loads it beside tsx, not through it.
 */
import { run } from 'node:test';
import { spec, tap } from 'node:test/reporters';

const files = process.argv.slice(2);
if (files.length === 0) {
  process.stderr.write('usage: run-tests.mjs FILE…\n');
  process.exit(2);
}
const stream = run({
  files,
  concurrency: Number(process.env.ZENITH_TEST_CONCURRENCY ?? 2),
  timeout: Number(process.env.ZENITH_TEST_TIMEOUT_MS ?? 300_000),
});
stream.on('test:fail', () => {
  process.exitCode = 1;
});
stream.compose(process.stdout.isTTY ? new spec() : tap).pipe(process.stdout);
