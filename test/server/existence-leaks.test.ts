/**
 * A refusal tells nothing about what the caller may not read: such an object, user or group answers
 * exactly as one that does not exist (404), and a 403 comes only for what it may read.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { DiscoveredObject } from '../../src/hypervisors/driver.js';
import {
  startTestServer,
  type ApiAnswer,
  type TestServer,
} from '../../src/testing/control-plane.js';

const objects: DiscoveredObject[] = (['a', 'b', 'c'] as const).flatMap((dc): DiscoveredObject[] => [
  { kind: 'datacenter', externalId: `dc-${dc}`, name: `dc-${dc}`, parent: null, facts: {} },
  {
    kind: 'host',
    externalId: `h-${dc}`,
    name: `host-${dc}`,
    parent: { kind: 'datacenter', externalId: `dc-${dc}` },
    facts: {},
  },
  // A VM of the same name in each datacenter.
  {
    kind: 'vm',
    externalId: `twin-${dc}`,
    name: 'twin',
    parent: { kind: 'host', externalId: `h-${dc}` },
    hostExternalId: `h-${dc}`,
    powerState: 'running',
    facts: {},
  } as DiscoveredObject,
]);

/** The answer with the name or id asked for replaced, to compare two refusals. */
const shape = (answer: { status: number; body: ApiAnswer }, asked: string) => [
  answer.status,
  JSON.stringify(answer.body).replaceAll(asked, 'ASKED'),
];

describe('what refusals tell', () => {
  let s: TestServer;
  let admin: string;
  let vic: string;
  before(async () => {
    s = await startTestServer();
    admin = await s.login();
    await s.plane.inventory.applySnapshot('conn_TEST', objects);
    await s.plane.identities.createUser({
      name: 'vic',
      role: 'none',
      password: 'vic-password-long',
    });
    const post = (path: string, body: unknown) => s.request('POST', path, { token: admin, body });
    await post('/roles', { name: 'reader', permissions: ['inventory.read'] });
    await post('/roles', { name: 'power', permissions: ['vm.power'] });
    // vic reads datacenter A, and may power VMs in datacenter B only.
    for (const [role, scope] of [
      ['reader', 'dc-a'],
      ['power', 'dc-b'],
    ])
      assert.equal((await post('/role-bindings', { subject: 'vic', role, scope })).status, 201);
    vic = await s.login('vic', 'vic-password-long');
  });
  after(async () => s.close());

  const vmIn = (dc: string) =>
    s.plane.inventory.index
      .ofKind('vm')
      .find(
        (vm) =>
          s.plane.inventory.index.get(vm.parentId!)?.parentId === s.plane.inventory.lookup(dc).id,
      )!.id;

  test('an object the caller may not read answers as one that does not exist', async () => {
    const hidden = vmIn('dc-c');
    const absent = `${hidden.slice(0, -6)}ZZZZZZ`;
    for (const [method, suffix] of [
      ['GET', ''],
      ['GET', '/location-history'],
      ['POST', '/stop'],
    ] as const) {
      const seen = await s.request(method, `/vms/${hidden}${suffix}`, { token: vic });
      const none = await s.request(method, `/vms/${absent}${suffix}`, { token: vic });
      assert.equal(seen.status, 404, `${method} ${suffix}: ${JSON.stringify(seen.body)}`);
      assert.deepEqual(shape(seen, hidden), shape(none, absent), `${method} ${suffix}`);
    }
    // Holding the permission asked on it is enough to act on it, unread (its connection is a fake).
    const powered = await s.request('POST', `/vms/${vmIn('dc-b')}/stop`, { token: vic });
    assert.equal(powered.body.error?.code, 'ZEN_CONNECTION_DISCONNECTED');
  });

  test('a 403 only for what the caller may read, naming none of what it may not', async () => {
    const readable = vmIn('dc-a');
    const refused = await s.request('POST', `/vms/${readable}/stop`, { token: vic });
    assert.deepEqual([refused.status, refused.body.error.code], [403, 'ZEN_FORBIDDEN']);
    const text = JSON.stringify(refused.body);
    assert.ok(!text.includes(s.plane.inventory.lookup('dc-b').id), text);
    assert.ok(!text.includes('dc-b'), text);
  });

  test('a name shared with objects the caller may not read finds the one it may', async () => {
    const answer = await s.request('GET', '/vms/twin', { token: vic });
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
    assert.equal(answer.body.id, vmIn('dc-a'));
    // An administrator reads both, and is asked to use an id.
    const both = await s.request('GET', '/vms/twin', { token: admin });
    assert.deepEqual([both.status, both.body.error.code], [409, 'ZEN_CONFLICT']);
  });

  test("someone else's password: as if there were no such user, for whoever may not manage identities", async () => {
    const body = { password: 'a-new-password-1' };
    const existing = await s.request('POST', '/users/admin/password', { token: vic, body });
    const missing = await s.request('POST', '/users/nobody-here/password', { token: vic, body });
    assert.equal(existing.status, 404, JSON.stringify(existing.body));
    assert.deepEqual(shape(existing, 'admin'), shape(missing, 'nobody-here'));
  });
});
