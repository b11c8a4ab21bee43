/**
 * What a user sees when a libvirt connection cannot work: an unreachable
 * daemon, credentials the daemon refuses (a real libvirtd over TLS), a bad
 * URI, and a peer that answers with malformed or hostile data (a scripted
 * fake daemon, for faults a real one never commits). Each is a coded error;
 * none takes the control plane down.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { systemClock } from '../../../src/core/clock.js';
import { silentLogger } from '../../../src/core/logger.js';
import { LibvirtDriver } from '../../../src/hypervisors/libvirt/libvirt-driver.js';
import { validateLibvirtSettings } from '../../../src/hypervisors/libvirt/libvirt-settings.js';
import type { Packet } from '../../../src/protocols/libvirt/packet.js';
import type { RemoteProcedure } from '../../../src/protocols/libvirt/procedure.js';
import * as connect from '../../../src/protocols/libvirt/procedures/connect.js';
import * as domain from '../../../src/protocols/libvirt/procedures/domain.js';
import * as events from '../../../src/protocols/libvirt/procedures/events.js';
import * as network from '../../../src/protocols/libvirt/procedures/network.js';
import * as storage from '../../../src/protocols/libvirt/procedures/storage.js';
import { VIR_ERR } from '../../../src/protocols/libvirt/remote-error.js';
import { decodeXdr } from '../../../src/protocols/xdr/xdr-types.js';
import { startTestServer, type TestServer } from '../../../src/testing/control-plane.js';
import {
  FakeLibvirtPeer,
  type FakePeerConnection,
} from '../../../src/testing/fake-libvirt-peer.js';
import { startLibvirtd, type LibvirtdDaemon } from '../../../src/testing/libvirtd.js';

const run = promisify(execFile);

let s: TestServer;
let token: string;
before(async () => {
  s = await startTestServer();
  token = await s.login();
});
after(async () => s?.close());

const tryConnection = (settings: Record<string, unknown>, secret?: string) =>
  s.request('POST', '/connections/test', {
    token,
    body: { type: 'libvirt', settings, ...(secret !== undefined ? { secret } : {}) },
  });

describe('unreachable daemons and bad URIs', () => {
  test('a socket nobody listens on is ZEN_CONNECTION_FAILED, saying where', async () => {
    const answer = await tryConnection({ uri: 'qemu:///system?socket=/nonexistent/libvirt-sock' });
    assert.equal(answer.status, 502, JSON.stringify(answer.body));
    assert.equal(answer.body.error.code, 'ZEN_CONNECTION_FAILED');
    assert.equal(answer.body.error.details.protocolCode, 'LIBVIRT_RPC_CONNECT_FAILED');
    assert.equal(answer.body.error.details.cause, 'ENOENT');
    assert.match(answer.body.error.message, /nonexistent\/libvirt-sock/);
  });

  test('a TCP port nobody listens on is ZEN_CONNECTION_FAILED', async () => {
    const answer = await tryConnection({ uri: 'qemu+tcp://127.0.0.1:9/system' });
    assert.equal(answer.status, 502);
    assert.equal(answer.body.error.code, 'ZEN_CONNECTION_FAILED');
    assert.equal(answer.body.error.details.cause, 'ECONNREFUSED');
  });

  test('a connection added with an unreachable daemon is stored, disconnected, with the reason', async () => {
    const added = await s.request('POST', '/connections', {
      token,
      body: {
        name: 'nowhere',
        type: 'libvirt',
        settings: { uri: 'qemu:///system?socket=/nonexistent/libvirt-sock' },
      },
    });
    assert.equal(added.status, 201);
    assert.equal(added.body.state, 'disconnected');
    assert.match(added.body.lastError, /cannot open qemu:\/\/\/system/);
    assert.equal(
      (await s.request('DELETE', `/connections/${added.body.id}`, { token })).status,
      200,
    );
  });

  test('bad URIs and settings are refused before anything is stored: 400 ZEN_CONFIG_INVALID', async () => {
    for (const settings of [
      { uri: 'qemu+ssh://root@kvm-1/system' },
      { uri: 'esx://vcenter/' },
      { uri: 'not a uri' },
      {},
      { uri: 'qemu:///system', tlsCaFile: '/etc/ca.pem' },
    ]) {
      const answer = await s.request('POST', '/connections', {
        token,
        body: { name: 'bad', type: 'libvirt', settings },
      });
      assert.equal(answer.status, 400, JSON.stringify(settings));
      assert.equal(answer.body.error.code, 'ZEN_CONFIG_INVALID');
    }
    assert.deepEqual(
      (await s.request('GET', '/connections', { token })).body.items.map(
        (c: { name: string }) => c.name,
      ),
      [],
    );
  });
});

describe('TLS credentials against a real libvirtd', () => {
  let daemon: LibvirtdDaemon;
  let stranger: string;
  before(async () => {
    daemon = await startLibvirtd({ tls: true, virtlogd: false });
    // A certificate and key from a CA the daemon does not know.
    stranger = await mkdtemp(join(tmpdir(), 'zenith-stranger-'));
    await run('openssl', [
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      join(stranger, 'key.pem'),
      '-out',
      join(stranger, 'cert.pem'),
      '-days',
      '1',
      '-subj',
      '/CN=stranger',
    ]);
  });
  after(async () => {
    await daemon?.stop();
    if (stranger) await rm(stranger, { recursive: true, force: true });
  });

  const tlsUri = () => `test+tls://127.0.0.1:${daemon.tlsPort}/default`;
  const pki = (file: string) => join(daemon.clientPkiDirectory!, file);

  test('the right certificate, with its key given as the connection secret, connects', async () => {
    const answer = await tryConnection(
      { uri: tlsUri(), tlsCaFile: pki('cacert.pem'), tlsCertFile: pki('clientcert.pem') },
      await readFile(pki('clientkey.pem'), 'utf8'),
    );
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
    assert.equal(answer.body.objects.vm, 1);
    assert.equal(answer.body.objects.host, 1);
  });

  test('the pkipath of the URI works as in libvirt', async () => {
    const answer = await tryConnection({ uri: `${tlsUri()}?pkipath=${daemon.clientPkiDirectory}` });
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
  });

  test('a client certificate the daemon does not trust is ZEN_CONNECTION_AUTH_FAILED', async () => {
    const answer = await tryConnection({
      uri: tlsUri(),
      tlsCaFile: pki('cacert.pem'),
      tlsCertFile: join(stranger, 'cert.pem'),
      tlsKeyFile: join(stranger, 'key.pem'),
    });
    assert.equal(answer.status, 502, JSON.stringify(answer.body));
    assert.equal(answer.body.error.code, 'ZEN_CONNECTION_AUTH_FAILED', JSON.stringify(answer.body));
  });

  test('a daemon whose certificate our CA did not sign is ZEN_CONNECTION_AUTH_FAILED', async () => {
    const answer = await tryConnection({
      uri: tlsUri(),
      tlsCaFile: join(stranger, 'cert.pem'),
      tlsCertFile: pki('clientcert.pem'),
      tlsKeyFile: pki('clientkey.pem'),
    });
    assert.equal(answer.status, 502, JSON.stringify(answer.body));
    assert.equal(answer.body.error.code, 'ZEN_CONNECTION_AUTH_FAILED');
  });

  test('a secret that is not a PEM key, or files that do not exist, are ZEN_CONFIG_INVALID', async () => {
    const notPem = await tryConnection(
      { uri: tlsUri(), tlsCaFile: pki('cacert.pem'), tlsCertFile: pki('clientcert.pem') },
      'hunter2',
    );
    assert.equal(notPem.status, 400);
    assert.equal(notPem.body.error.code, 'ZEN_CONFIG_INVALID');
    const missing = await tryConnection({ uri: tlsUri(), tlsCaFile: '/nonexistent/ca.pem' });
    assert.equal(missing.status, 400);
    assert.equal(missing.body.error.code, 'ZEN_CONFIG_INVALID');
    assert.doesNotMatch(JSON.stringify(notPem.body), /hunter2/, 'the secret is never echoed');
  });
});

describe('a peer that answers with malformed or hostile data', () => {
  let peer: FakeLibvirtPeer;
  before(async () => {
    peer = await FakeLibvirtPeer.start();
  });
  after(async () => peer?.stop());

  const HOST_CAPS =
    "<capabilities><host><uuid>11111111-2222-3333-4444-555555555555</uuid><cpu><arch>x86_64</arch></cpu></host><guest><os_type>hvm</os_type><arch name='x86_64'><domain type='qemu'/></arch></guest></capabilities>";
  const GOOD_DOMAIN = { name: 'fine', uuid: 'aaaaaaaa-0000-4000-8000-000000000001', id: 1 };
  const HOSTILE_DOMAIN = { name: 'hostile', uuid: 'aaaaaaaa-0000-4000-8000-000000000002', id: 2 };
  const ENTITY_BOMB =
    '<?xml version="1.0"?><!DOCTYPE d [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]><domain><name>&b;</name></domain>';

  type Answer = (conn: FakePeerConnection, call: Packet) => void;
  const answer =
    <A, R>(procedure: RemoteProcedure<A, R>, value: R): Answer =>
    (conn, call) =>
      conn.reply(call, procedure, value);

  /** Serves the handshake, then answers each call by procedure number (unknown ones: "not supported"). */
  async function serve(conn: FakePeerConnection, script: Record<number, Answer>): Promise<void> {
    await conn.serveHandshake();
    const closed = new Promise<null>((resolve) => conn.socket.once('close', () => resolve(null)));
    for (;;) {
      const call = await Promise.race([conn.nextCall(), closed]);
      if (!call) return;
      const respond = script[call.header.procedure];
      if (respond) respond(conn, call);
      else conn.replyError(call, { code: VIR_ERR.NO_SUPPORT, message: 'not supported here' });
    }
  }

  const hostScript = (capabilities: string): Record<number, Answer> => ({
    [connect.connectGetType.procedure]: answer(connect.connectGetType, { type: 'QEMU' }),
    [connect.connectGetVersion.procedure]: answer(connect.connectGetVersion, { hv_ver: 7002000 }),
    [connect.connectGetLibVersion.procedure]: answer(connect.connectGetLibVersion, {
      lib_ver: 9000000n,
    }),
    [connect.connectGetHostname.procedure]: answer(connect.connectGetHostname, {
      hostname: 'fake-host',
    }),
    [connect.nodeGetInfo.procedure]: answer(connect.nodeGetInfo, {
      model: 'x86_64',
      memory: 1048576,
      cpus: 2,
      mhz: 1000,
      nodes: 1,
      sockets: 1,
      cores: 2,
      threads: 1,
    }),
    [connect.connectGetCapabilities.procedure]: answer(connect.connectGetCapabilities, {
      capabilities,
    }),
    [events.connectDomainEventCallbackRegisterAny.procedure]: answer(
      events.connectDomainEventCallbackRegisterAny,
      { callbackID: 1 },
    ),
  });

  test('capabilities that are not well-formed XML: LIBVIRT_XML_INVALID, and the server stays up', async () => {
    const served = peer
      .nextConnection()
      .then((conn) => serve(conn, hostScript('<capabilities><host>')));
    const attempt = await tryConnection({ uri: `qemu:///system?socket=${peer.path}` });
    assert.equal(attempt.status, 502, JSON.stringify(attempt.body));
    assert.equal(attempt.body.error.code, 'LIBVIRT_XML_INVALID');
    await served;
    assert.equal((await s.request('GET', '/connections', { token })).status, 200);
  });

  test('garbage instead of a reply: ZEN_CONNECTION_FAILED with the protocol error in details', async () => {
    const served = peer.nextConnection().then((conn) =>
      serve(conn, {
        ...hostScript(HOST_CAPS),
        [connect.connectGetType.procedure]: (c) =>
          c.sendBytes(Buffer.from('HTTP/1.1 400 Nope\r\n\r\n')),
      }),
    );
    const attempt = await tryConnection({ uri: `qemu:///system?socket=${peer.path}` });
    assert.equal(attempt.status, 502, JSON.stringify(attempt.body));
    assert.equal(attempt.body.error.code, 'ZEN_CONNECTION_FAILED');
    assert.equal(attempt.body.error.details.protocolCode, 'LIBVIRT_RPC_PROTOCOL_ERROR');
    await served;
  });

  test('a domain whose XML declares entities is reported with the reason, next to a sound one', async () => {
    const xmlOf: Record<string, string> = {
      [GOOD_DOMAIN.uuid]: `<domain type='qemu'><name>fine</name><uuid>${GOOD_DOMAIN.uuid}</uuid><memory unit='MiB'>256</memory><vcpu>2</vcpu><os><type arch='x86_64'>hvm</type></os></domain>`,
      [HOSTILE_DOMAIN.uuid]: ENTITY_BOMB,
    };
    const served = peer.nextConnection().then((conn) =>
      serve(conn, {
        ...hostScript(HOST_CAPS),
        [domain.connectListAllDomains.procedure]: answer(domain.connectListAllDomains, {
          domains: [GOOD_DOMAIN, HOSTILE_DOMAIN],
          ret: 2,
        }),
        [domain.domainGetXmlDesc.procedure]: (c, call) => {
          const { dom } = decodeXdr(domain.domainGetXmlDesc.args, call.payload);
          c.reply(call, domain.domainGetXmlDesc, { xml: xmlOf[dom.uuid]! });
        },
        [domain.domainGetState.procedure]: answer(domain.domainGetState, { state: 1, reason: 1 }),
        [network.connectListAllNetworks.procedure]: answer(network.connectListAllNetworks, {
          nets: [],
          ret: 0,
        }),
        [storage.connectListAllStoragePools.procedure]: answer(storage.connectListAllStoragePools, {
          pools: [],
          ret: 0,
        }),
      }),
    );
    const driver = new LibvirtDriver({
      settings: validateLibvirtSettings({ uri: `qemu:///system?socket=${peer.path}` }),
      secret: null,
      clock: systemClock,
      logger: silentLogger,
    });
    try {
      await driver.connect();
      const { objects } = await driver.discover();
      const vms = objects.filter((o) => o.kind === 'vm');
      assert.deepEqual(
        vms.map((vm) => [vm.name, vm.facts['power.state']]),
        [
          ['fine', 'running'],
          ['hostile', 'running'],
        ],
      );
      assert.equal(vms[0]!.facts['memory.bytes'], 256 * 1048576);
      assert.match(String(vms[1]!.facts['libvirt.descriptionError']), /DOCTYPE or entities/);
      assert.equal(vms[1]!.facts['memory.bytes'], undefined, 'nothing is read from a hostile XML');
    } finally {
      await driver.close();
      await served;
    }
  });
});
