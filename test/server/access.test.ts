import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  startTestServer,
  storeKinds,
  type ApiAnswer,
  type TestServer,
} from '../../src/testing/control-plane.js';

for (const store of storeKinds) {
  describe(`groups, roles and scoped bindings on ${store}`, () => {
    let s: TestServer;
    let admin: string;
    let alice: string;
    let clusters: ApiAnswer[];
    let vmsOf: (clusterId: string) => Promise<ApiAnswer[]>;
    before(async () => {
      s = await startTestServer({ store });
      admin = await s.login();
      await s.addSimulatedFleet(admin, {
        timeScale: 0,
        clustersPerDatacenter: 2,
        hostsPerCluster: 1,
        vmsPerHost: 2,
      });
      clusters = (await s.request('GET', '/clusters', { token: admin })).body.items;
      vmsOf = async (clusterId) => {
        const all = (await s.request('GET', '/vms?limit=1000', { token: admin })).body.items;
        return all.filter((vm: ApiAnswer) => vm.computed['location.clusterId'] === clusterId);
      };
      const created = await s.request('POST', '/users', {
        token: admin,
        body: { name: 'alice', role: 'none', password: 'alice-password-123' },
      });
      assert.equal(created.status, 201, JSON.stringify(created.body));
      alice = await s.login('alice', 'alice-password-123');
    });
    after(async () => s.close());

    test('an identity with no binding may do nothing and lists nothing', async () => {
      const list = await s.request('GET', '/vms', { token: alice });
      assert.equal(list.status, 403);
      assert.equal(list.body.error.code, 'ZEN_FORBIDDEN');
    });

    test('a binding on a cluster, inherited through nested groups, reaches exactly its subtree', async () => {
      const team = await s.request('POST', '/groups', { token: admin, body: { name: 'team-a' } });
      assert.equal(team.status, 201);
      await s.request('POST', '/groups', { token: admin, body: { name: 'engineering' } });
      assert.equal(
        (
          await s.request('POST', '/groups/team-a/members', {
            token: admin,
            body: { member: 'alice' },
          })
        ).status,
        200,
      );
      const nested = await s.request('POST', '/groups/engineering/members', {
        token: admin,
        body: { member: 'team-a' },
      });
      assert.deepEqual(
        nested.body.members.map((m: ApiAnswer) => [m.kind, m.name]),
        [['group', 'team-a']],
      );
      const cycle = await s.request('POST', '/groups/team-a/members', {
        token: admin,
        body: { member: 'engineering' },
      });
      assert.equal(cycle.status, 409);
      assert.equal(cycle.body.error.code, 'ZEN_CONFLICT');

      const [mine, theirs] = clusters as [ApiAnswer, ApiAnswer];
      const binding = await s.request('POST', '/role-bindings', {
        token: admin,
        body: { subject: 'engineering', role: 'operator', scope: mine.name },
      });
      assert.equal(binding.status, 201, JSON.stringify(binding.body));
      assert.equal(binding.body.scopeId, mine.id);

      const visible = (await s.request('GET', '/vms?limit=1000', { token: alice })).body.items;
      const expected = (await vmsOf(mine.id)).map((vm) => vm.id).sort();
      assert.deepEqual(visible.map((vm: ApiAnswer) => vm.id).sort(), expected);
      assert.equal(expected.length, 2);

      const [ownVm] = await vmsOf(mine.id);
      const [otherVm] = await vmsOf(theirs.id);
      assert.equal((await s.request('GET', `/vms/${ownVm.id}`, { token: alice })).status, 200);
      // Outside her subtree a VM is not there for her: the answer for one that does not exist.
      const hidden = await s.request('GET', `/vms/${otherVm.id}`, { token: alice });
      assert.equal(hidden.status, 404);
      assert.equal(hidden.body.error.code, 'ZEN_NOT_FOUND');
      const stop = await s.request('POST', `/vms/${otherVm.id}/stop`, { token: alice });
      assert.equal(stop.status, 404);

      const allowed = await s.request(
        'GET',
        `/access/explain?identity=alice&permission=vm.power&object=${ownVm.id}`,
        { token: admin },
      );
      assert.equal(allowed.status, 200);
      assert.equal(allowed.body.allowed, true);
      assert.equal(allowed.body.binding.id, binding.body.id);
      assert.deepEqual(allowed.body.via, [team.body.id, nested.body.id]);
      const denied = await s.request(
        'GET',
        `/access/explain?identity=alice&permission=vm.power&object=${otherVm.id}`,
        { token: admin },
      );
      assert.equal(denied.body.allowed, false);
      assert.equal(denied.body.binding, null);
      assert.match(denied.body.reason, /none of which holds/);

      // Taking the binding away takes the access away at once.
      await s.request('DELETE', `/role-bindings/${binding.body.id}`, { token: admin });
      assert.equal((await s.request('GET', `/vms/${ownVm.id}`, { token: alice })).status, 403);
    });

    test('a custom role on a resource group selecting VMs by fact grants only its permissions', async () => {
      const role = await s.request('POST', '/roles', {
        token: admin,
        body: { name: 'vm-reader', permissions: ['inventory.read'] },
      });
      assert.equal(role.status, 201, JSON.stringify(role.body));
      const bad = await s.request('POST', '/roles', {
        token: admin,
        body: { name: 'typo', permissions: ['vm.explode'] },
      });
      assert.equal(bad.status, 400);
      assert.equal(bad.body.error.code, 'ZEN_BAD_REQUEST');

      const [, theirs] = clusters as [ApiAnswer, ApiAnswer];
      const [target] = await vmsOf(theirs.id);
      const group = await s.request('POST', '/resource-groups', {
        token: admin,
        body: { name: 'picked', facts: { 'user.selector': `name=${target.name}` } },
      });
      assert.equal(group.status, 201, JSON.stringify(group.body));
      const binding = await s.request('POST', '/role-bindings', {
        token: admin,
        body: { subject: 'alice', role: 'vm-reader', scope: group.body.id },
      });
      assert.equal(binding.status, 201);
      const visible = (await s.request('GET', '/vms?limit=1000', { token: alice })).body.items;
      assert.deepEqual(
        visible.map((vm: ApiAnswer) => vm.id),
        [target.id],
      );
      assert.equal(
        (await s.request('POST', `/vms/${target.id}/stop`, { token: alice })).status,
        403,
      );
      const inUse = await s.request('DELETE', '/roles/vm-reader', { token: admin });
      assert.equal(inUse.status, 409);
    });

    test('bad input to the access API is a coded 4xx', async () => {
      const unknownSubject = await s.request('POST', '/role-bindings', {
        token: admin,
        body: { subject: 'nobody', role: 'viewer' },
      });
      assert.equal(unknownSubject.status, 404);
      assert.equal(unknownSubject.body.error.code, 'ZEN_NOT_FOUND');
      const unknownRole = await s.request('POST', '/role-bindings', {
        token: admin,
        body: { subject: 'alice', role: 'wizard' },
      });
      assert.equal(unknownRole.status, 404);
      const unknownScope = await s.request('POST', '/role-bindings', {
        token: admin,
        body: { subject: 'alice', role: 'viewer', scope: 'vm_nowhere' },
      });
      assert.equal(unknownScope.status, 404);
      const predefined = await s.request('DELETE', '/roles/admin', { token: admin });
      assert.equal(predefined.status, 409);
      const badPermission = await s.request(
        'GET',
        '/access/explain?identity=alice&permission=fly',
        { token: admin },
      );
      assert.equal(badPermission.status, 400);
      const badId = await s.request('DELETE', '/role-bindings/nope', { token: admin });
      assert.equal(badId.status, 400);
      assert.equal(badId.body.error.code, 'ZEN_BAD_ID');
    });
  });
}
