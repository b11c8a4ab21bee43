import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatMinor } from '../../web/src/panels/money.js';

test('minor units are shown with the currency digits, from the integer, never from a float', () => {
  assert.equal(formatMinor(123456789, 2, 'EUR'), '1,234,567.89 EUR');
  assert.equal(formatMinor(5, 2, null), '0.05');
  assert.equal(formatMinor(-1000, 3, 'KWD'), '-1.000 KWD');
  assert.equal(formatMinor(42, 0, 'JPY'), '42 JPY');
  // 0.1 + 0.2 in floats is 0.30000000000000004; in minor units it is 30.
  assert.equal(formatMinor(10 + 20, 2, 'USD'), '0.30 USD');
});
