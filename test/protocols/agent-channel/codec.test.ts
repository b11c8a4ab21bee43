/**
 * The agent channel's codec, handshake reading and dispatcher, without
 * sockets. WebSocket frames the messages already, so what is tested is what
 * a peer can get wrong inside one: malformed JSON and fields of the wrong
 * shape are refused with a code that names the field, unknown message types
 * (a newer peer's) are ignored, and a call is checked against the call map
 * before any handler runs.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { isZenithError } from '../../../src/core/errors.js';
import { agentCalls, agentMethods } from '../../../src/protocols/agent-channel/call-map.js';
import {
  decodeArgs,
  decodeForAgent,
  decodeForControlPlane,
  decodeResult,
  encodeForAgent,
  encodeForControlPlane,
} from '../../../src/protocols/agent-channel/codec.js';
import {
  dispatchCall,
  dispatchMessage,
  type CallHandlers,
  type MessageHandlers,
} from '../../../src/protocols/agent-channel/dispatcher.js';
import { readHello } from '../../../src/protocols/agent-channel/handshake.js';
import type { DiscoveredVm } from '../../../src/protocols/agent-channel/values.js';
import type {
  AgentReceives,
  FromAgent,
  ToAgent,
} from '../../../src/protocols/agent-channel/messages.js';
import { channelProtocol, formatVersion } from '../../../src/protocols/agent-channel/version.js';

const coded =
  (code: string, path?: string) =>
  (error: unknown): boolean =>
    isZenithError(error) &&
    error.code === code &&
    (path === undefined || error.details.path === path);

const vm: DiscoveredVm = {
  kind: 'vm',
  externalId: 'q1',
  name: 'web-1',
  parent: { kind: 'host', externalId: 'h1' },
  hostExternalId: 'h1',
  powerState: 'running',
  facts: { 'cpu.count': 2, 'network.macs': ['52:54:00:00:00:01'], 'qemu.pid': null },
};

describe('agent channel codec', () => {
  test('every message either end sends decodes as it was sent', () => {
    const toAgent: ToAgent[] = [
      { type: 'call', id: 1, method: 'startVm', args: ['q1'] },
      { type: 'cancel', id: 1 },
      { type: 'console-open', stream: 3, vmId: 'q1', kind: 'serial' },
      { type: 'console-data', stream: 3, data: 'aGk=' },
      { type: 'console-close', stream: 3 },
      { type: 'renewed', certificate: 'PEM', notAfter: 1, renewInMs: 2 },
      { type: 'renew-failed', error: { code: 'ZEN_INTERNAL', message: 'no' } },
    ];
    for (const message of toAgent)
      assert.deepEqual(decodeForAgent(encodeForAgent(message)), message);
    const fromAgent: FromAgent[] = [
      { type: 'result', id: 1, ok: true, value: vm },
      {
        type: 'result',
        id: 2,
        ok: false,
        error: { code: 'ZEN_NOT_FOUND', message: 'no q9', details: { externalId: 'q9' } },
      },
      { type: 'delta', delta: { type: 'upsert', object: vm } },
      { type: 'delta', delta: { type: 'remove', kind: 'vm', externalId: 'q1' } },
      { type: 'progress', id: 1, update: { percent: 40, details: { bytesSent: 9, pass: 'x' } } },
      { type: 'heartbeat', facts: { 'cpu.count': 4 } },
      { type: 'console-opened', stream: 3 },
      { type: 'console-close', stream: 3, error: { code: 'ZEN_INVALID_STATE', message: 'off' } },
      { type: 'renew', csr: 'CSR' },
      { type: 'switched' },
    ];
    for (const message of fromAgent)
      assert.deepEqual(decodeForControlPlane(Buffer.from(encodeForControlPlane(message))), message);
  });

  test('what is not a message of the protocol is refused with a code naming the field', () => {
    const refused = (text: string, path?: string) =>
      assert.throws(() => decodeForControlPlane(text), coded('AGENT_CHANNEL_PROTOCOL_ERROR', path));
    refused('not json');
    refused('[1,2]');
    refused('{"no":"type"}', '/type');
    refused('{"type":7}', '/type');
    refused('{"type":"heartbeat"}', '/facts');
    refused('{"type":"progress","id":1,"update":{"percent":"40"}}', '/update/percent');
    refused('{"type":"result","id":"1","ok":true,"value":null}');
    refused(
      JSON.stringify({
        type: 'delta',
        delta: { type: 'upsert', object: { ...vm, powerState: 'on' } },
      }),
      '/delta/object/powerState',
    );
    // A VM must say where it runs: an object of kind vm without its host is not one.
    const { hostExternalId: _, ...hostless } = vm;
    refused(JSON.stringify({ type: 'delta', delta: { type: 'upsert', object: hostless } }));
    assert.throws(
      () => decodeForAgent('{"type":"console-open","stream":1,"vmId":"q1","kind":"rdp"}'),
      coded('AGENT_CHANNEL_PROTOCOL_ERROR', '/kind'),
    );
    assert.throws(
      () => decodeForAgent('{"type":"call","id":1,"method":"startVm","args":"q1"}'),
      coded('AGENT_CHANNEL_PROTOCOL_ERROR', '/args'),
    );
  });

  test('a message this end sends is checked as its peer will check it, the handshake included', () => {
    assert.equal(
      decodeForAgent(encodeForAgent({ type: 'challenge', nonce: 'n', protocol: '1.1' }))?.type,
      'challenge',
    );
    assert.equal(
      decodeForControlPlane(
        encodeForControlPlane({ type: 'hello', certificate: 'PEM', signature: 'sig' }),
      )?.type,
      'hello',
    );
    // What TypeScript cannot see (a driver's value, a number that is not one) is refused here.
    assert.throws(
      () => encodeForControlPlane({ type: 'progress', id: 1, update: { percent: Number.NaN } }),
      coded('AGENT_CHANNEL_PROTOCOL_ERROR', '/update/percent'),
    );
    assert.throws(
      () => encodeForAgent({ type: 'console-data', stream: -1, data: '' }),
      coded('AGENT_CHANNEL_PROTOCOL_ERROR', '/stream'),
    );
    // A message of the other side is not one this side sends.
    assert.throws(
      () => encodeForAgent({ type: 'switched' } as unknown as Parameters<typeof encodeForAgent>[0]),
      coded('AGENT_CHANNEL_PROTOCOL_ERROR'),
    );
  });

  test('a type this end does not know is ignored; fields it does not know are kept', () => {
    assert.equal(decodeForControlPlane('{"type":"from-the-future","x":1}'), null);
    assert.equal(decodeForAgent('{"type":"from-the-future"}'), null);
    assert.deepEqual(decodeForControlPlane('{"type":"switched","since":"1.2"}'), {
      type: 'switched',
      since: '1.2',
    });
  });

  test('a call’s arguments and result are checked against the call map', () => {
    assert.deepEqual(decodeArgs('stopVm', ['q1', { force: true }]), ['q1', { force: true }]);
    assert.throws(() => decodeArgs('stopVm', ['q1']), coded('AGENT_CHANNEL_PROTOCOL_ERROR'));
    assert.throws(
      () => decodeArgs('cloneVm', ['q1', { linked: true }]),
      coded('AGENT_CHANNEL_PROTOCOL_ERROR', '/1/name'),
    );
    assert.deepEqual(decodeResult('startVm', vm), vm);
    assert.throws(
      () => decodeResult('startVm', { ...vm, facts: { nested: { no: 1 } } }),
      coded('AGENT_CHANNEL_PROTOCOL_ERROR', '/facts/nested'),
    );
    assert.equal(decodeResult('deleteVm', null), null);
    assert.throws(
      () => decodeResult('incomingState', 'lost'),
      coded('AGENT_CHANNEL_PROTOCOL_ERROR'),
    );
    // Every method says when it came: 1.0 for the channel as it was, 1.1 for the portable-VM calls,
    // 1.2 for high availability's, 1.3 for the discard of VMs that moved away, 1.4 for a source
    // taking back a VM its migration could not hand over.
    assert.deepEqual(
      agentMethods.filter((m) => agentCalls[m].since.minor === 1),
      ['describeVm', 'runVm'],
    );
    assert.deepEqual(
      agentMethods.filter((m) => agentCalls[m].since.minor === 2),
      ['configureHa', 'readHaHeartbeats', 'clearReleased'],
    );
    assert.deepEqual(
      agentMethods.filter((m) => agentCalls[m].since.minor === 3),
      ['discardMovedVms'],
    );
    assert.deepEqual(
      agentMethods.filter((m) => agentCalls[m].since.minor === 4),
      ['keepOutgoing'],
    );
    assert.deepEqual(
      agentMethods.filter((m) => agentCalls[m].since.minor === 8),
      [
        'startReplica',
        'findReplica',
        'takeReplicaPoint',
        'stopReplica',
        'startSyncMirror',
        'syncMirrorStatus',
        'stopSyncMirror',
      ],
    );
  });

  test('a replica key QEMU cannot carry is refused at the agent, and the refusal does not repeat it', () => {
    const replica = (key: string, identity = 'replication-r1') => [
      {
        directory: '/srv/replicas/r1',
        disks: [{ diskId: 'disk0', base: '/srv/replicas/r1/point-0.qcow2' }],
        psk: { identity, key },
        listen: { host: '192.0.2.7' },
      },
    ];
    const key = 'ab'.repeat(32);
    assert.deepEqual(decodeArgs('startReplica', replica(key)), replica(key));
    for (const [bad, identity] of [
      [`${'cd'.repeat(31)}zz`, 'replication-r1'],
      ['ef'.repeat(8 - 1), 'replication-r1'],
      [key, 'replication:r1'],
    ] as const)
      assert.throws(
        () => decodeArgs('startReplica', replica(bad, identity)),
        (error) =>
          coded('AGENT_CHANNEL_PROTOCOL_ERROR')(error) &&
          !JSON.stringify({ message: (error as Error).message, ...(error as object) }).includes(
            bad,
          ),
      );
  });
});

describe('the hello and its protocol version', () => {
  const hello = (protocol?: string) =>
    JSON.stringify({
      type: 'hello',
      certificate: 'PEM',
      signature: 'sig',
      ...(protocol !== undefined ? { protocol } : {}),
    });

  test('an agent from before versions speaks 1.0; an older or newer minor is met at the older one', () => {
    assert.deepEqual(readHello(hello()).protocol, { major: 1, minor: 0 });
    assert.deepEqual(readHello(hello('1.0')).protocol, { major: 1, minor: 0 });
    assert.deepEqual(readHello(hello(formatVersion(channelProtocol))).protocol, channelProtocol);
    const newer = formatVersion({ ...channelProtocol, minor: channelProtocol.minor + 1 });
    assert.deepEqual(readHello(hello(newer)).protocol, channelProtocol);
    assert.equal(readHello(hello('1.1')).hello.certificate, 'PEM');
  });

  test('another major is refused with ZEN_AGENT_INCOMPATIBLE saying which side to upgrade', () => {
    assert.throws(
      () => readHello(hello('0.9')),
      (error) =>
        coded('ZEN_AGENT_INCOMPATIBLE')(error) &&
        /upgrade the agent/.test((error as Error).message) &&
        (error as { details: Record<string, unknown> }).details.agentProtocol === '0.9',
    );
    assert.throws(
      () => readHello(hello('2.0')),
      (error) =>
        coded('ZEN_AGENT_INCOMPATIBLE')(error) &&
        /upgrade the control plane/.test((error as Error).message),
    );
    assert.throws(() => readHello(hello('one')), coded('ZEN_AGENT_INCOMPATIBLE'));
    // The version is read before the rest: a hello of another major need not look like ours.
    assert.throws(
      () => readHello('{"type":"hello","protocol":"2.0","credentials":{}}'),
      coded('ZEN_AGENT_INCOMPATIBLE'),
    );
  });

  test('a hello without its certificate or signature, or no hello at all, is not authenticated', () => {
    assert.throws(
      () => readHello('{"type":"hello","certificate":"PEM"}'),
      coded('ZEN_UNAUTHENTICATED'),
    );
    assert.throws(() => readHello('{"type":"heartbeat","facts":{}}'), coded('ZEN_UNAUTHENTICATED'));
    assert.throws(() => readHello('garbage'), coded('ZEN_UNAUTHENTICATED'));
  });
});

describe('dispatch of a decoded message', () => {
  test('each message reaches the handler of its type, as its schema typed it', () => {
    const seen: string[] = [];
    const handlers: MessageHandlers<AgentReceives> = {
      challenge: (m) => seen.push(`challenge ${m.nonce}`),
      welcome: (m) => seen.push(`welcome ${m.agentId}`),
      refused: (m) => seen.push(`refused ${m.error.code}`),
      call: (m) => seen.push(`call ${m.method}`),
      cancel: (m) => seen.push(`cancel ${m.id}`),
      'console-open': (m) => seen.push(`console-open ${m.kind}`),
      'console-data': (m) => seen.push(`console-data ${m.data}`),
      'console-close': (m) => seen.push(`console-close ${m.stream}`),
      renewed: (m) => seen.push(`renewed ${m.certificate}`),
      'renew-failed': (m) => seen.push(`renew-failed ${m.error.code}`),
    };
    for (const text of [
      '{"type":"challenge","nonce":"n1"}',
      '{"type":"call","id":1,"method":"startVm","args":["q1"]}',
      '{"type":"console-data","stream":2,"data":"aGk="}',
    ]) {
      const message = decodeForAgent(text);
      assert.ok(message);
      dispatchMessage(message, handlers);
    }
    assert.deepEqual(seen, ['challenge n1', 'call startVm', 'console-data aGk=']);
  });
});

describe('the agent’s dispatcher', () => {
  const context = { signal: new AbortController().signal, progress: () => undefined };
  const ran: string[] = [];
  const handlers = new Proxy({} as CallHandlers, {
    get: (_target, method: string) => async (args: unknown[]) => {
      ran.push(method);
      if (method === 'rebootVm') throw new Error('QEMU went away');
      if (method === 'runVm') return vm;
      return args[0] === 'q1' ? vm : null;
    },
  });
  const call = (method: string, args: unknown[]) =>
    ({ type: 'call', id: 7, method, args }) as const;

  test('a known call with good arguments runs its handler and answers its value', async () => {
    ran.length = 0;
    assert.deepEqual(
      await dispatchCall(call('startVm', ['q1']), handlers, channelProtocol, context),
      {
        type: 'result',
        id: 7,
        ok: true,
        value: vm,
      },
    );
    assert.deepEqual(ran, ['startVm']);
  });

  test('an unknown method, or one newer than the agent’s version, is ZEN_UNSUPPORTED; bad arguments never reach a handler', async () => {
    ran.length = 0;
    const unknown = await dispatchCall(
      call('teleportVm', ['q1']),
      handlers,
      channelProtocol,
      context,
    );
    assert.equal(unknown.ok, false);
    assert.equal(!unknown.ok && unknown.error.code, 'ZEN_UNSUPPORTED');
    // An agent speaking 1.0 does not know runVm, as a real 1.0 agent would not.
    const older = await dispatchCall(
      call('runVm', [{}, { start: true }]),
      handlers,
      { major: 1, minor: 0 },
      context,
    );
    assert.equal(!older.ok && older.error.code, 'ZEN_UNSUPPORTED');
    // Nor does a 1.1 agent know configureHa (1.2).
    const settings = {
      enabled: true,
      isolationResponse: 'power-off',
      isolationSeconds: 2,
      selfFenceSeconds: 3,
    };
    const before12 = await dispatchCall(
      call('configureHa', [settings]),
      handlers,
      { major: 1, minor: 1 },
      context,
    );
    assert.equal(!before12.ok && before12.error.code, 'ZEN_UNSUPPORTED');
    const badHa = await dispatchCall(
      call('configureHa', [{ ...settings, isolationResponse: 'panic' }]),
      handlers,
      channelProtocol,
      context,
    );
    assert.equal(!badHa.ok && badHa.error.details?.path, '/0/isolationResponse');
    const bad = await dispatchCall(call('startVm', [42]), handlers, channelProtocol, context);
    assert.equal(!bad.ok && bad.error.code, 'AGENT_CHANNEL_PROTOCOL_ERROR');
    assert.equal(!bad.ok && bad.error.details?.path, '/0');
    assert.deepEqual(ran, [], 'no handler ran');
  });

  test('a handler’s failure crosses with its code; one without a code as ZEN_DRIVER_ERROR', async () => {
    const failed = await dispatchCall(call('rebootVm', ['q1']), handlers, channelProtocol, context);
    assert.deepEqual(failed, {
      type: 'result',
      id: 7,
      ok: false,
      error: { code: 'ZEN_DRIVER_ERROR', message: 'QEMU went away', details: {} },
    });
  });
});
