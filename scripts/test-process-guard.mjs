/**
 * Loaded into each test file's process by scripts/test (`--import`), beside test-file-times.mjs: a
 * promise rejection that nothing handled fails the file. node:test (Node 20) already fails the test
 * that was running, or sets the exit code when none was; this makes it so whatever the runner
 * does, and names the file and the rejection on stderr. Rejections in the zenith processes a test
 * starts are caught by src/testing/process-output.ts. Plain JavaScript: loaded beside tsx.
 */
import { relative } from 'node:path';

const file = relative(process.cwd(), process.argv[1] ?? '?');
const rejections = [];
process.on('unhandledRejection', (reason) => {
  rejections.push(reason instanceof Error ? (reason.stack ?? reason.message) : String(reason));
});
process.once('exit', () => {
  if (rejections.length === 0) return;
  process.stderr.write(
    `\n${file}: ${rejections.length} promise rejection(s) nothing handled; the first:\n${rejections[0]}\n`,
  );
  process.exitCode = 1;
});
