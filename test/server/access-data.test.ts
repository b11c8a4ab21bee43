/**
 * Data that decides access — resource group selectors and members, the user
 * facts and tags that selectors and binding conditions read — is guarded like
 * a role binding: nobody widens what bindings reach past where they manage
 * access already. The reproductions of the security review's findings 1, 2
 * and 8 (docs/identity.md, "Data that decides access").
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  startTestServer,
  type ApiAnswer,
  type TestServer,
} from '../../src/testing/control-plane.js';

describe('data that decides access', () => {
  let s: TestServer;
  let admin: string;
  const tokens: Record<string, string> = {};
  let c1: ApiAnswer;
  let c2: ApiAnswer;
  let c1Host: ApiAnswer;
  let c1Vms: ApiAnswer[];
  let c2Vms: ApiAnswer[];

  const as = (who: string) => tokens[who]!;
  const ok = (answer: { status: number; body: ApiAnswer }, status = 200) => {
    assert.equal(answer.status, status, JSON.stringify(answer.body));
    return answer.body;
  };
  const refused = (answer: { status: number; body: ApiAnswer }, status: number, code: string) => {
    assert.equal(answer.status, status, JSON.stringify(answer.body));
    assert.equal(answer.body.error.code, code);
    return answer.body.error;
  };
  const visibleVms = async (who: string) =>
    ok(await s.request('GET', '/vms?limit=1000', { token: as(who) }))
      .items.map((vm: ApiAnswer) => vm.id)
      .sort();
  const groupNamed = async (name: string) =>
    (await s.request('GET', '/resource-groups?limit=1000', { token: admin })).body.items.find(
      (group: ApiAnswer) => group.name === name,
    );
  const bind = async (subject: string, role: string, scope?: string, condition?: string) =>
    ok(
      await s.request('POST', '/role-bindings', {
        token: admin,
        body: { subject, role, ...(scope ? { scope } : {}), ...(condition ? { condition } : {}) },
      }),
      201,
    );

  before(async () => {
    s = await startTestServer({ store: 'sqlite' });
    admin = await s.login();
    await s.addSimulatedFleet(admin, {
      timeScale: 0,
      clustersPerDatacenter: 2,
      hostsPerCluster: 1,
      vmsPerHost: 3,
    });
    [c1, c2] = ok(await s.request('GET', '/clusters?sort=name', { token: admin })).items;
    const vms = ok(await s.request('GET', '/vms?limit=1000', { token: admin })).items;
    c1Vms = vms.filter((vm: ApiAnswer) => vm.computed['location.clusterId'] === c1.id);
    c2Vms = vms.filter((vm: ApiAnswer) => vm.computed['location.clusterId'] === c2.id);
    assert.equal(c1Vms.length, 3);
    assert.equal(c2Vms.length, 3);
    c1Host = ok(await s.request('GET', `/objects/${c1.id}/children`, { token: admin })).items[0];
    for (const [name, permissions] of [
      ['cluster-operator', ['inventory.read', 'inventory.write', 'vm.power', 'vm.create']],
      ['reader', ['inventory.read']],
      ['power', ['inventory.read', 'vm.power']],
      ['access-admin', ['inventory.read', 'inventory.write', 'identity.manage']],
    ])
      ok(await s.request('POST', '/roles', { token: admin, body: { name, permissions } }), 201);
    for (const name of ['olga', 'vera', 'dana', 'sam', 'tina']) {
      ok(
        await s.request('POST', '/users', {
          token: admin,
          body: { name, role: 'none', password: `${name}-password-123` },
        }),
        201,
      );
      tokens[name] = await s.login(name, `${name}-password-123`);
    }
    await bind('olga', 'cluster-operator', c1.id);
  });
  after(async () => s.close());

  test('a user bound to one cluster cannot widen it with a resource group made there (finding 1)', async () => {
    const before = await visibleVms('olga');
    assert.deepEqual(before, c1Vms.map((vm) => vm.id).sort());
    const selecting = await s.request('POST', '/resource-groups', {
      token: as('olga'),
      body: { name: 'olga-all', parentId: c1.id, facts: { 'user.selector': 'kind=vm' } },
    });
    const error = refused(selecting, 403, 'ZEN_FORBIDDEN');
    assert.deepEqual(error.details.facts, ['user.selector']);
    assert.equal(await groupNamed('olga-all'), undefined, 'nothing was created');
    // A member she cannot read is not found; one she can read but not manage is refused.
    refused(
      await s.request('POST', '/resource-groups', {
        token: as('olga'),
        body: { name: 'olga-m', parentId: c1.id, facts: { 'user.members': [c2Vms[0].id] } },
      }),
      403,
      'ZEN_FORBIDDEN',
    );
    assert.equal(await groupNamed('olga-m'), undefined);
    // A plain group is hers to make (inventory.write), and deleting one is an access change.
    const plain = ok(
      await s.request('POST', '/resource-groups', {
        token: as('olga'),
        body: { name: 'olga-plain', parentId: c1.id },
      }),
      201,
    );
    refused(
      await s.request('DELETE', `/resource-groups/${plain.id}`, { token: as('olga') }),
      403,
      'ZEN_FORBIDDEN',
    );
    assert.deepEqual(await visibleVms('olga'), before);
    // She may not even read it: it answers as a VM that does not exist.
    refused(
      await s.request('POST', `/vms/${c2Vms[0].id}/stop`, { token: as('olga') }),
      404,
      'ZEN_NOT_FOUND',
    );
    ok(await s.request('DELETE', `/resource-groups/${plain.id}`, { token: admin }));
  });

  test("what a resource group picks is in the group's scope only, never its ancestors'", async () => {
    // The administrator lists a VM of cluster 2 in a group under cluster 1.
    const group = ok(
      await s.request('POST', '/resource-groups', {
        token: admin,
        body: { name: 'c1-listing', parentId: c1.id, facts: { 'user.members': [c2Vms[0].id] } },
      }),
      201,
    );
    // Olga's binding on cluster 1 reaches the group object, not what it lists.
    assert.deepEqual(await visibleVms('olga'), c1Vms.map((vm) => vm.id).sort());
    // She may not even read it: it answers as a VM that does not exist.
    refused(
      await s.request('POST', `/vms/${c2Vms[0].id}/stop`, { token: as('olga') }),
      404,
      'ZEN_NOT_FOUND',
    );
    // A binding on the group itself does reach it.
    const binding = await bind('vera', 'reader', group.id);
    assert.deepEqual(await visibleVms('vera'), [c2Vms[0].id]);
    ok(await s.request('DELETE', `/role-bindings/${binding.id}`, { token: admin }));
    ok(await s.request('DELETE', `/resource-groups/${group.id}`, { token: admin }));
  });

  test("a selector picks only inside its group's parent", async () => {
    const group = ok(
      await s.request('POST', '/resource-groups', {
        token: admin,
        body: { name: 'c1-vms', parentId: c1.id, facts: { 'user.selector': 'kind=vm' } },
      }),
      201,
    );
    const binding = await bind('vera', 'reader', group.id);
    assert.deepEqual(await visibleVms('vera'), c1Vms.map((vm) => vm.id).sort());
    const explained = ok(
      await s.request(
        'GET',
        `/access/explain?identity=vera&permission=inventory.read&object=${c2Vms[0].id}`,
        { token: admin },
      ),
    );
    assert.equal(explained.allowed, false);
    ok(await s.request('DELETE', `/role-bindings/${binding.id}`, { token: admin }));
    ok(await s.request('DELETE', `/resource-groups/${group.id}`, { token: admin }));
  });

  test('a delegated group administrator cannot point the group at what she does not manage (finding 2)', async () => {
    const delegated = ok(
      await s.request('POST', '/resource-groups', { token: admin, body: { name: 'delegated' } }),
      201,
    );
    await bind('dana', 'access-admin', delegated.id);
    await bind('dana', 'reader');
    const before = await visibleVms('dana');
    const error = refused(
      await s.request('PATCH', `/objects/${delegated.id}`, {
        token: as('dana'),
        body: { facts: { 'user.selector': 'kind=vm' } },
      }),
      403,
      'ZEN_FORBIDDEN',
    );
    assert.deepEqual(error.details.facts, ['user.selector']);
    refused(
      await s.request('POST', `/resource-groups/${delegated.id}/members`, {
        token: as('dana'),
        body: { object: c2Vms[1].id },
      }),
      403,
      'ZEN_FORBIDDEN',
    );
    refused(
      await s.request('PATCH', `/objects/${delegated.id}`, {
        token: as('dana'),
        body: { facts: { 'user.members': [c2Vms[1].id] } },
      }),
      403,
      'ZEN_FORBIDDEN',
    );
    const unchanged = ok(await s.request('GET', `/objects/${delegated.id}`, { token: admin }));
    assert.deepEqual(unchanged.userFacts, {});
    // Her power through the group still reaches nothing: she may not start a VM elsewhere.
    await bind('dana', 'power', delegated.id);
    refused(
      await s.request('POST', `/vms/${c2Vms[1].id}/start`, { token: as('dana') }),
      403,
      'ZEN_FORBIDDEN',
    );
    assert.deepEqual(await visibleVms('dana'), before);

    // Where she does manage access (cluster 1), a group of hers may select there, and only there.
    await bind('dana', 'access-admin', c1.id);
    const own = ok(
      await s.request('POST', '/resource-groups', {
        token: as('dana'),
        body: { name: 'dana-c1', parentId: c1.id, facts: { 'user.selector': 'kind=vm' } },
      }),
      201,
    );
    const reach = await bind('tina', 'reader', own.id);
    assert.deepEqual(await visibleVms('tina'), c1Vms.map((vm) => vm.id).sort());
    // A bad selector is refused with the filter's own code, and nothing is written.
    refused(
      await s.request('PATCH', `/objects/${own.id}`, {
        token: as('dana'),
        body: { facts: { 'user.selector': 'cpu.count>lots' } },
      }),
      400,
      'ZEN_BAD_FILTER',
    );
    ok(await s.request('DELETE', `/role-bindings/${reach.id}`, { token: admin }));
  });

  test('facts a binding condition reads are changed only by identity managers (finding 8)', async () => {
    ok(
      await s.request('PATCH', '/users/sam', {
        token: admin,
        body: { attributes: { department: 'eng' } },
      }),
    );
    await bind('sam', 'power', undefined, 'subject.department == object.user.costCenter');
    const target = c1Vms[2];
    // Sam may write facts on the target, but not power it: the condition does not hold there.
    ok(
      await s.request('POST', '/roles', {
        token: admin,
        body: { name: 'fact-writer', permissions: ['inventory.read', 'inventory.write'] },
      }),
      201,
    );
    await bind('sam', 'fact-writer', target.id);
    // Cluster 2 is where he manages access.
    await bind('sam', 'access-admin', c2.id);
    refused(
      await s.request('POST', `/vms/${target.id}/stop`, { token: as('sam') }),
      403,
      'ZEN_FORBIDDEN',
    );
    const error = refused(
      await s.request('PATCH', `/objects/${target.id}`, {
        token: as('sam'),
        body: { facts: { 'user.costCenter': 'eng' } },
      }),
      403,
      'ZEN_FORBIDDEN',
    );
    assert.deepEqual(error.details.facts, ['user.costCenter']);
    refused(
      await s.request('POST', `/vms/${target.id}/stop`, { token: as('sam') }),
      403,
      'ZEN_FORBIDDEN',
    );
    // Facts no condition reads stay his to write.
    ok(
      await s.request('PATCH', `/objects/${target.id}`, {
        token: as('sam'),
        body: { facts: { 'user.note': 'checked' } },
      }),
    );
    // Where he manages access (cluster 2) he may set it, as may an administrator anywhere.
    ok(
      await s.request('PATCH', `/objects/${c2Vms[2].id}`, {
        token: as('sam'),
        body: { facts: { 'user.costCenter': 'eng' } },
      }),
    );
    ok(
      await s.request('PATCH', `/objects/${target.id}`, {
        token: admin,
        body: { facts: { 'user.costCenter': 'eng' } },
      }),
    );
    ok(await s.request('POST', `/vms/${target.id}/stop`, { token: as('sam') }), 202);
  });

  test('tags a selector reads are access data; other tags are not', async () => {
    const blue = ok(
      await s.request('POST', '/resource-groups', {
        token: admin,
        body: { name: 'team-blue', facts: { 'user.selector': 'tags=team:blue' } },
      }),
      201,
    );
    await bind('tina', 'power', blue.id);
    const vm = c1Vms[0];
    refused(
      await s.request('PATCH', `/objects/${vm.id}`, {
        token: as('olga'),
        body: { addTags: ['team:blue'] },
      }),
      403,
      'ZEN_FORBIDDEN',
    );
    refused(
      await s.request('POST', `/vms/${vm.id}/stop`, { token: as('tina') }),
      404,
      'ZEN_NOT_FOUND',
    );
    const tagged = ok(
      await s.request('PATCH', `/objects/${vm.id}`, {
        token: as('olga'),
        body: { addTags: ['misc'] },
      }),
    );
    assert.ok(tagged.tags.includes('misc'));
    // A new VM made with the tag would join the group just the same.
    refused(
      await s.request('POST', '/vms', {
        token: as('olga'),
        body: {
          name: 'blue-new',
          hostId: c1Host.id,
          cpus: 1,
          memoryBytes: 64 * 1048576,
          diskBytes: 0,
          tags: ['team:blue'],
        },
      }),
      403,
      'ZEN_FORBIDDEN',
    );
    const plain = ok(
      await s.request('POST', '/vms', {
        token: as('olga'),
        body: {
          name: 'plain-new',
          hostId: c1Host.id,
          cpus: 1,
          memoryBytes: 64 * 1048576,
          diskBytes: 0,
          tags: ['misc'],
        },
      }),
      202,
    );
    assert.equal((await s.waitForTask(admin, plain.id)).state, 'succeeded');
  });
});
