import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ZenithError } from '../../../src/core/errors.js';
import { QmpDecoder, encodeCommand, type QmpMessage } from '../../../src/protocols/qmp/index.js';

// What QEMU 7.2 sends, byte for byte: one JSON object per line, CRLF endings.
const greetingLine =
  '{"QMP": {"version": {"qemu": {"micro": 19, "minor": 2, "major": 7}, "package": "Debian 1:7.2+dfsg-7+deb12u18"}, "capabilities": ["oob"]}}\r\n';
const returnLine =
  '{"return": {"status": "running", "singlestep": false, "running": true}, "id": "z1"}\r\n';
const errorLine =
  '{"id": "z2", "error": {"class": "CommandNotFound", "desc": "The command no-such-command has not been found"}}\r\n';
const eventLine =
  '{"timestamp": {"seconds": 1764021234, "microseconds": 512345}, "event": "STOP"}\r\n';
// Multi-byte UTF-8 (2, 3 and 4 bytes) inside a value, so some split points fall inside a character.
const unicodeLine = '{"return": "tête-à-tête — ✓ 😀", "id": "z3"}\r\n';

const fixture = Buffer.from(
  greetingLine + returnLine + errorLine + eventLine + unicodeLine,
  'utf8',
);

const expected: QmpMessage[] = [
  {
    kind: 'greeting',
    version: { qemu: { major: 7, minor: 2, micro: 19 }, package: 'Debian 1:7.2+dfsg-7+deb12u18' },
    capabilities: ['oob'],
  },
  { kind: 'return', value: { status: 'running', singlestep: false, running: true }, id: 'z1' },
  {
    kind: 'error',
    errorClass: 'CommandNotFound',
    desc: 'The command no-such-command has not been found',
    id: 'z2',
  },
  {
    kind: 'event',
    event: 'STOP',
    data: {},
    timestamp: { seconds: 1764021234, microseconds: 512345 },
  },
  { kind: 'return', value: 'tête-à-tête — ✓ 😀', id: 'z3' },
];

function decodeChunks(chunks: Buffer[]): QmpMessage[] {
  const decoder = new QmpDecoder();
  const messages: QmpMessage[] = [];
  for (const chunk of chunks) {
    const result = decoder.push(chunk);
    assert.equal(result.error, undefined);
    messages.push(...result.messages);
  }
  assert.equal(decoder.bufferedBytes, 0, 'nothing left over after the last newline');
  return messages;
}

test('decodes greeting, return, error, event and unicode replies from one buffer', () => {
  assert.deepEqual(decodeChunks([fixture]), expected);
});

test('decodes the same messages when the buffer is split at every byte boundary', () => {
  for (let split = 0; split <= fixture.length; split++) {
    assert.deepEqual(
      decodeChunks([fixture.subarray(0, split), fixture.subarray(split)]),
      expected,
      `split at byte ${split}`,
    );
  }
});

test('decodes the same messages when split at every pair of boundaries inside the unicode line', () => {
  const start = fixture.length - Buffer.byteLength(unicodeLine);
  for (let a = start; a <= fixture.length; a++) {
    for (let b = a; b <= fixture.length; b++) {
      const chunks = [fixture.subarray(0, a), fixture.subarray(a, b), fixture.subarray(b)];
      assert.deepEqual(decodeChunks(chunks), expected, `split at ${a} and ${b}`);
    }
  }
});

test('decodes the same messages fed one byte at a time', () => {
  const chunks = [...fixture].map((byte) => Buffer.from([byte]));
  assert.deepEqual(decodeChunks(chunks), expected);
});

test('a chunk reused by the caller after push does not corrupt a partial line', () => {
  const decoder = new QmpDecoder();
  const scratch = Buffer.from(returnLine.slice(0, 20));
  decoder.push(scratch);
  scratch.fill(0x78);
  const { messages } = decoder.push(Buffer.from(returnLine.slice(20)));
  assert.deepEqual(messages, [expected[1]]);
});

test('an event keeps its data', () => {
  const line = Buffer.from(
    '{"timestamp": {"seconds": 1, "microseconds": 2}, "event": "MIGRATION", "data": {"status": "completed"}}\n',
  );
  assert.deepEqual(new QmpDecoder().push(line).messages, [
    {
      kind: 'event',
      event: 'MIGRATION',
      data: { status: 'completed' },
      timestamp: { seconds: 1, microseconds: 2 },
    },
  ]);
});

function assertProtocolError(result: { error?: ZenithError }, reason: RegExp): void {
  assert.ok(result.error instanceof ZenithError, 'an error is reported');
  assert.equal(result.error.code, 'QMP_PROTOCOL_ERROR');
  assert.match(String(result.error.details.reason), reason);
}

test('garbage after valid messages: the valid ones are delivered, then a coded error', () => {
  const decoder = new QmpDecoder();
  const result = decoder.push(Buffer.from(`${greetingLine}this is not json\r\n${returnLine}`));
  assert.deepEqual(result.messages, [expected[0]]);
  assertProtocolError(result, /not valid JSON/);
  // The decoder stays failed: nothing after garbage can be trusted.
  const after = decoder.push(Buffer.from(returnLine));
  assert.deepEqual(after.messages, []);
  assert.equal(after.error, result.error);
});

test('a line longer than the limit fails at once, without waiting for its newline', () => {
  const decoder = new QmpDecoder({ maxLineBytes: 64 });
  assert.equal(decoder.push(Buffer.alloc(40, 0x61)).error, undefined);
  const result = decoder.push(Buffer.alloc(40, 0x61));
  assertProtocolError(result, /line-too-long/);
  assert.equal(decoder.bufferedBytes, 0, 'the oversized line is not kept in memory');
});

test('a complete line longer than the limit fails too', () => {
  const decoder = new QmpDecoder({ maxLineBytes: 16 });
  assertProtocolError(decoder.push(Buffer.from(returnLine)), /line-too-long/);
});

test('invalid UTF-8, non-objects and malformed errors are protocol errors', () => {
  assertProtocolError(
    new QmpDecoder().push(Buffer.from([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x7d, 0x0a])),
    /UTF-8/,
  );
  assertProtocolError(new QmpDecoder().push(Buffer.from('[1,2,3]\n')), /not a JSON object/);
  assertProtocolError(new QmpDecoder().push(Buffer.from('{"hello": 1}\n')), /neither/);
  assertProtocolError(
    new QmpDecoder().push(Buffer.from('{"error": {"class": "GenericError"}, "id": "z1"}\n')),
    /class or desc/,
  );
});

test('blank lines between messages are ignored', () => {
  const { messages, error } = new QmpDecoder().push(Buffer.from(`\r\n\n${returnLine}\n`));
  assert.equal(error, undefined);
  assert.deepEqual(messages, [expected[1]]);
});

test('encodes commands with arguments and ids, and out-of-band commands as exec-oob', () => {
  assert.equal(
    encodeCommand({ execute: 'query-status', id: 'z7' }).toString(),
    '{"execute":"query-status","id":"z7"}\n',
  );
  assert.equal(
    encodeCommand({
      execute: 'human-monitor-command',
      arguments: { 'command-line': 'info status ✓' },
      id: 'z8',
    }).toString('utf8'),
    '{"execute":"human-monitor-command","arguments":{"command-line":"info status ✓"},"id":"z8"}\n',
  );
  assert.equal(
    encodeCommand({ execute: 'migrate-pause', oob: true, id: 'z9' }).toString(),
    '{"exec-oob":"migrate-pause","id":"z9"}\n',
  );
});

test('an encoded command with a newline in an argument is still one line', () => {
  const bytes = encodeCommand({ execute: 'x', arguments: { text: 'a\nb' }, id: 1 });
  assert.equal(bytes.indexOf(0x0a), bytes.length - 1);
});
