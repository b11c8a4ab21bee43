import assert from 'node:assert/strict';
import { test } from 'node:test';
import { assertId, isId, newId } from '../../src/core/ids.js';
import { isZenithError } from '../../src/core/errors.js';

test('new ids carry their kind prefix and sort by creation time', () => {
  const a = newId('vm', 1_000);
  const b = newId('vm', 2_000);
  assert.match(a, /^vm_[0-9A-Z]{26}$/);
  assert.ok(a < b);
  assert.ok(isId(a, 'vm'));
  assert.ok(!isId(a, 'host'));
});

test('a malformed or wrongly prefixed id is refused with ZEN_BAD_ID', () => {
  for (const bad of [
    '',
    'vm_',
    'host_01ARZ3NDEKTSV4RRFFQ69G5FAV',
    'vm_01arz3ndektsv4rrffq69g5fav',
    'vm_../../etc',
  ]) {
    assert.throws(
      () => assertId(bad, 'vm'),
      (e) => isZenithError(e) && e.code === 'ZEN_BAD_ID',
    );
  }
});
