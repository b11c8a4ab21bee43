/** For scripts/test: `start` prints shell exports for one shared test server; `stop DIR` stops it. */
import { startPostgresServer, stopPostgresAt } from './postgres.js';

const [command, dir] = process.argv.slice(2);
if (command === 'start') {
  const server = await startPostgresServer();
  process.stdout.write(
    `export ZENITH_TEST_PG_URL='${server.url}' ZENITH_TEST_PG_DIR='${server.dir}'\n`,
  );
} else if (command === 'stop' && dir) {
  stopPostgresAt(dir);
} else {
  process.stderr.write('usage: postgres-cli start | stop DIR\n');
  process.exit(2);
}
