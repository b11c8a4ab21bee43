import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ManualClock } from '../../../src/core/clock.js';
import { ZenithError } from '../../../src/core/errors.js';
import {
  QmpClient,
  isQmpEvent,
  type QmpConnectionState,
} from '../../../src/protocols/qmp/index.js';
import { ScriptedPeer } from './scripted-peer.js';

async function readyClient(clock = new ManualClock(), capabilities = ['oob']) {
  const peer = new ScriptedPeer();
  const opening = QmpClient.open(peer.clientSide, { clock });
  peer.greet(capabilities);
  const negotiation = await peer.command(1);
  peer.sendJson({ return: {}, id: negotiation.id });
  const client = await opening;
  return { peer, client, clock, negotiation };
}

async function rejectsWith(promise: Promise<unknown>, code: string): Promise<ZenithError> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof ZenithError, `expected a ZenithError, got ${String(error)}`);
    assert.equal(error.code, code, error.message);
    return error;
  }
  assert.fail(`expected ${code}, but it resolved`);
}

test('negotiates after the greeting, enabling oob when offered, and moves through named states', async () => {
  const peer = new ScriptedPeer();
  const states: QmpConnectionState[] = [];
  const opening = QmpClient.open(peer.clientSide, {
    clock: new ManualClock(),
    onStateChange: (state) => states.push(state),
  });
  peer.greet(['oob']);
  const negotiation = await peer.command(1);
  assert.equal(negotiation.execute, 'qmp_capabilities');
  assert.deepEqual(negotiation.arguments, { enable: ['oob'] });
  peer.sendJson({ return: {}, id: negotiation.id });
  const client = await opening;
  assert.equal(client.state, 'ready');
  assert.deepEqual(client.capabilities, ['oob']);
  assert.equal(client.greeting.version.qemu.major, 7);
  await client.close();
  assert.equal(client.state, 'closed');
  assert.deepEqual(states, ['negotiating', 'ready', 'closed'], 'from connecting, in order');
});

test('does not ask for oob when QEMU does not offer it', async () => {
  const { client, negotiation } = await readyClient(new ManualClock(), []);
  assert.equal(negotiation.arguments, undefined);
  assert.deepEqual(client.capabilities, []);
  await client.close();
});

test('many commands in flight are matched to their replies by id, whatever the order', async () => {
  const { peer, client } = await readyClient();
  const status = client.execute('query-status');
  const version = client.execute('query-version');
  const hmp = client.execute('human-monitor-command', { 'command-line': 'info name' });
  const [s, v, h] = [await peer.command(2), await peer.command(3), await peer.command(4)];
  assert.deepEqual(h.arguments, { 'command-line': 'info name' });
  peer.sendJson({ return: 'vm-1\r\n', id: h.id });
  peer.sendJson({ return: { qemu: { major: 7, minor: 2, micro: 0 }, package: '' }, id: v.id });
  peer.sendJson({ return: { status: 'paused', running: false }, id: s.id });
  assert.deepEqual(await status, { status: 'paused', running: false });
  assert.equal((await version).qemu.minor, 2);
  assert.equal(await hmp, 'vm-1\r\n');
  await client.close();
});

test('an error reply is QMP_COMMAND_FAILED with the class, the description and the command', async () => {
  const { peer, client } = await readyClient();
  const call = client.execute('cont');
  const sent = await peer.command(2);
  peer.sendJson({ error: { class: 'GenericError', desc: 'guest is dead' }, id: sent.id });
  const error = await rejectsWith(call, 'QMP_COMMAND_FAILED');
  assert.deepEqual(error.details, {
    class: 'GenericError',
    desc: 'guest is dead',
    command: 'cont',
  });
  assert.equal(client.state, 'ready', 'a refused command leaves the connection usable');
  await client.close();
});

test('a command QEMU never answers times out on the injected clock; a late reply is ignored', async () => {
  const { peer, client, clock } = await readyClient();
  const call = client.execute('query-migrate', undefined, { timeoutMs: 5_000 });
  const sent = await peer.command(2);
  const outcome = rejectsWith(call, 'QMP_TIMEOUT');
  await clock.advance(4_999);
  await clock.advance(1);
  const error = await outcome;
  assert.equal(error.details.command, 'query-migrate');
  peer.sendJson({ return: {}, id: sent.id });
  const next = client.execute('stop');
  peer.sendJson({ return: {}, id: (await peer.command(3)).id });
  assert.deepEqual(await next, {});
  assert.equal(client.state, 'ready');
  await client.close();
});

test('when QEMU hangs up, every pending call is rejected with QMP_CLOSED and later calls too', async () => {
  const { peer, client } = await readyClient();
  const calls = [
    client.execute('query-status'),
    client.execute('query-block'),
    client.execute('quit'),
  ];
  await peer.command(4);
  peer.hangUp();
  for (const call of calls) await rejectsWith(call, 'QMP_CLOSED');
  await client.closed;
  assert.equal(client.state, 'closed');
  await rejectsWith(client.execute('query-status'), 'QMP_CLOSED');
});

test('garbage from QEMU closes the connection with QMP_PROTOCOL_ERROR and fails pending calls', async () => {
  const { peer, client } = await readyClient();
  const call = client.execute('query-status');
  await peer.command(2);
  peer.send('<html>not qmp</html>\n');
  await rejectsWith(call, 'QMP_PROTOCOL_ERROR');
  await client.closed;
  assert.equal(client.closeReason?.code, 'QMP_PROTOCOL_ERROR');
  assert.ok(peer.clientSide.destroyed, 'the stream is released');
});

test('an endless line without a newline closes the connection instead of growing forever', async () => {
  const peer = new ScriptedPeer();
  const opening = QmpClient.open(peer.clientSide, { clock: new ManualClock(), maxLineBytes: 1024 });
  peer.greet();
  await peer.command(1);
  for (let i = 0; i < 10; i++) peer.send(Buffer.alloc(200, 0x7b));
  await rejectsWith(opening, 'QMP_PROTOCOL_ERROR');
});

test('a reply to no command in flight is a protocol error', async () => {
  const { peer, client } = await readyClient();
  peer.sendJson({ return: {}, id: 'z999' });
  await client.closed;
  assert.equal(client.closeReason?.code, 'QMP_PROTOCOL_ERROR');
});

test('no greeting within the handshake limit fails with QMP_CONNECT_FAILED', async () => {
  const clock = new ManualClock();
  const peer = new ScriptedPeer();
  const opening = QmpClient.open(peer.clientSide, { clock, handshakeTimeoutMs: 2_000 });
  const outcome = rejectsWith(opening, 'QMP_CONNECT_FAILED');
  await clock.advance(2_000);
  const error = await outcome;
  assert.equal(error.details.reason, 'handshake-timeout');
  assert.ok(peer.clientSide.destroyed);
});

test('a hang-up before the greeting fails with QMP_CONNECT_FAILED', async () => {
  const peer = new ScriptedPeer();
  const opening = QmpClient.open(peer.clientSide, { clock: new ManualClock() });
  peer.hangUp();
  await rejectsWith(opening, 'QMP_CONNECT_FAILED');
});

test('events reach typed listeners, async iterators and waiters; unknown events pass through', async () => {
  const { peer, client } = await readyClient();
  const states: QmpConnectionState[] = [];
  client.onStateChange((state) => states.push(state));
  const stops: number[] = [];
  client.on('STOP', (event) => stops.push(event.timestamp.seconds));
  const iterator = client.events();
  const completed = client.waitForEvent('MIGRATION', {
    predicate: (event) => event.data.status === 'completed',
  });
  const ts = { seconds: 5, microseconds: 0 };
  peer.sendJson({ event: 'STOP', timestamp: ts });
  peer.sendJson({ event: 'MIGRATION', data: { status: 'active' }, timestamp: ts });
  peer.sendJson({ event: 'MIGRATION', data: { status: 'completed' }, timestamp: ts });
  peer.sendJson({ event: 'X_FUTURE_EVENT', data: { answer: 42 }, timestamp: ts });
  assert.equal((await completed).data.status, 'completed');
  const seen: string[] = [];
  for await (const event of iterator) {
    seen.push(event.event);
    if (isQmpEvent(event, 'MIGRATION')) assert.match(event.data.status, /active|completed/);
    if (event.event === 'X_FUTURE_EVENT') {
      assert.deepEqual(event.data, { answer: 42 });
      break;
    }
  }
  assert.deepEqual(seen, ['STOP', 'MIGRATION', 'MIGRATION', 'X_FUTURE_EVENT']);
  assert.deepEqual(stops, [5]);
  const leftOpen = client.events();
  await client.close();
  assert.deepEqual(
    await leftOpen.next(),
    { done: true, value: undefined },
    'iterators end on close',
  );
  assert.deepEqual(states, ['closed']);
});

test('waiting for an event times out on the injected clock', async () => {
  const { client, clock } = await readyClient();
  const waiting = client.waitForEvent('RESUME', { timeoutMs: 1_000 });
  const outcome = rejectsWith(waiting, 'QMP_TIMEOUT');
  await clock.advance(1_000);
  await outcome;
  await client.close();
});

test('an aborted call is rejected at once and its late reply is ignored', async () => {
  const { peer, client } = await readyClient();
  const controller = new AbortController();
  const call = client.execute('query-status', undefined, { signal: controller.signal });
  const sent = await peer.command(2);
  controller.abort();
  await rejectsWith(call, 'ZEN_TASK_CANCELLED');
  peer.sendJson({ return: {}, id: sent.id });
  const next = client.execute('cont');
  peer.sendJson({ return: {}, id: (await peer.command(3)).id });
  assert.deepEqual(await next, {});
  await client.close();
});

test('close is idempotent and releases the stream', async () => {
  const { peer, client } = await readyClient();
  await Promise.all([client.close(), client.close()]);
  assert.ok(peer.clientSide.destroyed);
  await rejectsWith(client.execute('query-status'), 'QMP_CLOSED');
});

test('a call whose signal is already aborted is rejected and never sent', async () => {
  const { peer, client } = await readyClient();
  await rejectsWith(
    client.execute('system_reset', undefined, { signal: AbortSignal.abort() }),
    'ZEN_TASK_CANCELLED',
  );
  const next = client.execute('query-status');
  const sent = await peer.command(2);
  assert.equal(sent.execute, 'query-status', 'system_reset never reached QEMU');
  peer.sendJson({ return: { status: 'running', running: true }, id: sent.id });
  assert.equal((await next).status, 'running');
  await client.close();
});
