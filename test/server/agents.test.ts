import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { ManualClock } from '../../src/core/clock.js';
import { startTestServer, type TestServer } from '../../src/testing/control-plane.js';

describe('agent enrollment and credentials', () => {
  const clock = new ManualClock(Date.now());
  let s: TestServer;
  let admin: string;
  before(async () => {
    s = await startTestServer({ clock });
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

  test('a token enrolls exactly one agent, which gets credentials of its own that only let it report', async () => {
    const token = await newToken();
    const [a, b] = await Promise.all([
      s.request('POST', '/agents/enroll', {
        body: { enrollmentToken: token, hostname: 'node-a.lab' },
      }),
      s.request('POST', '/agents/enroll', {
        body: { enrollmentToken: token, hostname: 'node-b.lab' },
      }),
    ]);
    const statuses = [a.status, b.status].sort();
    assert.deepEqual(
      statuses,
      [201, 401],
      'of two agents racing with one token, exactly one enrolls',
    );
    const enrolled = a.status === 201 ? a : b;
    const loser = a.status === 201 ? b : a;
    assert.equal(loser.body.error.code, 'ZEN_TOKEN_EXPIRED');
    const again = await s.request('POST', '/agents/enroll', {
      body: { enrollmentToken: token, hostname: 'node-c.lab' },
    });
    assert.equal(again.body.error.code, 'ZEN_TOKEN_EXPIRED', 'a used token cannot be reused');

    const credentials = enrolled.body.token as string;
    assert.notEqual(credentials, token);
    const beat = await s.request('POST', '/agents/heartbeat', {
      token: credentials,
      body: { facts: { 'cpu.count': 8, 'qemu.version': '7.2.0' } },
    });
    assert.equal(beat.status, 200);
    assert.equal(beat.body.state, 'connected');
    assert.equal(
      (await s.request('GET', '/vms', { token: credentials })).status,
      403,
      'an agent cannot read the inventory',
    );
    assert.equal(
      (await s.request('POST', '/agents/heartbeat', { token: admin, body: { facts: {} } })).status,
      403,
      'a person is not an agent',
    );
  });

  test('an agent that misses its heartbeats shows disconnected, and a revoked one is cut off at once', async () => {
    const enrolled = (
      await s.request('POST', '/agents/enroll', {
        body: { enrollmentToken: await newToken(), hostname: 'node-d.lab' },
      })
    ).body;
    const byHost = async () =>
      (
        (await s.request('GET', '/agents', { token: admin })).body.items as Array<{
          hostname: string;
          state: string;
        }>
      ).find((x) => x.hostname === 'node-d.lab')!;
    assert.equal((await byHost()).state, 'connected');
    await clock.advance(20_000);
    assert.equal((await byHost()).state, 'disconnected');
    await s.request('POST', '/agents/heartbeat', { token: enrolled.token, body: { facts: {} } });
    assert.equal((await byHost()).state, 'connected');
    const revoked = await s.request('DELETE', `/agents/${enrolled.agent.id}`, { token: admin });
    assert.equal(revoked.body.state, 'revoked');
    const after = await s.request('POST', '/agents/heartbeat', {
      token: enrolled.token,
      body: { facts: {} },
    });
    assert.equal(after.status, 401);
  });

  test('an expired or forged enrollment token is refused', async () => {
    const token = await newToken();
    await clock.advance(31 * 60_000);
    const expired = await s.request('POST', '/agents/enroll', {
      body: { enrollmentToken: token, hostname: 'node-e.lab' },
    });
    assert.equal(expired.body.error.code, 'ZEN_TOKEN_EXPIRED');
    const forged = await s.request('POST', '/agents/enroll', {
      body: { enrollmentToken: `${token.split('.')[0]}.not-the-secret`, hostname: 'node-e.lab' },
    });
    assert.equal(forged.body.error.code, 'ZEN_UNAUTHENTICATED');
    const badHost = await s.request('POST', '/agents/enroll', {
      body: { enrollmentToken: await newToken(), hostname: 'not a host!' },
    });
    assert.equal(badHost.body.error.code, 'ZEN_BAD_REQUEST');
  });
});
