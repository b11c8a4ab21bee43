import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  startTestServer,
  storeKinds,
  type ApiAnswer,
  type TestServer,
} from '../../src/testing/control-plane.js';

for (const store of storeKinds) {
  describe(`resource groups with listed members on ${store}`, () => {
    let s: TestServer;
    let admin: string;
    let alice: string;
    let olga: string;
    let vms: ApiAnswer[];
    before(async () => {
      s = await startTestServer({ store });
      admin = await s.login();
      const added = await s.request('POST', '/connections', {
        token: admin,
        body: {
          name: 'lab',
          type: 'simulated',
          settings: { timeScale: 0, clustersPerDatacenter: 2, hostsPerCluster: 2, vmsPerHost: 4 },
        },
      });
      assert.equal(added.status, 201, JSON.stringify(added.body));
      vms = (await s.request('GET', '/vms?limit=1000&sort=name', { token: admin })).body.items;
      assert.ok(vms.length >= 16);
      for (const [name, role] of [
        ['alice', 'none'],
        ['olga', 'operator'],
      ] as const) {
        const created = await s.request('POST', '/users', {
          token: admin,
          body: { name, role, password: `${name}-password-123` },
        });
        assert.equal(created.status, 201, JSON.stringify(created.body));
      }
      alice = await s.login('alice', 'alice-password-123');
      olga = await s.login('olga', 'olga-password-123');
      for (const [name, permissions] of [
        ['vm-reader', ['inventory.read']],
        ['vm-power', ['inventory.read', 'vm.power']],
      ] as const) {
        const role = await s.request('POST', '/roles', {
          token: admin,
          body: { name, permissions },
        });
        assert.equal(role.status, 201, JSON.stringify(role.body));
      }
    });
    after(async () => s.close());

    const explain = async (permission: string, object: string) =>
      (
        await s.request(
          'GET',
          `/access/explain?identity=alice&permission=${permission}&object=${object}`,
          { token: admin },
        )
      ).body;

    test('one VM listed in two resource groups gets what the bindings on both give, and loses it when taken off', async () => {
      const [a, b] = vms as [ApiAnswer, ApiAnswer];
      for (const name of ['web-tier', 'pci']) {
        const group = await s.request('POST', '/resource-groups', { token: admin, body: { name } });
        assert.equal(group.status, 201, JSON.stringify(group.body));
      }
      for (const [group, vm] of [
        ['web-tier', a],
        ['pci', a],
        ['pci', b],
      ] as const) {
        const added = await s.request('POST', `/resource-groups/${group}/members`, {
          token: admin,
          body: { object: vm.id },
        });
        assert.equal(added.status, 200, JSON.stringify(added.body));
      }
      // Adding twice changes nothing.
      const again = await s.request('POST', '/resource-groups/pci/members', {
        token: admin,
        body: { object: b.name },
      });
      assert.deepEqual(again.body.userFacts['user.members'], [a.id, b.id]);

      await s.request('POST', '/role-bindings', {
        token: admin,
        body: { subject: 'alice', role: 'vm-reader', scope: 'pci' },
      });
      const powerBinding = await s.request('POST', '/role-bindings', {
        token: admin,
        body: { subject: 'alice', role: 'vm-power', scope: 'web-tier' },
      });
      assert.equal(powerBinding.status, 201, JSON.stringify(powerBinding.body));

      const listed = (await s.request('GET', '/vms?limit=1000', { token: alice })).body.items;
      assert.deepEqual(listed.map((vm: ApiAnswer) => vm.id).sort(), [a.id, b.id].sort());
      const onA = await explain('vm.power', a.id);
      assert.equal(onA.allowed, true);
      assert.equal(onA.binding.id, powerBinding.body.id);
      assert.equal((await explain('vm.power', b.id)).allowed, false);
      // In neither group: not there for her (as if absent).
      assert.equal((await s.request('GET', `/vms/${vms[2]!.id}`, { token: alice })).status, 404);

      const removed = await s.request('DELETE', `/resource-groups/web-tier/members/${a.id}`, {
        token: admin,
      });
      assert.equal(removed.status, 200, JSON.stringify(removed.body));
      assert.equal(removed.body.userFacts['user.members'], undefined);
      assert.equal((await explain('vm.power', a.id)).allowed, false);
      // Still a member of pci: still readable.
      assert.equal((await s.request('GET', `/vms/${a.id}`, { token: alice })).status, 200);
    });

    test('concurrent additions to one group all land (no lost update)', async () => {
      await s.request('POST', '/resource-groups', { token: admin, body: { name: 'batch' } });
      const picked = vms.slice(4, 14);
      const answers = await Promise.all(
        picked.map((vm) =>
          s.request('POST', '/resource-groups/batch/members', {
            token: admin,
            body: { object: vm.id },
          }),
        ),
      );
      assert.deepEqual(
        answers.map((answer) => answer.status),
        picked.map(() => 200),
      );
      const group = (await s.request('GET', '/objects/batch', { token: admin })).body;
      assert.deepEqual(
        [...group.userFacts['user.members']].sort(),
        picked.map((vm) => vm.id).sort(),
      );
    });

    test('membership is an access change: an operator may edit the group but not whom it reaches', async () => {
      await s.request('POST', '/resource-groups', { token: admin, body: { name: 'ops-owned' } });
      const added = await s.request('POST', '/resource-groups/ops-owned/members', {
        token: olga,
        body: { object: vms[0]!.id },
      });
      assert.equal(added.status, 403);
      assert.equal(added.body.error.code, 'ZEN_FORBIDDEN');
      for (const key of ['user.members', 'user.selector']) {
        const patched = await s.request('PATCH', '/objects/ops-owned', {
          token: olga,
          body: { facts: { [key]: key === 'user.members' ? [vms[0]!.id] : 'power.state=running' } },
        });
        assert.equal(patched.status, 403, `${key}: ${JSON.stringify(patched.body)}`);
        assert.equal(patched.body.error.code, 'ZEN_FORBIDDEN');
      }
      const note = await s.request('PATCH', '/objects/ops-owned', {
        token: olga,
        body: { facts: { 'user.note': 'owned by ops' } },
      });
      assert.equal(note.status, 200, JSON.stringify(note.body));
      const group = (await s.request('GET', '/objects/ops-owned', { token: admin })).body;
      assert.equal(group.userFacts['user.members'], undefined);
      assert.equal(group.userFacts['user.selector'], undefined);
    });

    test('bad member requests are coded 4xx and change nothing', async () => {
      await s.request('POST', '/resource-groups', { token: admin, body: { name: 'strict' } });
      const cases: [string, string, unknown, number, string][] = [
        ['POST', '/resource-groups/strict/members', { object: 'vm_nowhere' }, 404, 'ZEN_NOT_FOUND'],
        ['POST', '/resource-groups/strict/members', { object: 'strict' }, 409, 'ZEN_CONFLICT'],
        ['POST', '/resource-groups/strict/members', {}, 400, 'ZEN_BAD_REQUEST'],
        ['POST', '/resource-groups/strict/members', { object: '' }, 400, 'ZEN_BAD_REQUEST'],
        ['POST', '/resource-groups/nowhere/members', { object: vms[0]!.id }, 404, 'ZEN_NOT_FOUND'],
        [
          'DELETE',
          `/resource-groups/strict/members/${vms[0]!.id}`,
          undefined,
          404,
          'ZEN_NOT_FOUND',
        ],
      ];
      for (const [method, path, body, status, code] of cases) {
        const answer = await s.request(method, path, {
          token: admin,
          ...(body !== undefined ? { body } : {}),
        });
        assert.equal(answer.status, status, `${method} ${path}: ${JSON.stringify(answer.body)}`);
        assert.equal(answer.body.error.code, code);
      }
      const group = (await s.request('GET', '/objects/strict', { token: admin })).body;
      assert.equal(group.userFacts['user.members'], undefined);
    });
  });
}
