/**
 * No request goes unaudited: a body nested too deep is refused at parse time and its refusal is
 * recorded, and when the trail cannot be written the server fails closed for changes and says so
 * in its log rather than dropping the record.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { sql } from 'kysely';
import { captureLogs } from '../../src/testing/log-capture.js';
import {
  startTestServer,
  type ApiAnswer,
  type TestServer,
} from '../../src/testing/control-plane.js';

const nested = (depth: number, inner: string) => `${'['.repeat(depth)}${inner}${']'.repeat(depth)}`;

describe('audit records of refused and failing requests', () => {
  const logs = captureLogs();
  let s: TestServer;
  let admin: string;
  before(async () => {
    s = await startTestServer({ logger: logs.logger });
    admin = await s.login();
  });
  after(async () => s.close());

  const newest = async (action: string) =>
    (await s.request('GET', `/audit?action=${action}&limit=1`, { token: admin })).body.items[0];

  test('a body nested deeper than 64 levels is a coded 400, and the refusal is audited', async () => {
    for (const depth of [65, 100_000]) {
      const answer = await s.request('POST', '/groups', {
        token: admin,
        body: `{"name": ${nested(depth, '"x"')}, "password": "hunter2-hunter2"}`,
      });
      assert.equal(answer.status, 400, JSON.stringify(answer.body).slice(0, 300));
      assert.equal(answer.body.error.code, 'ZEN_BAD_REQUEST');
      assert.equal(answer.body.error.details.maxDepth, 64);
      const record = await newest('group.create');
      assert.deepEqual(
        [record?.actorName, record?.result, record?.errorCode],
        ['admin', 'failed', 'ZEN_BAD_REQUEST'],
        `depth ${depth}`,
      );
      await s.request('DELETE', '/groups/placeholder', { token: admin });
    }
    // Brackets inside strings are text, not nesting; 64 levels are parsed (and judged by the schema).
    const text = await s.request('POST', '/groups', {
      token: admin,
      body: { name: 'brackets', description: '['.repeat(400) },
    });
    assert.equal(text.status, 201, JSON.stringify(text.body));
    const deepest = await s.request('POST', '/groups', {
      token: admin,
      body: `{"name": ${nested(63, '"x"')}}`,
    });
    assert.equal(deepest.status, 400);
    assert.equal(deepest.body.error.details.issues?.[0]?.path, 'body/name');
    assert.equal((await s.request('POST', '/audit/verify', { token: admin })).body.ok, true);
  });

  test('while the trail cannot be written, changes are refused with 503 and the lost record is logged', async () => {
    const db = s.plane.store.db;
    await sql`create trigger audit_unwritable before insert on audit begin select raise(abort, 'disk full (test)'); end`.execute(
      db,
    );
    // The request that finds the trail failing ran; its answer is withheld, its record logged.
    const first = await s.request('POST', '/groups', { token: admin, body: { name: 'first' } });
    assert.equal(first.status, 503, JSON.stringify(first.body));
    assert.equal(first.body.error.code, 'ZEN_AUDIT_UNAVAILABLE');
    const logged = logs
      .lines()
      .find(
        (line) =>
          line.msg === 'audit append failed' && line.reqId === first.body.error.details.requestId,
      );
    assert.ok(logged, 'the record that could not be written is in the log');
    const record = logged.audit as ApiAnswer;
    assert.deepEqual(
      [record.action, record.actor.name, record.params.body.name],
      ['group.create', 'admin', 'first'],
    );
    // Later changes are refused before they run; reads go on.
    const second = await s.request('POST', '/groups', { token: admin, body: { name: 'second' } });
    assert.deepEqual([second.status, second.body.error.code], [503, 'ZEN_AUDIT_UNAVAILABLE']);
    assert.equal((await s.request('GET', '/groups/second', { token: admin })).status, 404);
    const login = await s.request('POST', '/auth/login', {
      body: { username: 'admin', password: 'admin-password-for-tests' },
    });
    assert.deepEqual([login.status, login.body.error?.code], [503, 'ZEN_AUDIT_UNAVAILABLE']);
    assert.equal((await s.request('GET', '/groups', { token: admin })).status, 200);

    await sql`drop trigger audit_unwritable`.execute(db);
    // The next refusal's own record is written: from then on changes run again.
    const probe = await s.request('POST', '/groups', { token: admin, body: { name: 'third' } });
    assert.equal(probe.status, 503);
    assert.deepEqual(
      [(await newest('group.create'))?.result, (await newest('group.create'))?.errorCode],
      ['failed', 'ZEN_AUDIT_UNAVAILABLE'],
    );
    const third = await s.request('POST', '/groups', { token: admin, body: { name: 'third' } });
    assert.equal(third.status, 201, JSON.stringify(third.body));
    assert.equal((await newest('group.create'))?.result, 'succeeded');
    assert.equal((await s.request('POST', '/audit/verify', { token: admin })).body.ok, true);
  });
});
