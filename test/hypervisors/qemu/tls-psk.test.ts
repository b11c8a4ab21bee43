/** The PSK files QEMU's tls-creds-psk reads: what is written, with which modes, and what is refused. */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { isZenithError } from '../../../src/core/errors.js';
import { checkPsk, newPskKey, writePskDir } from '../../../src/hypervisors/qemu/tls-psk.js';

const base = mkdtempSync(join(tmpdir(), 'zenith-tls-psk-'));
after(() => rmSync(base, { recursive: true, force: true }));

test('a key directory holds one identity:hexkey line, the directory 0700 and the file 0600; writing it again replaces the key', () => {
  const key = newPskKey();
  assert.match(key, /^[0-9a-f]{64}$/, '256 random bits as hex');
  assert.notEqual(newPskKey(), key);
  const dir = writePskDir(join(base, 'psk'), { identity: 'replication-r1', key });
  assert.equal(readFileSync(join(dir, 'keys.psk'), 'utf8'), `replication-r1:${key}\n`);
  assert.equal(statSync(dir).mode & 0o777, 0o700);
  assert.equal(statSync(join(dir, 'keys.psk')).mode & 0o777, 0o600);
  const next = newPskKey();
  writePskDir(dir, { identity: 'replication-r1', key: next });
  assert.equal(readFileSync(join(dir, 'keys.psk'), 'utf8'), `replication-r1:${next}\n`);
});

test('an identity QEMU’s file could not carry, or a key that is not 16 to 64 bytes of hex, is ZEN_BAD_REQUEST naming the field', () => {
  const refused = (identity: string, key: string, field: string) =>
    assert.throws(
      () => checkPsk({ identity, key }),
      (error: unknown) =>
        isZenithError(error) && error.code === 'ZEN_BAD_REQUEST' && error.details.field === field,
    );
  refused('a:b', newPskKey(), 'identity');
  refused('line\nbreak', newPskKey(), 'identity');
  refused('', newPskKey(), 'identity');
  refused('r1', 'not hex at all', 'key');
  refused('r1', 'abcd', 'key');
  refused('r1', 'a'.repeat(129), 'key');
  assert.doesNotThrow(() => checkPsk({ identity: 'r1', key: 'ab'.repeat(16) }));
});
