import 'reflect-metadata';
import assert from 'node:assert/strict';
import { webcrypto, X509Certificate } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { X509CertificateGenerator } from '@peculiar/x509';
import WebSocket from 'ws';
import {
  newKeyAndRequest,
  signChallenge,
  type AgentCredentials,
} from '../../src/agent/agent-credentials.js';
import { ManualClock } from '../../src/core/clock.js';
import { startTestServer, type TestServer } from '../../src/testing/control-plane.js';
import { until } from '../../src/testing/wait.js';

const validityMs = 3_600_000;

/** One channel as an agent opens it: the handshake's outcome, and the socket to go on with. */
interface Channel {
  socket: WebSocket;
  /** The first answer after the hello: welcome or refused. */
  answer: { type: string; error?: { code: string }; renewInMs?: number; serial?: string };
  closed: Promise<{ code: number; reason: string }>;
  next(type: string): Promise<Record<string, unknown>>;
}

describe('agent enrollment, client certificates and the channel handshake', () => {
  // Whole seconds: certificates carry whole seconds, so renewal times come out exact.
  const clock = new ManualClock(Math.floor(Date.now() / 1000) * 1000);
  let s: TestServer;
  let admin: string;
  before(async () => {
    s = await startTestServer({ clock, agentCertificateValidityMs: validityMs });
    admin = await s.login();
  });
  after(async () => s.close());

  const newToken = async () =>
    (
      await s.request('POST', '/agents/enrollment-tokens', {
        token: admin,
        body: { ttlMinutes: 30 },
      })
    ).body.token as string;

  const enroll = async (hostname: string): Promise<AgentCredentials> => {
    const { privateKey, csr } = await newKeyAndRequest(hostname);
    const answer = await s.request('POST', '/agents/enroll', {
      body: { enrollmentToken: await newToken(), hostname, csr },
    });
    assert.equal(answer.status, 201, JSON.stringify(answer.body));
    return {
      server: s.baseUrl,
      agentId: answer.body.agent.id,
      certificate: answer.body.certificate.certificate,
      privateKey,
      caCertificate: answer.body.caCertificate,
    };
  };

  /** Opens the channel and answers the challenge with `present` (the certificate and key to show). */
  const openChannel = (present: { certificate: string; privateKey: string }): Promise<Channel> =>
    new Promise((resolve, reject) => {
      const socket = new WebSocket(`${s.baseUrl.replace(/^http/, 'ws')}/api/v1/agents/channel`);
      const waiting = new Map<string, (message: Record<string, unknown>) => void>();
      const closed = new Promise<{ code: number; reason: string }>((done) =>
        socket.once('close', (code, reason) => done({ code, reason: reason.toString() })),
      );
      let answered = false;
      socket.on('message', (data: Buffer) => {
        const message = JSON.parse(data.toString()) as Record<string, unknown> & { type: string };
        if (message.type === 'challenge') {
          const credentials = { ...present, server: '', agentId: '', caCertificate: '' };
          socket.send(
            JSON.stringify({
              type: 'hello',
              certificate: present.certificate,
              signature: signChallenge(credentials, String(message.nonce)),
            }),
          );
        } else if (!answered && (message.type === 'welcome' || message.type === 'refused')) {
          answered = true;
          resolve({
            socket,
            answer: message,
            closed,
            next: (type) => new Promise((done) => waiting.set(type, done)),
          });
        } else waiting.get(message.type)?.(message);
      });
      socket.once('error', reject);
    });

  const agentState = async (id: string) =>
    (
      (await s.request('GET', '/agents', { token: admin })).body.items as Array<{
        id: string;
        state: string;
      }>
    ).find((a) => a.id === id)?.state;

  const certificatesOf = async (id: string) =>
    (await s.request('GET', `/agents/${id}/certificates`, { token: admin })).body.items as Array<{
      serial: string;
      revokedAt: number | null;
      revokedReason: string | null;
      replaces: string | null;
    }>;

  test('only an administrator issues enrollment tokens', async () => {
    assert.equal((await s.request('POST', '/agents/enrollment-tokens', { body: {} })).status, 401);
    await s.request('POST', '/users', {
      token: admin,
      body: { name: 'olga', role: 'operator', password: 'operator-password' },
    });
    const operator = await s.login('olga', 'operator-password');
    const refused = await s.request('POST', '/agents/enrollment-tokens', {
      token: operator,
      body: {},
    });
    assert.equal(refused.status, 403);
  });

  test('a token enrolls exactly one agent, whose certificate from Zenith’s CA opens its channel', async () => {
    const token = await newToken();
    const [keyA, keyB] = await Promise.all([
      newKeyAndRequest('node-a.lab'),
      newKeyAndRequest('node-b.lab'),
    ]);
    const [a, b] = await Promise.all([
      s.request('POST', '/agents/enroll', {
        body: { enrollmentToken: token, hostname: 'node-a.lab', csr: keyA.csr },
      }),
      s.request('POST', '/agents/enroll', {
        body: { enrollmentToken: token, hostname: 'node-b.lab', csr: keyB.csr },
      }),
    ]);
    assert.deepEqual(
      [a.status, b.status].sort(),
      [201, 401],
      'of two agents racing with one token, exactly one enrolls',
    );
    const enrolled = a.status === 201 ? a : b;
    const loser = a.status === 201 ? b : a;
    assert.equal(loser.body.error.code, 'ZEN_TOKEN_EXPIRED');
    assert.equal(enrolled.body.token, undefined, 'no bearer credentials any more');

    const certificate = new X509Certificate(enrolled.body.certificate.certificate);
    const ca = new X509Certificate(enrolled.body.caCertificate);
    assert.ok(ca.ca, 'the CA certificate is a CA');
    assert.ok(certificate.verify(ca.publicKey), 'signed by Zenith’s CA');
    assert.match(certificate.subject, new RegExp(`CN=${enrolled.body.agent.id}`));
    assert.match(certificate.subjectAltName ?? '', /urn:zenith:identity:svc_/);
    assert.equal(
      Date.parse(certificate.validTo) - Date.parse(certificate.validFrom),
      validityMs,
      'the validity configured',
    );

    const channel = await openChannel({
      certificate: enrolled.body.certificate.certificate,
      privateKey: a.status === 201 ? keyA.privateKey : keyB.privateKey,
    });
    assert.equal(channel.answer.type, 'welcome', JSON.stringify(channel.answer));
    assert.equal(channel.answer.renewInMs, Math.round((validityMs * 2) / 3));
    assert.equal(await agentState(enrolled.body.agent.id), 'connected');
    // Three missed heartbeats: disconnected; one over the channel: connected again.
    await clock.advance(20_000);
    assert.equal(await agentState(enrolled.body.agent.id), 'disconnected');
    channel.socket.send(JSON.stringify({ type: 'heartbeat', facts: { 'cpu.count': 8 } }));
    await until('the heartbeat', async () =>
      (await agentState(enrolled.body.agent.id)) === 'connected' ? true : undefined,
    );
    channel.socket.close();
  });

  test('a bad CSR is refused without using the token up', async () => {
    const token = await newToken();
    const refused = await s.request('POST', '/agents/enroll', {
      body: { enrollmentToken: token, hostname: 'node-f.lab', csr: 'not a CSR' },
    });
    assert.equal(refused.status, 400);
    assert.equal(refused.body.error.code, 'ZEN_BAD_REQUEST');
    const { csr } = await newKeyAndRequest('node-f.lab');
    const enrolled = await s.request('POST', '/agents/enroll', {
      body: { enrollmentToken: token, hostname: 'node-f.lab', csr },
    });
    assert.equal(enrolled.status, 201, JSON.stringify(enrolled.body));
  });

  test('a certificate from another CA, or without its key, is refused with a code', async () => {
    const agent = await enroll('node-g.lab');
    // Same subject, same shape, but self-made: not signed by Zenith's CA.
    const algorithm = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
    const keys = await webcrypto.subtle.generateKey(algorithm, true, ['sign', 'verify']);
    const forged = await X509CertificateGenerator.createSelfSigned({
      serialNumber: '01',
      name: `CN=${agent.agentId}, O=Zenith agents`,
      notBefore: new Date(clock.now() - 1000),
      notAfter: new Date(clock.now() + 86_400_000),
      keys: keys as never,
      signingAlgorithm: algorithm,
    });
    const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey));
    const other = await openChannel({
      certificate: forged.toString('pem'),
      privateKey: `-----BEGIN PRIVATE KEY-----\n${pkcs8.toString('base64')}\n-----END PRIVATE KEY-----\n`,
    });
    assert.equal(other.answer.error?.code, 'ZEN_CERTIFICATE_INVALID');
    assert.equal((await other.closed).code, 4401);

    // The real certificate, but the challenge signed with another key: no proof of possession.
    const stranger = await newKeyAndRequest('x');
    const stolen = await openChannel({
      certificate: agent.certificate,
      privateKey: stranger.privateKey,
    });
    assert.equal(stolen.answer.error?.code, 'ZEN_CERTIFICATE_INVALID');

    const garbage = await openChannel({ certificate: 'nonsense', privateKey: agent.privateKey });
    assert.equal(garbage.answer.error?.code, 'ZEN_CERTIFICATE_INVALID');
    assert.equal(await agentState(agent.agentId), 'connected', 'enrollment counts as seen');
  });

  test('an agent renews over its channel; the old certificate is revoked once the new one is kept', async () => {
    const agent = await enroll('node-h.lab');
    const channel = await openChannel(agent);
    assert.equal(channel.answer.type, 'welcome');
    const bad = channel.next('renew-failed');
    channel.socket.send(JSON.stringify({ type: 'renew', csr: 'garbage' }));
    assert.equal(((await bad).error as { code: string }).code, 'ZEN_BAD_REQUEST');

    await clock.advance((validityMs * 2) / 3);
    const next = await newKeyAndRequest('node-h.lab');
    const renewed = channel.next('renewed');
    channel.socket.send(JSON.stringify({ type: 'renew', csr: next.csr }));
    const answer = await renewed;
    assert.equal(answer.renewInMs, Math.round((validityMs * 2) / 3));
    const [first, second] = await certificatesOf(agent.agentId);
    assert.equal(second?.replaces, first?.serial);
    assert.equal(first?.revokedAt, null, 'the old one stays good until the agent has switched');
    channel.socket.send(JSON.stringify({ type: 'switched' }));
    await until('the old certificate revoked', async () =>
      (await certificatesOf(agent.agentId))[0]?.revokedAt ? true : undefined,
    );
    assert.equal((await certificatesOf(agent.agentId))[0]?.revokedReason, 'superseded');
    channel.socket.close();

    const withOld = await openChannel(agent);
    assert.equal(withOld.answer.error?.code, 'ZEN_CREDENTIAL_REVOKED');
    const withNew = await openChannel({
      certificate: String(answer.certificate),
      privateKey: next.privateKey,
    });
    assert.equal(withNew.answer.type, 'welcome');
    assert.equal(withNew.answer.serial, second?.serial);
    withNew.socket.close();
  });

  test('an expired certificate is refused with ZEN_CERTIFICATE_EXPIRED', async () => {
    const agent = await enroll('node-i.lab');
    assert.equal((await openChannel(agent)).answer.type, 'welcome');
    await clock.advance(validityMs + 1000);
    const late = await openChannel(agent);
    assert.equal(late.answer.error?.code, 'ZEN_CERTIFICATE_EXPIRED');
  });

  test('revoking an agent closes its channel at once and its certificate is refused after', async () => {
    const agent = await enroll('node-j.lab');
    const channel = await openChannel(agent);
    assert.equal(channel.answer.type, 'welcome');
    const revoked = await s.request('DELETE', `/agents/${agent.agentId}`, { token: admin });
    assert.equal(revoked.body.state, 'revoked');
    const closed = await channel.closed;
    assert.equal(closed.code, 4403);
    assert.match(closed.reason, /ZEN_CREDENTIAL_REVOKED/);
    const [certificate] = await certificatesOf(agent.agentId);
    assert.equal(certificate?.revokedReason, 'agent revoked');
    const again = await openChannel(agent);
    assert.equal(again.answer.error?.code, 'ZEN_CREDENTIAL_REVOKED');
  });

  test('an agent is a service identity: bindings name it, and what it reports never widens its access', async () => {
    const agent = await enroll('node-k.lab');
    const identityId = (await s.request('GET', '/agents', { token: admin })).body.items.find(
      (a: { id: string }) => a.id === agent.agentId,
    ).identityId as string;
    const binding = await s.request('POST', '/role-bindings', {
      token: admin,
      body: { subject: identityId, role: 'viewer', condition: "subject['cpu.count'] >= 8" },
    });
    assert.equal(binding.status, 201, JSON.stringify(binding.body));
    const explain = async () =>
      (
        await s.request('GET', `/access/explain?identity=${identityId}&permission=inventory.read`, {
          token: admin,
        })
      ).body;
    const channel = await openChannel(agent);
    // The agent claims 16 CPUs: its host's facts are its own report, not data that decides access.
    channel.socket.send(JSON.stringify({ type: 'heartbeat', facts: { 'cpu.count': 16 } }));
    await until('the heartbeat with 16 CPUs', async () => {
      const facts = (
        (await s.request('GET', '/agents', { token: admin })).body.items as Array<{
          id: string;
          facts: Record<string, unknown>;
        }>
      ).find((a) => a.id === agent.agentId)?.facts;
      return facts?.['cpu.count'] === 16 ? true : undefined;
    });
    const denied = await explain();
    assert.equal(denied.allowed, false, JSON.stringify(denied));
    assert.equal(denied.conditions[0].held, false);
    // Attributes an identity manager sets are what conditions read.
    const attributes = await s.request('PATCH', `/users/${identityId}`, {
      token: admin,
      body: { attributes: { 'cpu.count': 16 } },
    });
    assert.equal(attributes.status, 200, JSON.stringify(attributes.body));
    const allowed = await explain();
    assert.equal(allowed.allowed, true, JSON.stringify(allowed));
    assert.equal(allowed.binding.id, binding.body.id);
    channel.socket.close();
  });

  test('an expired or forged enrollment token is refused', async () => {
    const { csr } = await newKeyAndRequest('node-e.lab');
    const token = await newToken();
    await clock.advance(31 * 60_000);
    const expired = await s.request('POST', '/agents/enroll', {
      body: { enrollmentToken: token, hostname: 'node-e.lab', csr },
    });
    assert.equal(expired.body.error.code, 'ZEN_TOKEN_EXPIRED');
    const forged = await s.request('POST', '/agents/enroll', {
      body: {
        enrollmentToken: `${token.split('.')[0]}.not-the-secret`,
        hostname: 'node-e.lab',
        csr,
      },
    });
    assert.equal(forged.body.error.code, 'ZEN_UNAUTHENTICATED');
    const badHost = await s.request('POST', '/agents/enroll', {
      body: { enrollmentToken: await newToken(), hostname: 'not a host!', csr },
    });
    assert.equal(badHost.body.error.code, 'ZEN_BAD_REQUEST');
  });
});

describe('agent host names', () => {
  const clock = new ManualClock(Math.floor(Date.now() / 1000) * 1000);
  let s: TestServer;
  let admin: string;
  before(async () => {
    s = await startTestServer({ clock, agentCertificateValidityMs: validityMs });
    admin = await s.login();
  });
  after(async () => s.close());

  const newToken = async () =>
    (
      await s.request('POST', '/agents/enrollment-tokens', {
        token: admin,
        body: { ttlMinutes: 30 },
      })
    ).body.token as string;
  const enrollAs = async (hostname: string, token?: string) => {
    const { csr } = await newKeyAndRequest(hostname);
    return s.request('POST', '/agents/enroll', {
      body: { enrollmentToken: token ?? (await newToken()), hostname, csr },
    });
  };
  const agentConnections = async () =>
    (
      (await s.request('GET', '/connections', { token: admin })).body.items as Array<{
        id: string;
        name: string;
        type: string;
        settings: { agentId?: string };
      }>
    ).filter((c) => c.type === 'agent');

  test('the name of a host of another connection is refused with a conflict, without using the token up', async () => {
    await s.addSimulatedFleet(admin, { timeScale: 0, hostsPerCluster: 1, vmsPerHost: 0 });
    const host = (await s.request('GET', '/hosts?limit=1', { token: admin })).body.items[0];
    const token = await newToken();
    for (const name of [host.name, String(host.name).toUpperCase()]) {
      const refused = await enrollAs(name, token);
      assert.deepEqual([refused.status, refused.body.error.code], [409, 'ZEN_CONFLICT'], name);
      assert.equal(refused.body.error.details.hostId, host.id);
    }
    assert.equal((await s.request('GET', `/hosts/${host.name}`, { token: admin })).status, 200);
    const elsewhere = await enrollAs('node-free.lab', token);
    assert.equal(elsewhere.status, 201, JSON.stringify(elsewhere.body));
  });

  test('the name of an agent that can still connect is refused; one revoked or expired is enrolled again', async () => {
    const first = await enrollAs('node-p.lab');
    assert.equal(first.status, 201, JSON.stringify(first.body));
    const twin = await enrollAs('Node-P.lab');
    assert.deepEqual([twin.status, twin.body.error.code], [409, 'ZEN_CONFLICT']);
    assert.equal(twin.body.error.details.agentId, first.body.agent.id);

    // Revoked: the host enrolls again and takes over its connection (same host, same objects).
    const before = (await agentConnections()).find(
      (c) => c.settings.agentId === first.body.agent.id,
    );
    assert.ok(before);
    await s.request('DELETE', `/agents/${first.body.agent.id}`, { token: admin });
    const again = await enrollAs('node-p.lab');
    assert.equal(again.status, 201, JSON.stringify(again.body));
    const after = (await agentConnections()).filter((c) => c.name.startsWith('agent-node-p.lab'));
    assert.deepEqual(
      after.map((c) => [c.id, c.settings.agentId]),
      [[before.id, again.body.agent.id]],
    );

    // Certificates all expired: the documented way back is to enroll again.
    const lapsed = await enrollAs('node-q.lab');
    assert.equal(lapsed.status, 201);
    assert.equal((await enrollAs('node-q.lab')).status, 409);
    await clock.advance(validityMs + 1000);
    const renewed = await enrollAs('node-q.lab');
    assert.equal(renewed.status, 201, JSON.stringify(renewed.body));
  });
});
