import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  startTestServer,
  type ApiAnswer,
  type TestServer,
} from '../../src/testing/control-plane.js';

describe('audit records filtered by the name of their actor', () => {
  let s: TestServer;
  let admin: string;
  before(async () => {
    s = await startTestServer();
    admin = await s.login();
    const created = await s.request('POST', '/users', {
      token: admin,
      body: { name: 'olga', role: 'operator', password: 'olga-password-123' },
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    await s.login('olga', 'olga-password-123');
    // A failed login is recorded under the name that was typed.
    await s.request('POST', '/auth/login', {
      body: { username: 'mallory', password: 'x'.repeat(12) },
    });
  });
  after(async () => s.close());

  test('actorName holds only that actor’s records, a failed login included', async () => {
    const olga = await s.request('GET', '/audit?actorName=olga', { token: admin });
    assert.equal(olga.status, 200, JSON.stringify(olga.body));
    assert.ok(olga.body.items.length >= 1);
    assert.ok(olga.body.items.every((r: ApiAnswer) => r.actorName === 'olga'));
    assert.ok(olga.body.items.some((r: ApiAnswer) => r.action === 'auth.login'));
    const mallory = await s.request('GET', '/audit?actorName=mallory&action=auth.', {
      token: admin,
    });
    assert.deepEqual(
      mallory.body.items.map((r: ApiAnswer) => [r.action, r.result]),
      [['auth.login', 'failed']],
    );
    const nobody = await s.request('GET', '/audit?actorName=nobody-at-all', { token: admin });
    assert.deepEqual(nobody.body.items, []);
    const tooLong = await s.request('GET', `/audit?actorName=${'a'.repeat(201)}`, { token: admin });
    assert.equal(tooLong.status, 400);
  });
});
