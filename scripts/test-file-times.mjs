/**
 * Loaded into each test file's process by scripts/test (`--import`): when the process exits, appends
 * its wall time — start to exit, module loading and any idle wait before the exit included — and the
 * file to .cache/test-times.txt. scripts/test sorts them into .cache/test-durations.txt, the order
 * it can run the next whole suite in (scripts/test-durations.txt). Plain JavaScript: it is loaded
 * beside tsx, not through it.
 */
import { appendFileSync } from 'node:fs';
import { join, relative } from 'node:path';

const root = join(import.meta.dirname, '..');
const file = process.argv[1];
if (file?.endsWith('.test.ts')) {
  process.once('exit', () => {
    const seconds = (performance.now() / 1000).toFixed(1);
    appendFileSync(join(root, '.cache', 'test-times.txt'), `${seconds} ${relative(root, file)}\n`);
  });
}
