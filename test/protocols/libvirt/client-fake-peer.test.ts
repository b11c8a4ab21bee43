import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { pipeline } from 'node:stream/promises';
import { Writable } from 'node:stream';
import { ManualClock } from '../../../src/core/clock.js';
import { ZenithError } from '../../../src/core/errors.js';
import {
  LibvirtClient,
  type LibvirtConnectOptions,
} from '../../../src/protocols/libvirt/libvirt-client.js';
import {
  LIBVIRT_PROGRAM,
  MESSAGE_STATUS,
  MESSAGE_TYPE,
  encodePacket,
} from '../../../src/protocols/libvirt/packet.js';
import {
  connectClose,
  connectGetHostname,
} from '../../../src/protocols/libvirt/procedures/connect.js';
import {
  domainLookupByName,
  domainOpenConsole,
} from '../../../src/protocols/libvirt/procedures/domain.js';
import {
  domainEventJobCompleted,
  domainEventLifecycle,
  domainEventMigrationIteration,
  domainEventReboot,
  LIFECYCLE_EVENT,
} from '../../../src/protocols/libvirt/procedures/events.js';
import { typedParam, typedParamNumber } from '../../../src/protocols/libvirt/remote-types.js';
import { KEEPALIVE_PROC } from '../../../src/protocols/libvirt/procedures/keepalive.js';
import { storageVolDownload } from '../../../src/protocols/libvirt/procedures/storage.js';
import {
  VIR_ERR,
  isNoDomainError,
  remoteError,
} from '../../../src/protocols/libvirt/remote-error.js';
import { decodeXdr, encodeXdr } from '../../../src/protocols/xdr/xdr-types.js';
import { connectUnixSocket } from '../../../src/protocols/libvirt/transports.js';
import {
  FakeLibvirtPeer,
  type FakePeerConnection,
} from '../../../src/testing/fake-libvirt-peer.js';

let peer: FakeLibvirtPeer;
before(async () => {
  peer = await FakeLibvirtPeer.start();
});
after(async () => {
  await peer.stop();
});

const dom = { name: 'web-1', uuid: '6695eb01-f6a4-8304-79aa-97f2502e193f', id: 3 };

async function connected(
  options: LibvirtConnectOptions = {},
  handshake: Parameters<FakePeerConnection['serveHandshake']>[0] = {},
): Promise<{ client: LibvirtClient; conn: FakePeerConnection }> {
  const connecting = LibvirtClient.connect(() => connectUnixSocket(peer.path), {
    keepalive: false,
    ...options,
  });
  const conn = await peer.nextConnection();
  await conn.serveHandshake(handshake);
  return { client: await connecting, conn };
}

/** Closes from the client side with the peer answering CONNECT_CLOSE, as libvirtd does. */
async function closeBoth(client: LibvirtClient, conn: FakePeerConnection): Promise<void> {
  const closing = client.close();
  const close = await conn.nextCall();
  conn.reply(close, connectClose, undefined);
  await closing;
}

async function rejectsWith(promise: Promise<unknown>, code: string): Promise<ZenithError> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof ZenithError, `expected a ZenithError, got ${String(error)}`);
    assert.equal(error.code, code, error.message);
    return error;
  }
  assert.fail(`expected ${code}`);
}

test('the connection walks connecting → authenticating → open → closing → closed', async () => {
  const states: string[] = [];
  const connecting = LibvirtClient.connect(() => connectUnixSocket(peer.path), {
    keepalive: false,
  });
  const conn = await peer.nextConnection();
  const handshake = conn.serveHandshake();
  const client = await connecting;
  await handshake;
  client.on('state', (state: string) => states.push(state));
  assert.equal(client.state, 'open');
  const closing = client.close();
  const close = await conn.nextCall();
  assert.equal(close.header.procedure, 2, 'CONNECT_CLOSE is sent');
  conn.reply(close, connectClose, undefined);
  await closing;
  assert.deepEqual(states, ['closing', 'closed']);
  assert.equal(await client.closed, undefined);
  await rejectsWith(client.call(connectGetHostname, undefined), 'LIBVIRT_RPC_CLOSED');
});

test('many calls in flight are answered out of order and each gets its own reply', async () => {
  const { client, conn } = await connected();
  const names = Array.from({ length: 20 }, (_, i) => `vm-${i}`);
  const results = Promise.all(names.map((name) => client.call(domainLookupByName, { name })));
  const calls = [];
  for (let i = 0; i < names.length; i++) calls.push(await conn.nextCall());
  assert.equal(client.inFlight, 20);
  for (const call of calls.reverse()) {
    const { name } = decodeXdr(domainLookupByName.args, call.payload);
    conn.reply(call, domainLookupByName, { dom: { name, uuid: dom.uuid, id: call.header.serial } });
  }
  const answers = await results;
  assert.deepEqual(
    answers.map((a) => a.dom.name),
    names,
  );
  assert.equal(client.inFlight, 0);
  await closeBoth(client, conn);
});

test('events are routed by procedure, not by serial, even when the serial matches a pending call', async () => {
  const { client, conn } = await connected();
  const events: number[] = [];
  client.onEvent(domainEventLifecycle, (message) => events.push(message.msg.event));
  const pending = client.call(connectGetHostname, undefined);
  const call = await conn.nextCall();
  conn.event(
    domainEventLifecycle,
    { callbackID: 1, msg: { dom, event: LIFECYCLE_EVENT.started, detail: 0 } },
    call.header.serial,
  );
  conn.event(
    domainEventLifecycle,
    { callbackID: 1, msg: { dom, event: LIFECYCLE_EVENT.stopped, detail: 1 } },
    0,
  );
  conn.reply(call, connectGetHostname, { hostname: 'node-a' });
  assert.deepEqual(await pending, { hostname: 'node-a' });
  assert.deepEqual(events, [LIFECYCLE_EVENT.started, LIFECYCLE_EVENT.stopped]);
  await closeBoth(client, conn);
});

test('a libvirt error fails only its call, with libvirt’s code, and the connection stays open', async () => {
  const { client, conn } = await connected();
  const missing = client.call(domainLookupByName, { name: 'nope' });
  const call = await conn.nextCall();
  conn.replyError(call, {
    code: VIR_ERR.NO_DOMAIN,
    domain: 12,
    message: "Domain not found: no domain with matching name 'nope'",
  });
  const error = await rejectsWith(missing, 'LIBVIRT_RPC_ERROR');
  assert.equal(isNoDomainError(error), true);
  assert.equal(error.details.domain, 12);
  assert.equal(client.state, 'open');
  const next = client.call(connectGetHostname, undefined);
  conn.reply(await conn.nextCall(), connectGetHostname, { hostname: 'still-here' });
  assert.equal((await next).hostname, 'still-here');
  await closeBoth(client, conn);
});

test('the daemon’s PING is answered with a PONG', async () => {
  const { client, conn } = await connected();
  conn.send({
    program: LIBVIRT_PROGRAM.keepalive,
    version: 1,
    procedure: KEEPALIVE_PROC.ping,
    type: MESSAGE_TYPE.message,
    serial: 0,
    status: MESSAGE_STATUS.ok,
  });
  const pong = await conn.nextPacket();
  assert.deepEqual(
    [pong.header.program, pong.header.procedure, pong.header.type],
    [LIBVIRT_PROGRAM.keepalive, KEEPALIVE_PROC.pong, MESSAGE_TYPE.message],
  );
  assert.equal(client.keepaliveStats.pongsSent, 1);
  await closeBoth(client, conn);
});

test('a silent peer is pinged, then declared dead: the connection closes with LIBVIRT_RPC_CLOSED', async () => {
  const clock = new ManualClock();
  const { client, conn } = await connected(
    { clock, keepalive: { intervalMs: 5000, maxMissed: 3 } },
    { keepalive: true },
  );
  const failed = rejectsWith(client.call(connectGetHostname, undefined), 'LIBVIRT_RPC_CLOSED');
  await conn.nextCall(); // never answered
  for (let i = 0; i < 3; i++) {
    await clock.advance(5000);
    const ping = await conn.nextPacket();
    assert.equal(ping.header.procedure, KEEPALIVE_PROC.ping, `ping ${i + 1}`);
  }
  assert.equal(client.state, 'open');
  await clock.advance(5000);
  const error = await failed;
  assert.equal(error.details.reason, 'peer missed keepalive');
  assert.equal(client.state, 'closed');
  assert.equal((await client.closed)?.code, 'LIBVIRT_RPC_CLOSED');
});

test('a peer that answers pings is kept alive however long it is otherwise quiet', async () => {
  const clock = new ManualClock();
  const { client, conn } = await connected(
    { clock, keepalive: { intervalMs: 1000, maxMissed: 2 } },
    { keepalive: true },
  );
  for (let i = 0; i < 6; i++) {
    await clock.advance(1000);
    const ping = await conn.nextPacket();
    conn.send({ ...ping.header, procedure: KEEPALIVE_PROC.pong });
    await new Promise((r) => setTimeout(r, 5));
  }
  assert.equal(client.state, 'open');
  assert.equal(client.keepaliveStats.pingsSent, 6);
  await closeBoth(client, conn);
});

test('a call with a time limit fails with LIBVIRT_RPC_TIMEOUT; its late reply is ignored', async () => {
  const clock = new ManualClock();
  const { client, conn } = await connected({ clock });
  const slow = rejectsWith(
    client.call(connectGetHostname, undefined, { timeoutMs: 3000 }),
    'LIBVIRT_RPC_TIMEOUT',
  );
  const call = await conn.nextCall();
  await clock.advance(3000);
  await slow;
  conn.reply(call, connectGetHostname, { hostname: 'late' });
  const next = client.call(connectGetHostname, undefined);
  conn.reply(await conn.nextCall(), connectGetHostname, { hostname: 'on-time' });
  assert.equal((await next).hostname, 'on-time');
  await closeBoth(client, conn);
});

async function assertFaultCloses(
  bytes: Buffer,
  then?: (conn: FakePeerConnection) => void,
): Promise<void> {
  const { client, conn } = await connected();
  const failed = rejectsWith(
    client.call(connectGetHostname, undefined),
    'LIBVIRT_RPC_PROTOCOL_ERROR',
  );
  await conn.nextCall();
  conn.sendBytes(bytes);
  then?.(conn);
  await failed;
  assert.equal(client.state, 'closed');
  assert.equal((await client.closed)?.code, 'LIBVIRT_RPC_PROTOCOL_ERROR');
  await rejectsWith(client.call(connectGetHostname, undefined), 'LIBVIRT_RPC_PROTOCOL_ERROR');
}

test('a truncated packet followed by the peer hanging up is a protocol error, not a hang', async () => {
  const whole = encodePacket(
    {
      program: LIBVIRT_PROGRAM.remote,
      version: 1,
      procedure: 59,
      type: MESSAGE_TYPE.reply,
      serial: 4,
      status: MESSAGE_STATUS.ok,
    },
    (w) => connectGetHostname.ret.encode(w, { hostname: 'cut' }),
  );
  await assertFaultCloses(whole.subarray(0, whole.length - 3), (conn) => conn.close());
});

test('an oversized packet length closes the connection with a protocol error', async () => {
  await assertFaultCloses(Buffer.from('7fffffff2000808600000001', 'hex'));
});

test('garbage instead of packets closes the connection with a protocol error', async () => {
  await assertFaultCloses(Buffer.from('HTTP/1.1 400 Bad Request\r\n\r\n'));
});

test('a reply to a serial nobody asked for is a protocol error', async () => {
  await assertFaultCloses(
    encodePacket({
      program: LIBVIRT_PROGRAM.remote,
      version: 1,
      procedure: 59,
      type: MESSAGE_TYPE.reply,
      serial: 9999,
      status: MESSAGE_STATUS.ok,
    }),
  );
});

test('a daemon that wants SASL is refused with LIBVIRT_RPC_AUTH_UNSUPPORTED', async () => {
  const connecting = LibvirtClient.connect(() => connectUnixSocket(peer.path), {
    keepalive: false,
  });
  const conn = await peer.nextConnection();
  await conn.serveHandshake({ authTypes: [1] });
  const error = await rejectsWith(connecting, 'LIBVIRT_RPC_AUTH_UNSUPPORTED');
  assert.deepEqual(error.details.authTypes, [1]);
});

test('an absent daemon socket fails with LIBVIRT_RPC_CONNECT_FAILED', async () => {
  const error = await rejectsWith(
    LibvirtClient.connect(() => connectUnixSocket(`${peer.path}.missing`)),
    'LIBVIRT_RPC_CONNECT_FAILED',
  );
  assert.equal(error.details.transport, 'unix');
});

test('a download ends at the empty CONTINUE packet, which is answered with OK', async () => {
  const { client, conn } = await connected();
  const vol = { pool: 'p', name: 'v', key: '/p/v' };
  const opening = client.openStream(storageVolDownload, { vol, offset: 0, length: 0, flags: 0 });
  const call = await conn.nextCall();
  conn.reply(call, storageVolDownload, undefined);
  const stream = await opening;
  conn.streamPacket(call, MESSAGE_STATUS.continue, Buffer.from('hello '));
  conn.streamPacket(call, MESSAGE_STATUS.continue, Buffer.from('world'));
  conn.streamPacket(call, MESSAGE_STATUS.continue);
  const chunks: Buffer[] = [];
  const reading = pipeline(
    stream,
    new Writable({ write: (c: Buffer, _e, cb) => (chunks.push(c), cb()) }),
  );
  const ack = await conn.nextCall();
  assert.deepEqual(
    [ack.header.type, ack.header.status, ack.header.serial, ack.payload.length],
    [MESSAGE_TYPE.stream, MESSAGE_STATUS.ok, call.header.serial, 0],
  );
  conn.streamPacket(call, MESSAGE_STATUS.ok);
  await reading;
  assert.equal(Buffer.concat(chunks).toString(), 'hello world');
  assert.equal(client.openStreams, 0);
  assert.equal(client.state, 'open');
  await closeBoth(client, conn);
});

test('a stream error from the daemon fails the stream with LIBVIRT_RPC_ERROR', async () => {
  const { client, conn } = await connected();
  const opening = client.openStream(storageVolDownload, {
    vol: { pool: 'p', name: 'v', key: 'k' },
    offset: 0,
    length: 0,
    flags: 0,
  });
  const call = await conn.nextCall();
  conn.reply(call, storageVolDownload, undefined);
  const stream = await opening;
  conn.streamPacket(
    call,
    MESSAGE_STATUS.error,
    encodeXdr(remoteError, {
      code: 38,
      domain: 18,
      message: 'read failed',
      level: 2,
      dom: null,
      str1: null,
      str2: null,
      str3: null,
      int1: 0,
      int2: 0,
      net: null,
    }),
  );
  await rejectsWith(
    pipeline(stream, new Writable({ write: (_c, _e, cb) => cb() })),
    'LIBVIRT_RPC_ERROR',
  );
  assert.equal(client.state, 'open');
  await closeBoth(client, conn);
});

test('a console stream carries bytes both ways', async () => {
  const { client, conn } = await connected();
  const opening = client.openStream(domainOpenConsole, { dom, dev_name: null, flags: 0 });
  const call = await conn.nextCall();
  conn.reply(call, domainOpenConsole, undefined);
  const console = await opening;
  console.write('uname -a\n');
  const typed = await conn.nextCall();
  assert.deepEqual(
    [typed.header.type, typed.header.status],
    [MESSAGE_TYPE.stream, MESSAGE_STATUS.continue],
  );
  assert.equal(typed.payload.toString(), 'uname -a\n');
  const echoed = new Promise<string>((resolve) =>
    console.once('data', (d: Buffer) => resolve(d.toString())),
  );
  conn.streamPacket(call, MESSAGE_STATUS.continue, Buffer.from('Linux guest\n'));
  assert.equal(await echoed, 'Linux guest\n');
  console.destroy();
  const abort = await conn.nextCall();
  assert.equal(abort.header.status, MESSAGE_STATUS.error, 'closing early aborts the stream');
  await closeBoth(client, conn);
});

test('closing the connection fails an open stream and pending calls', async () => {
  const { client, conn } = await connected();
  const opening = client.openStream(storageVolDownload, {
    vol: { pool: 'p', name: 'v', key: 'k' },
    offset: 0,
    length: 0,
    flags: 0,
  });
  const call = await conn.nextCall();
  conn.reply(call, storageVolDownload, undefined);
  const stream = await opening;
  const failed = new Promise<Error>((resolve) => stream.once('error', resolve));
  conn.socket.destroy();
  const error = await failed;
  assert.ok(error instanceof ZenithError && error.code === 'LIBVIRT_RPC_CLOSED');
});

test('reboot, migration-iteration and job-completed events decode into their messages', async () => {
  const { client, conn } = await connected();
  const reboots: string[] = [];
  const iterations: number[] = [];
  const jobs: { name: string; downtime: number | undefined }[] = [];
  client.onEvent(domainEventReboot, ({ msg }) => reboots.push(msg.dom.name));
  client.onEvent(domainEventMigrationIteration, (event) => iterations.push(event.iteration));
  const done = new Promise<void>((resolve) =>
    client.onEvent(domainEventJobCompleted, (event) => {
      jobs.push({ name: event.dom.name, downtime: typedParamNumber(event.params, 'downtime') });
      resolve();
    }),
  );
  conn.event(domainEventReboot, { callbackID: 2, msg: { dom } });
  conn.event(domainEventMigrationIteration, { callbackID: 3, dom, iteration: 1 });
  conn.event(domainEventMigrationIteration, { callbackID: 3, dom, iteration: 2 });
  conn.event(domainEventJobCompleted, {
    callbackID: 4,
    dom,
    params: [typedParam.int('type', 3), typedParam.ullong('downtime', 42n)],
  });
  await done;
  assert.deepEqual(reboots, ['web-1']);
  assert.deepEqual(iterations, [1, 2]);
  assert.deepEqual(jobs, [{ name: 'web-1', downtime: 42 }]);
  await closeBoth(client, conn);
});

test('an event whose payload does not decode closes the connection with a protocol error', async () => {
  const { client, conn } = await connected();
  client.onEvent(domainEventLifecycle, () => assert.fail('must not be delivered'));
  conn.send(
    {
      program: LIBVIRT_PROGRAM.remote,
      version: 1,
      procedure: domainEventLifecycle.procedure,
      type: MESSAGE_TYPE.message,
      serial: 0,
      status: MESSAGE_STATUS.ok,
    },
    Buffer.from('0000000100000003abc', 'hex'),
  );
  assert.equal((await client.closed)?.code, 'LIBVIRT_RPC_PROTOCOL_ERROR');
});
