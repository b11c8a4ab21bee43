/**
 * An empty string where an id is expected names nothing: it is refused with a coded 400 and
 * nothing is written, never read as "none" (a role binding on everything, a group without a
 * parent).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { createBinding, listBindings } from '../../src/api/access.js';
import { isZenithError } from '../../src/api/errors.js';
import { createResourceGroup, listObjects } from '../../src/api/inventory.js';
import { createUser } from '../../src/api/users.js';
import { startTestServer, type TestServer } from '../../src/testing/control-plane.js';

describe('empty ids', () => {
  let s: TestServer;
  let admin: string;

  before(async () => {
    s = await startTestServer();
    admin = await s.login();
    await s.addSimulatedFleet(admin, { timeScale: 0, vmsPerHost: 1 });
    await s.client(admin).call(createUser, {
      body: { name: 'eve', role: 'none', password: 'a-password-for-eve' },
    });
  });
  after(async () => s.close());

  const bindingsOfEve = async () =>
    (await s.client(admin).call(listBindings, { query: { subject: 'eve' } })).items;
  /** Refused with this code (the typed client throws the coded error of an error answer). */
  const refusedWith = (code: string) => (error: unknown) =>
    isZenithError(error) && error.code === code;

  test('a role binding with scope "" is refused (400, ZEN_BAD_REQUEST) and none is made', async () => {
    await assert.rejects(
      s.client(admin).call(createBinding, { body: { subject: 'eve', role: 'admin', scope: '' } }),
      refusedWith('ZEN_BAD_REQUEST'),
    );
    assert.deepEqual(await bindingsOfEve(), []);
    // Eve can still do nothing anywhere.
    const eve = await s.login('eve', 'a-password-for-eve');
    assert.equal((await s.request('GET', '/users', { token: eve })).status, 403);
  });

  test('the access service refuses scope "" too, whoever calls it', async () => {
    await assert.rejects(
      s.plane.access.createBinding({ subject: 'eve', role: 'admin', scope: '' }, 'test'),
      refusedWith('ZEN_BAD_REQUEST'),
    );
    assert.deepEqual(await bindingsOfEve(), []);
  });

  test('a resource group with parentId "" is refused (400) and no group is stored', async () => {
    await assert.rejects(
      s.client(admin).call(createResourceGroup, { body: { name: 'orphan', parentId: '' } }),
      refusedWith('ZEN_BAD_REQUEST'),
    );
    const objects = await s.client(admin).call(listObjects, { query: { limit: 1000 } });
    assert.deepEqual(
      objects.items.filter((object) => object.kind === 'resourceGroup'),
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
