/**
 * An empty string where an id is expected names nothing: it is refused with a coded 400 and
 * nothing is written, never read as "none" (a role binding on everything, a group without a
 * parent).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { isZenithError } from '../../src/core/errors.js';
import { startTestServer, type TestServer } from '../../src/testing/control-plane.js';

describe('empty ids', () => {
  let s: TestServer;
  let admin: string;

  before(async () => {
    s = await startTestServer();
    admin = await s.login();
    await s.addSimulatedFleet(admin, { timeScale: 0, vmsPerHost: 1 });
    const created = await s.request('POST', '/users', {
      token: admin,
      body: { name: 'eve', role: 'none', password: 'a-password-for-eve' },
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
  });
  after(async () => s.close());

  const bindingsOfEve = async () =>
    (await s.request('GET', '/role-bindings?subject=eve', { token: admin })).body
      .items as unknown[];

  test('a role binding with scope "" is refused (400, ZEN_BAD_REQUEST) and none is made', async () => {
    const answer = await s.request('POST', '/role-bindings', {
      token: admin,
      body: { subject: 'eve', role: 'admin', scope: '' },
    });
    assert.equal(answer.status, 400, JSON.stringify(answer.body));
    assert.equal(answer.body.error.code, 'ZEN_BAD_REQUEST');
    assert.deepEqual(await bindingsOfEve(), []);
    // Eve can still do nothing anywhere.
    const eve = await s.login('eve', 'a-password-for-eve');
    assert.equal((await s.request('GET', '/users', { token: eve })).status, 403);
  });

  test('the access service refuses scope "" too, whoever calls it', async () => {
    await assert.rejects(
      s.plane.access.createBinding({ subject: 'eve', role: 'admin', scope: '' }, 'test'),
      (error) => isZenithError(error) && error.code === 'ZEN_BAD_REQUEST',
    );
    assert.deepEqual(await bindingsOfEve(), []);
  });

  test('a resource group with parentId "" is refused (400) and no group is stored', async () => {
    const answer = await s.request('POST', '/resource-groups', {
      token: admin,
      body: { name: 'orphan', parentId: '' },
    });
    assert.equal(answer.status, 400, JSON.stringify(answer.body));
    assert.equal(answer.body.error.code, 'ZEN_BAD_REQUEST');
    const objects = await s.request('GET', '/objects?limit=1000', { token: admin });
    assert.equal(objects.status, 200, JSON.stringify(objects.body));
    assert.deepEqual(
      (objects.body.items as { kind: string; name: string }[]).filter(
        (object) => object.kind === 'resourceGroup',
      ),
      [],
    );
  });

  test('filters with an empty id are refused rather than read as "any"', async () => {
    for (const path of ['/role-bindings?scope=', '/tasks?targetId=', '/events?objectId=']) {
      const answer = await s.request('GET', path, { token: admin });
      assert.equal(answer.status, 400, `${path}: ${JSON.stringify(answer.body)}`);
      assert.equal(answer.body.error.code, 'ZEN_BAD_REQUEST');
    }
  });
});
