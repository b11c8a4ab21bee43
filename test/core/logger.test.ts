import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import { createLogger } from '../../src/core/logger.js';
import { withoutSecrets } from '../../src/core/redact.js';

test("a replication's pre-shared key is in no log line and no audit record, wherever its psk object is", () => {
  const key = 'ab'.repeat(32);
  const psk = { identity: 'replication-r1', key };
  const lines: string[] = [];
  const logger = createLogger({
    destination: new Writable({
      write(chunk: Buffer, _encoding, done) {
        lines.push(chunk.toString('utf8'));
        done();
      },
    }),
  });
  logger.info({ psk }, 'at the top');
  logger.info({ request: { directory: '/srv/r1', psk } }, 'one level down');
  assert.equal(lines.length, 2);
  for (const line of lines) {
    assert.ok(!line.includes(key), line);
    assert.ok(line.includes('[redacted]'), line);
  }
  assert.ok(lines[1]!.includes('/srv/r1'), 'the rest of the object is logged');
  assert.ok(!JSON.stringify(withoutSecrets({ target: { host: 'h', psk } })).includes(key));
});
