import assert from 'node:assert/strict';
import { test } from 'node:test';
import { maxRedactedDepth, tooDeep, withoutSecrets } from '../../src/core/redact.js';

test('secrets are redacted at any depth, and everything else is copied in its order', () => {
  const value = { a: 1, password: 'x', b: { token: 'y', c: [1, { secret: 2, d: [] }] }, e: null };
  assert.deepEqual(withoutSecrets(value), {
    a: 1,
    password: '[redacted]',
    b: { token: '[redacted]', c: [1, { secret: '[redacted]', d: [] }] },
    e: null,
  });
  assert.deepEqual(Object.keys(withoutSecrets(value) as object), ['a', 'password', 'b', 'e']);
  // A key named __proto__ (JSON.parse makes one) stays a key.
  const proto = withoutSecrets(JSON.parse('{"__proto__": {"apiKey": "k"}}')) as object;
  assert.equal(JSON.stringify(proto), '{"__proto__":{"apiKey":"[redacted]"}}');
});

test('no nesting overflows the stack: past the bound a value is replaced, so the copy serializes', () => {
  let deep: unknown = { password: 'at the bottom' };
  for (let i = 0; i < 200_000; i++) deep = [deep];
  const copy = withoutSecrets({ body: deep });
  const text = JSON.stringify(copy);
  assert.ok(text.includes(JSON.stringify(tooDeep)));
  assert.ok(!text.includes('at the bottom'));
  let level = 0;
  for (let cursor: unknown = (copy as { body: unknown }).body; Array.isArray(cursor); level++)
    cursor = cursor[0];
  assert.equal(level, maxRedactedDepth - 1);
});
