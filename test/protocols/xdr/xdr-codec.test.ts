import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ZenithError } from '../../../src/core/errors.js';
import { XdrReader } from '../../../src/protocols/xdr/xdr-reader.js';
import {
  decodeXdr,
  encodeXdr,
  xdrArray,
  xdrBool,
  xdrCharArrayString,
  xdrDouble,
  xdrEnum,
  xdrFixedArray,
  xdrFixedOpaque,
  xdrHyper,
  xdrInt,
  xdrOpaque,
  xdrOptional,
  xdrString,
  xdrStruct,
  xdrUhyper,
  xdrUhyperNumber,
  xdrUint,
  xdrUnion,
  type XdrType,
} from '../../../src/protocols/xdr/xdr-types.js';

function hex(bytes: Buffer): string {
  return bytes.toString('hex');
}

function assertCode(fn: () => unknown, code: string): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(error instanceof ZenithError, `expected a ZenithError, got ${String(error)}`);
    assert.equal(error.code, code);
    return true;
  });
}

test('integers are 4 or 8 bytes big-endian, signed and unsigned, with their full ranges', () => {
  assert.equal(hex(encodeXdr(xdrInt, -2)), 'fffffffe');
  assert.equal(hex(encodeXdr(xdrUint, 0xdeadbeef)), 'deadbeef');
  assert.equal(hex(encodeXdr(xdrHyper, -1n)), 'ffffffffffffffff');
  assert.equal(hex(encodeXdr(xdrUhyper, 1n << 40n)), '0000010000000000');
  assert.equal(decodeXdr(xdrInt, encodeXdr(xdrInt, -0x80000000)), -0x80000000);
  assert.equal(decodeXdr(xdrUint, encodeXdr(xdrUint, 0xffffffff)), 0xffffffff);
  assert.equal(decodeXdr(xdrUhyper, encodeXdr(xdrUhyper, (1n << 64n) - 1n)), (1n << 64n) - 1n);
  assert.equal(
    decodeXdr(xdrUhyperNumber, encodeXdr(xdrUhyperNumber, 8 * 1024 ** 3)),
    8 * 1024 ** 3,
  );
});

test('values out of range are refused when encoding, with XDR_ENCODE_ERROR', () => {
  assertCode(() => encodeXdr(xdrInt, 0x80000000), 'XDR_ENCODE_ERROR');
  assertCode(() => encodeXdr(xdrUint, -1), 'XDR_ENCODE_ERROR');
  assertCode(() => encodeXdr(xdrInt, 1.5), 'XDR_ENCODE_ERROR');
  assertCode(() => encodeXdr(xdrUhyper, -1n), 'XDR_ENCODE_ERROR');
  assertCode(() => encodeXdr(xdrString(3), 'four'), 'XDR_ENCODE_ERROR');
  assertCode(() => encodeXdr(xdrFixedOpaque(16), Buffer.alloc(15)), 'XDR_ENCODE_ERROR');
});

test('an unsigned hyper too large for a JS number is a decode error, not a rounded number', () => {
  assertCode(() => decodeXdr(xdrUhyperNumber, encodeXdr(xdrUhyper, 1n << 60n)), 'XDR_DECODE_ERROR');
});

test('bool and double round-trip; a bool other than 0 or 1 is refused', () => {
  assert.equal(hex(encodeXdr(xdrBool, true)), '00000001');
  assert.equal(decodeXdr(xdrDouble, encodeXdr(xdrDouble, 3.25)), 3.25);
  assertCode(() => decodeXdr(xdrBool, Buffer.from('00000002', 'hex')), 'XDR_DECODE_ERROR');
});

test('strings and opaque data are length-prefixed and zero-padded to 4 bytes', () => {
  assert.equal(hex(encodeXdr(xdrString(), 'abcde')), '00000005' + '6162636465000000');
  assert.equal(hex(encodeXdr(xdrOpaque(), Buffer.from([1, 2, 3, 4]))), '00000004' + '01020304');
  assert.equal(hex(encodeXdr(xdrFixedOpaque(3), Buffer.from([9, 8, 7]))), '09080700');
  assert.equal(decodeXdr(xdrString(), encodeXdr(xdrString(), 'héllo wörld')), 'héllo wörld');
});

test('a string longer than its declared maximum is refused before reading it', () => {
  const bytes = encodeXdr(xdrString(), 'a long string');
  assertCode(() => decodeXdr(xdrString(4), bytes), 'XDR_DECODE_ERROR');
});

test('non-zero padding and trailing bytes are decode errors', () => {
  assertCode(
    () => decodeXdr(xdrString(), Buffer.from('0000000161620000', 'hex')),
    'XDR_DECODE_ERROR',
  );
  assertCode(() => decodeXdr(xdrInt, Buffer.from('0000000100', 'hex')), 'XDR_DECODE_ERROR');
});

test('optional values carry a presence flag; null when absent', () => {
  const maybe = xdrOptional(xdrString());
  assert.equal(hex(encodeXdr(maybe, null)), '00000000');
  assert.equal(decodeXdr(maybe, encodeXdr(maybe, 'x')), 'x');
  assert.equal(decodeXdr(maybe, encodeXdr(maybe, null)), null);
  assertCode(() => decodeXdr(maybe, Buffer.from('00000007', 'hex')), 'XDR_DECODE_ERROR');
});

test('arrays: variable with a count and a maximum, fixed without a count', () => {
  const list = xdrArray(xdrInt, 3);
  assert.equal(hex(encodeXdr(list, [1, 2])), '00000002' + '00000001' + '00000002');
  assert.deepEqual(decodeXdr(list, encodeXdr(list, [7, 8, 9])), [7, 8, 9]);
  assertCode(() => encodeXdr(list, [1, 2, 3, 4]), 'XDR_ENCODE_ERROR');
  assertCode(() => decodeXdr(list, encodeXdr(xdrArray(xdrInt), [1, 2, 3, 4])), 'XDR_DECODE_ERROR');
  const triple = xdrFixedArray(xdrUint, 3);
  assert.equal(encodeXdr(triple, [1, 2, 3]).length, 12);
  assert.deepEqual(decodeXdr(triple, encodeXdr(triple, [1, 2, 3])), [1, 2, 3]);
});

test('a huge array count in a short input fails at once instead of allocating', () => {
  const started = process.hrtime.bigint();
  assertCode(
    () => decodeXdr(xdrArray(xdrInt), Buffer.from('7fffffff00000001', 'hex')),
    'XDR_DECODE_ERROR',
  );
  assert.ok(process.hrtime.bigint() - started < 50_000_000n);
});

test('char arrays take 4 bytes per char and read as a C string', () => {
  const model = xdrCharArrayString(8);
  const bytes = encodeXdr(model, 'x86_64');
  assert.equal(bytes.length, 32);
  assert.equal(decodeXdr(model, bytes), 'x86_64');
});

test('enums accept only their declared values', () => {
  const auth = xdrEnum({ NONE: 0, SASL: 1, POLKIT: 2 }, 'remote_auth_type');
  assert.equal(decodeXdr(auth, encodeXdr(auth, 2)), 2);
  assertCode(() => decodeXdr(auth, Buffer.from('00000009', 'hex')), 'XDR_DECODE_ERROR');
  assertCode(() => encodeXdr(auth, 5 as never), 'XDR_ENCODE_ERROR');
});

test('unions pick the arm by discriminant; an unknown discriminant is a decode error', () => {
  const value = xdrUnion({ 1: xdrInt, 7: xdrString() }, 'typed_param_value');
  const encoded = encodeXdr(value, { kind: 7, value: 'on' });
  assert.equal(hex(encoded), '00000007' + '00000002' + '6f6e0000');
  assert.deepEqual(decodeXdr(value, encoded), { kind: 7, value: 'on' });
  assertCode(() => decodeXdr(value, Buffer.from('0000000300000001', 'hex')), 'XDR_DECODE_ERROR');
});

const domain = xdrStruct(
  {
    name: xdrString(1024),
    uuid: xdrFixedOpaque(16),
    id: xdrInt,
    tags: xdrArray(xdrString(64), 8),
    parent: xdrOptional(xdrString(64)),
    memory: xdrUhyper,
  },
  'domain',
);

const sample = {
  name: 'test',
  uuid: Buffer.from('6695eb01f6a44304b0ae8f45ffdc2b4f', 'hex'),
  id: 1,
  tags: ['a', 'bb', 'ccc'],
  parent: null,
  memory: 8388608n,
};

test('structs encode their fields in declaration order and round-trip', () => {
  const bytes = encodeXdr(domain, sample);
  assert.deepEqual(decodeXdr(domain, bytes), sample);
  assert.equal(bytes.subarray(0, 8).toString('hex'), '0000000474657374');
  assertCode(() => encodeXdr(domain, { ...sample, id: undefined } as never), 'XDR_ENCODE_ERROR');
});

function assertEveryTruncationFails<T>(type: XdrType<T>, bytes: Buffer): void {
  for (let cut = 0; cut < bytes.length; cut++) {
    assert.throws(
      () => decodeXdr(type, bytes.subarray(0, cut)),
      (error: unknown) => error instanceof ZenithError && error.code === 'XDR_DECODE_ERROR',
      `truncated at ${cut} of ${bytes.length} bytes`,
    );
  }
}

test('every truncation of a struct is a coded decode error, never a RangeError', () => {
  assertEveryTruncationFails(domain, encodeXdr(domain, sample));
  const union = xdrUnion({ 3: xdrHyper, 5: xdrDouble, 7: xdrString() });
  assertEveryTruncationFails(union, encodeXdr(union, { kind: 5, value: 1.5 }));
  assertEveryTruncationFails(union, encodeXdr(union, { kind: 7, value: 'abcdef' }));
});

test('the reader reports its position and what is left', () => {
  const reader = new XdrReader(Buffer.from('00000001000000020304', 'hex'));
  assert.equal(reader.readInt(), 1);
  assert.equal(reader.offset, 4);
  assert.equal(reader.remaining, 6);
  assert.equal(reader.readUint(), 2);
  assert.equal(reader.readRest().toString('hex'), '0304');
  assert.equal(reader.remaining, 0);
});

test('the writer grows past its initial capacity without losing bytes', () => {
  const big = xdrArray(xdrUhyper);
  const values = Array.from({ length: 5000 }, (_, i) => BigInt(i) * 1_000_003n);
  assert.deepEqual(decodeXdr(big, encodeXdr(big, values)), values);
});
