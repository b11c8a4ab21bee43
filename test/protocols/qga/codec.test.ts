import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ZenithError } from '../../../src/core/errors.js';
import {
  QgaDecoder,
  encodeQgaCommand,
  encodeQgaSync,
  type QgaMessage,
} from '../../../src/protocols/qga/index.js';

// What qemu-ga answers: a 0xFF before the answer to guest-sync-delimited, JSON objects ended by a
// newline, and strings with braces, brackets, quotes and multi-byte UTF-8 (2, 3 and 4 bytes), so
// that some split points fall inside a string, an escape or a character.
const fixture = Buffer.concat([
  Buffer.from('{"return": {}}\n', 'utf8'),
  Buffer.of(0xff),
  Buffer.from('{"return": 1234567}\n', 'utf8'),
  Buffer.from('{"return": 2}\n', 'utf8'),
  Buffer.from('{"return": "thawed"}\n', 'utf8'),
  Buffer.from(
    '{"error": {"class": "GenericError", "desc": "failed to freeze /mnt: {\\"busy\\"} [x]"}}\n',
    'utf8',
  ),
  Buffer.from('{"return": [{"name": "vda1", "mountpoint": "/mnt ✓ 😀 é"}]}\n', 'utf8'),
]);

const expected: QgaMessage[] = [
  { kind: 'return', value: {} },
  { kind: 'delimiter' },
  { kind: 'return', value: 1234567 },
  { kind: 'return', value: 2 },
  { kind: 'return', value: 'thawed' },
  { kind: 'error', errorClass: 'GenericError', desc: 'failed to freeze /mnt: {"busy"} [x]' },
  { kind: 'return', value: [{ name: 'vda1', mountpoint: '/mnt ✓ 😀 é' }] },
];

function decodeChunks(chunks: Buffer[]): QgaMessage[] {
  const decoder = new QgaDecoder();
  const messages: QgaMessage[] = [];
  for (const chunk of chunks) {
    const result = decoder.push(chunk);
    assert.equal(result.error, undefined);
    messages.push(...result.messages);
  }
  assert.equal(decoder.bufferedBytes, 0, 'nothing left over after the last object');
  return messages;
}

test('decodes returns, errors and the sync delimiter from one buffer', () => {
  assert.deepEqual(decodeChunks([fixture]), expected);
});

test('decodes the same messages whatever byte the stream is split at', () => {
  for (let at = 0; at <= fixture.length; at++)
    assert.deepEqual(
      decodeChunks([fixture.subarray(0, at), fixture.subarray(at)]),
      expected,
      `split at ${at}`,
    );
});

test('decodes the same messages fed one byte at a time', () => {
  const bytes = [...fixture].map((byte) => Buffer.of(byte));
  assert.deepEqual(decodeChunks(bytes), expected);
});

test('a delimiter inside a cut answer drops that answer; text between objects is skipped', () => {
  const stream = Buffer.concat([
    Buffer.from('rn": 5}\n  ', 'utf8'), // the tail of an answer sent before this connection
    Buffer.from('{"return": {"cut', 'utf8'),
    Buffer.of(0xff),
    Buffer.from('{"return": 77}\n', 'utf8'),
  ]);
  for (let at = 0; at <= stream.length; at++)
    assert.deepEqual(decodeChunks([stream.subarray(0, at), stream.subarray(at)]), [
      { kind: 'delimiter' },
      { kind: 'return', value: 77 },
    ]);
});

test('invalid JSON, a non-answer object and an oversized answer are protocol errors, and stick', () => {
  for (const bad of ['{"return": nope}\n', '{"hello": 1}\n', '{"error": {"class": 1}}\n']) {
    const decoder = new QgaDecoder();
    const result = decoder.push(Buffer.from(bad, 'utf8'));
    assert.ok(result.error instanceof ZenithError);
    assert.equal(result.error.code, 'QGA_PROTOCOL_ERROR', bad);
    const after = decoder.push(Buffer.from('{"return": 1}\n'));
    assert.deepEqual(after.messages, []);
    assert.equal(after.error?.code, 'QGA_PROTOCOL_ERROR');
  }
  const small = new QgaDecoder({ maxMessageBytes: 16 });
  const result = small.push(Buffer.from('{"return": "a long string"}'));
  assert.equal(result.error?.code, 'QGA_PROTOCOL_ERROR');
  assert.equal(result.error?.details.reason, 'answer-too-long');
});

test('encodes commands as JSON lines and the sync as 0xFF then guest-sync-delimited', () => {
  assert.equal(
    encodeQgaCommand({ execute: 'guest-ping' }).toString('utf8'),
    '{"execute":"guest-ping"}\n',
  );
  const sync = encodeQgaSync(42);
  assert.equal(sync[0], 0xff);
  assert.deepEqual(JSON.parse(sync.subarray(1).toString('utf8')), {
    execute: 'guest-sync-delimited',
    arguments: { id: 42 },
  });
});
