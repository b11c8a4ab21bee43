import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SseParser } from '../../web/src/api/sse-parser.js';

const stream =
  ': zenith event stream\n\n' +
  'id: 7\nevent: inventory.updated\ndata: {"seq":7}\n\n' +
  ': keep-alive\r\n\r\n' +
  'id: 8\r\nevent: task.succeeded\r\ndata: {"seq":8,\r\ndata: "more":1}\r\n\r\n';

const expected = [
  { id: '7', event: 'inventory.updated', data: '{"seq":7}' },
  { id: '8', event: 'task.succeeded', data: '{"seq":8,\n"more":1}' },
];

test('the event stream codec answers the same events wherever the bytes are split', () => {
  for (let at = 0; at <= stream.length; at++) {
    const parser = new SseParser();
    const messages = [...parser.push(stream.slice(0, at)), ...parser.push(stream.slice(at))];
    assert.deepEqual(messages, expected, `split at ${at}`);
  }
});

test('the codec keeps a half-received event until its blank line arrives', () => {
  const parser = new SseParser();
  assert.deepEqual(parser.push('id: 1\ndata: x\n'), []);
  assert.deepEqual(parser.push('\n'), [{ id: '1', event: 'message', data: 'x' }]);
});
