/**
 * Changing a password takes the account back: one's own needs the current password, and every other
 * way in (other sessions, API tokens) ends with the change, so a stolen session cannot keep the account.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startTestServer, type TestServer } from '../../src/testing/control-plane.js';

describe('password changes', () => {
  let s: TestServer;
  let admin: string;
  before(async () => {
    s = await startTestServer();
    admin = await s.login();
    for (const name of ['pat', 'quinn'])
      assert.equal(
        (
          await s.request('POST', '/users', {
            token: admin,
            body: { name, role: 'viewer', password: `${name}-first-password` },
          })
        ).status,
        201,
      );
  });
  after(async () => s.close());

  const me = async (token: string) => {
    const answer = await s.request('GET', '/auth/me', { token });
    return answer.status === 200 ? 'valid' : answer.body.error.code;
  };

  test('one’s own needs the current password; the change ends other sessions and API tokens', async () => {
    const session = await s.login('pat', 'pat-first-password');
    const other = await s.login('pat', 'pat-first-password');
    const minted = await s.request('POST', '/tokens', { token: other, body: { name: 'mine' } });
    assert.equal(minted.status, 201);
    const apiToken = minted.body.token as string;

    const without = await s.request('POST', '/users/me/password', {
      token: session,
      body: { password: 'pat-second-password' },
    });
    assert.deepEqual([without.status, without.body.error.code], [400, 'ZEN_BAD_REQUEST']);
    const wrong = await s.request('POST', '/users/me/password', {
      token: session,
      body: { password: 'pat-second-password', currentPassword: 'not-pats-password' },
    });
    assert.deepEqual([wrong.status, wrong.body.error.code], [403, 'ZEN_CURRENT_PASSWORD_WRONG']);
    assert.deepEqual(
      [await me(session), await me(other), await me(apiToken)],
      ['valid', 'valid', 'valid'],
      'a refused change changes nothing',
    );

    const changed = await s.request('POST', '/users/pat/password', {
      token: session,
      body: { password: 'pat-second-password', currentPassword: 'pat-first-password' },
    });
    assert.equal(changed.status, 204, JSON.stringify(changed.body));
    assert.deepEqual(
      [await me(session), await me(other), await me(apiToken)],
      ['valid', 'ZEN_TOKEN_EXPIRED', 'ZEN_TOKEN_EXPIRED'],
    );
    const old = await s.request('POST', '/auth/login', {
      body: { username: 'pat', password: 'pat-first-password' },
    });
    assert.equal(old.status, 401);
    await s.login('pat', 'pat-second-password');
    // Secrets stay out of the audit trail.
    const records = await s.request('GET', '/audit?action=identity.password&limit=5', {
      token: admin,
    });
    assert.ok(records.body.items.length >= 3);
    for (const record of records.body.items)
      assert.ok(!JSON.stringify(record.params).includes('pat-'), JSON.stringify(record.params));
  });

  test('an administrator resets someone else’s without it, ending all their sessions and tokens', async () => {
    const session = await s.login('quinn', 'quinn-first-password');
    const minted = await s.request('POST', '/tokens', { token: session, body: { name: 'ci' } });
    const reset = await s.request('POST', '/users/quinn/password', {
      token: admin,
      body: { password: 'quinn-reset-password' },
    });
    assert.equal(reset.status, 204, JSON.stringify(reset.body));
    assert.deepEqual(
      [await me(session), await me(minted.body.token as string), await me(admin)],
      ['ZEN_TOKEN_EXPIRED', 'ZEN_TOKEN_EXPIRED', 'valid'],
    );
    await s.login('quinn', 'quinn-reset-password');
    // Not an administrator: someone else's password stays out of reach.
    const pat = await s.login('pat', 'pat-second-password');
    const refused = await s.request('POST', '/users/quinn/password', {
      token: pat,
      body: { password: 'quinn-hijacked-password', currentPassword: 'pat-second-password' },
    });
    assert.ok(refused.status === 403 || refused.status === 404, JSON.stringify(refused.body));
  });

  test('wrong current passwords count like failed logins', async () => {
    const session = await s.login('quinn', 'quinn-reset-password');
    const answers: number[] = [];
    for (let i = 0; i < 6; i++)
      answers.push(
        (
          await s.request('POST', '/users/me/password', {
            token: session,
            body: { password: 'quinn-guessed-password', currentPassword: `guess-number-${i}` },
          })
        ).status,
      );
    // Five failures from this address (earlier ones included) lock further tries.
    const refused = answers.filter((status) => status === 403).length;
    assert.ok(refused >= 1 && refused <= 5, answers.join(' '));
    assert.deepEqual(
      answers.slice(refused),
      Array<number>(6 - refused).fill(429),
      answers.join(' '),
    );
    assert.equal(await me(session), 'valid');
  });
});
