import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { ManualClock } from '../../src/core/clock.js';
import { startTestServer, type TestServer } from '../../src/testing/control-plane.js';

const t0 = Date.UTC(2026, 8, 1);
const minute = 60_000;
const day = 24 * 60 * minute;
const card = (effectiveFrom: number, vcpuHour: string) => ({
  effectiveFrom,
  currency: 'EUR',
  timeZone: 'UTC',
  rates: [{ vcpuHour }],
});

describe('withdrawing a rate card version', () => {
  const clock = new ManualClock(t0);
  let s: TestServer;
  let admin: string;
  before(async () => {
    s = await startTestServer({ clock });
    admin = await s.login();
  });
  after(async () => s.close());

  test('a version not yet in effect can be withdrawn; one in effect is refused with ZEN_RATE_CARD_IN_EFFECT', async () => {
    const post = (body: unknown) =>
      s.request('POST', '/accounting/rate-cards', { token: admin, body });
    assert.equal((await post(card(t0, '0.01'))).status, 201);
    const future = await post(card(t0 + 7 * day, '0.02'));
    assert.equal(future.status, 201);

    const withdrawn = await s.request('DELETE', `/accounting/rate-cards/${future.body.id}`, {
      token: admin,
    });
    assert.equal(withdrawn.status, 200, JSON.stringify(withdrawn.body));
    assert.equal(withdrawn.body.version, 2);
    const list = await s.request('GET', '/accounting/rate-cards', { token: admin });
    assert.deepEqual(
      list.body.items.map((c: { version: number }) => c.version),
      [1],
    );

    const inEffect = await s.request('DELETE', '/accounting/rate-cards/1', { token: admin });
    assert.equal(inEffect.status, 409);
    assert.equal(inEffect.body.error.code, 'ZEN_RATE_CARD_IN_EFFECT');

    // A later version that has since taken effect is refused too, by its number.
    assert.equal((await post(card(t0 + 10 * minute, '0.03'))).status, 201);
    await clock.advance(10 * minute);
    const nowInEffect = await s.request('DELETE', '/accounting/rate-cards/2', { token: admin });
    assert.equal(nowInEffect.body.error.code, 'ZEN_RATE_CARD_IN_EFFECT');
    const unknown = await s.request('DELETE', '/accounting/rate-cards/99', { token: admin });
    assert.equal(unknown.status, 404);
    assert.equal(unknown.body.error.code, 'ZEN_NOT_FOUND');
    assert.equal(
      (await s.request('GET', '/accounting/rate-cards', { token: admin })).body.items.length,
      2,
      'nothing else was removed',
    );
  });
});
