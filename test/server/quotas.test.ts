/**
 * Quotas per group, enforced at create and clone: concurrent requests
 * against the real store (SQLite and PostgreSQL) through the API, with the
 * simulated driver. Exactly as many requests as fit succeed, nested groups
 * count against their parents, failed tasks give their reservation back,
 * deleting a VM frees its share, and members read their group's usage.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { newId } from '../../src/core/ids.js';
import {
  startTestServer,
  storeKinds,
  type ApiAnswer,
  type TestServer,
} from '../../src/testing/control-plane.js';

const GiB = 1024 ** 3;

for (const store of storeKinds) {
  describe(`group quotas on ${store}`, () => {
    let s: TestServer;
    let admin: string;
    const tokens: Record<string, string> = {};
    let hosts: ApiAnswer[];

    const create = (who: string, name: string, extra: Record<string, unknown> = {}) =>
      s.request('POST', '/vms', {
        token: tokens[who],
        body: {
          name,
          hostId: hosts[0].id,
          cpus: 2,
          memoryBytes: GiB,
          diskBytes: 10 * GiB,
          ...extra,
        },
      });
    const quotaOf = async (group: string, who = admin) =>
      s.request('GET', `/groups/${group}/quota`, { token: who });

    before(async () => {
      s = await startTestServer({ store });
      admin = await s.login();
      await s.addSimulatedFleet(admin, {
        timeScale: 0,
        clustersPerDatacenter: 1,
        hostsPerCluster: 2,
        vmsPerHost: 3,
      });
      hosts = (await s.request('GET', '/hosts', { token: admin })).body.items;
      // engineering holds team-a and team-b; carol is in both teams.
      for (const group of ['engineering', 'team-a', 'team-b'])
        assert.equal(
          (await s.request('POST', '/groups', { token: admin, body: { name: group } })).status,
          201,
        );
      for (const [group, member] of [
        ['engineering', 'team-a'],
        ['engineering', 'team-b'],
      ])
        await s.request('POST', `/groups/${group}/members`, { token: admin, body: { member } });
      for (const [name, groups] of [
        ['alice', ['team-a']],
        ['bob', ['team-b']],
        ['carol', ['team-a', 'team-b']],
        ['dave', []],
      ] as const) {
        await s.plane.identities.createUser({
          name,
          role: 'none',
          password: `${name}-password-long`,
        });
        for (const group of groups)
          await s.request('POST', `/groups/${group}/members`, {
            token: admin,
            body: { member: name },
          });
        tokens[name] = await s.login(name, `${name}-password-long`);
      }
      const binding = await s.request('POST', '/role-bindings', {
        token: admin,
        body: { subject: 'engineering', role: 'operator' },
      });
      assert.equal(binding.status, 201, JSON.stringify(binding.body));
      await s.request('POST', '/role-bindings', {
        token: admin,
        body: { subject: 'dave', role: 'operator' },
      });
    });
    after(async () => s.close());

    test('bad quota input is refused with coded 4xx errors and writes nothing', async () => {
      const cases: Array<[unknown, number, string]> = [
        [{}, 400, 'ZEN_BAD_REQUEST'],
        [{ vcpus: -1 }, 400, 'ZEN_BAD_REQUEST'],
        [{ vcpus: 1.5 }, 400, 'ZEN_BAD_REQUEST'],
        [{ vcpus: 'four' }, 400, 'ZEN_BAD_REQUEST'],
        [{ cores: 4 }, 400, 'ZEN_BAD_REQUEST'],
      ];
      for (const [body, status, code] of cases) {
        const answer = await s.request('PUT', '/groups/team-a/quota', { token: admin, body });
        assert.equal(answer.status, status, JSON.stringify([body, answer.body]));
        assert.equal(answer.body.error.code, code);
      }
      const missing = await s.request('PUT', '/groups/nobody-here/quota', {
        token: admin,
        body: { vms: 1 },
      });
      assert.equal(missing.status, 404);
      assert.equal(missing.body.error.code, 'ZEN_NOT_FOUND');
      const none = await quotaOf('team-a');
      assert.equal(none.status, 404);
      assert.equal(none.body.error.code, 'ZEN_NOT_FOUND');
      const byMember = await s.request('PUT', '/groups/team-a/quota', {
        token: tokens.alice,
        body: { vms: 100 },
      });
      assert.equal(byMember.status, 403);
      assert.equal(byMember.body.error.code, 'ZEN_FORBIDDEN');
    });

    test('of 10 concurrent creates exactly as many as fit succeed; the rest get ZEN_QUOTA_EXCEEDED', async () => {
      const set = await s.request('PUT', '/groups/team-a/quota', {
        token: admin,
        body: { vcpus: 6, memoryBytes: 100 * GiB },
      });
      assert.equal(set.status, 200, JSON.stringify(set.body));
      assert.deepEqual(set.body.limits, {
        vcpus: 6,
        memoryBytes: 100 * GiB,
        diskBytes: null,
        vms: null,
      });
      const answers = await Promise.all(
        Array.from({ length: 10 }, (_, i) => create('alice', `race-a-${i}`)),
      );
      const accepted = answers.filter((a) => a.status === 202);
      const refused = answers.filter((a) => a.status !== 202);
      assert.equal(accepted.length, 3, JSON.stringify(answers.map((a) => a.status)));
      for (const answer of refused) {
        assert.equal(answer.status, 409, JSON.stringify(answer.body));
        assert.equal(answer.body.error.code, 'ZEN_QUOTA_EXCEEDED');
        assert.equal(answer.body.error.details.group, 'team-a');
        assert.equal(answer.body.error.details.resource, 'vcpus');
        assert.equal(answer.body.error.details.limit, 6);
        assert.equal(answer.body.error.details.requested, 2);
        assert.equal(answer.body.error.details.used + answer.body.error.details.reserved, 6);
      }
      const tasks = await Promise.all(accepted.map((a) => s.waitForTask(admin, a.body.id)));
      assert.deepEqual(
        tasks.map((t) => t.state),
        ['succeeded', 'succeeded', 'succeeded'],
      );
      let cpus = 0;
      for (const task of tasks) {
        const vm = (await s.request('GET', `/vms/${task.result.vmId}`, { token: admin })).body;
        cpus += vm.facts['cpu.count'];
        const ownership = await s.request('GET', `/vms/${vm.id}/ownership`, { token: admin });
        assert.equal(ownership.body.items[0].group, 'team-a');
        assert.equal(ownership.body.items[0].owner, 'alice');
        assert.equal(ownership.body.items[0].costCenter, 'team-a');
      }
      const quota = await quotaOf('team-a', tokens.alice);
      assert.equal(quota.status, 200, JSON.stringify(quota.body));
      assert.deepEqual(quota.body.used, {
        vcpus: cpus,
        memoryBytes: 3 * GiB,
        diskBytes: 30 * GiB,
        vms: 3,
      });
      assert.equal(cpus, 6);
      assert.deepEqual(quota.body.reserved, { vcpus: 0, memoryBytes: 0, diskBytes: 0, vms: 0 });
      assert.deepEqual(quota.body.available, {
        vcpus: 0,
        memoryBytes: 97 * GiB,
        diskBytes: null,
        vms: null,
      });
    });

    test("a parent group's quota covers its subgroups: a request must fit every quota above it", async () => {
      const set = await s.request('PUT', '/groups/engineering/quota', {
        token: admin,
        body: { vms: 5, vcpus: null },
      });
      assert.equal(set.status, 200);
      assert.deepEqual(set.body.limits, {
        vcpus: null,
        memoryBytes: null,
        diskBytes: null,
        vms: 5,
      });
      assert.equal(set.body.used.vms, 3, 'team-a VMs count against engineering');
      assert.deepEqual(set.body.covers, ['engineering', 'team-a', 'team-b']);
      const answers = await Promise.all(
        Array.from({ length: 6 }, (_, i) => create('bob', `race-b-${i}`, { cpus: 1 })),
      );
      const accepted = answers.filter((a) => a.status === 202);
      assert.equal(accepted.length, 2, JSON.stringify(answers.map((a) => a.status)));
      for (const answer of answers.filter((a) => a.status !== 202)) {
        assert.equal(answer.body.error.code, 'ZEN_QUOTA_EXCEEDED');
        assert.equal(answer.body.error.details.group, 'engineering');
        assert.equal(answer.body.error.details.requestedFor, 'team-b');
        assert.equal(answer.body.error.details.resource, 'vms');
      }
      await Promise.all(accepted.map((a) => s.waitForTask(admin, a.body.id)));
      assert.equal((await quotaOf('engineering')).body.used.vms, 5);
      // bob reads his own group and the one above it; team-a's is as absent to him as no group.
      assert.equal((await quotaOf('engineering', tokens.bob)).status, 200);
      const other = await quotaOf('team-a', tokens.bob);
      const none = await quotaOf('team-z', tokens.bob);
      assert.deepEqual(
        [other.status, other.body.error.code, other.body.error.message.replace('team-a', 'G')],
        [none.status, none.body.error.code, none.body.error.message.replace('team-z', 'G')],
      );
      assert.equal(other.status, 404);
      // Someone in no group creates without a quota, and the VM counts nowhere.
      const free = await create('dave', 'no-group-vm');
      assert.equal(free.status, 202, JSON.stringify(free.body));
      assert.equal((await s.waitForTask(admin, free.body.id)).state, 'succeeded');
      assert.equal((await quotaOf('engineering')).body.used.vms, 5);
      const cleared = await s.request('DELETE', '/groups/engineering/quota', { token: admin });
      assert.equal(cleared.status, 200);
      assert.equal((await quotaOf('engineering')).status, 404);
    });

    test('the group of a new VM: named when the creator is in several, and only one it is in', async () => {
      const unnamed = await create('carol', 'carol-1', { cpus: 1 });
      assert.equal(unnamed.status, 400);
      assert.equal(unnamed.body.error.code, 'ZEN_GROUP_REQUIRED');
      assert.deepEqual(unnamed.body.error.details.groups, ['team-a', 'team-b']);
      const notMine = await create('alice', 'alice-b', { cpus: 1, group: 'team-b' });
      assert.equal(notMine.status, 403);
      assert.equal(notMine.body.error.code, 'ZEN_FORBIDDEN');
      const unknown = await create('alice', 'alice-x', { cpus: 1, group: 'no-such-group' });
      assert.equal(unknown.status, 404);
      assert.equal(unknown.body.error.code, 'ZEN_NOT_FOUND');
      const overA = await create('carol', 'carol-a', { cpus: 1, group: 'team-a' });
      assert.equal(overA.status, 409);
      assert.equal(overA.body.error.code, 'ZEN_QUOTA_EXCEEDED');
      const inB = await create('carol', 'carol-b', { cpus: 1, group: 'team-b' });
      assert.equal(inB.status, 202, JSON.stringify(inB.body));
      assert.equal((await s.waitForTask(admin, inB.body.id)).state, 'succeeded');
      const created = await s.waitForTask(admin, inB.body.id);
      const ownership = await s.request('GET', `/vms/${created.result.vmId}/ownership`, {
        token: admin,
      });
      assert.equal(ownership.body.items[0].group, 'team-b');
    });

    test('a failed creation gives its reservation back', async () => {
      // A host's whole memory passes the request checks but not the driver (its running VMs hold some).
      const vms = (await s.request('GET', '/vms?limit=1000', { token: admin })).body.items;
      const busy = hosts.find((h) =>
        vms.some(
          (vm: ApiAnswer) =>
            vm.computed['location.hostId'] === h.id && vm.facts['power.state'] === 'running',
        ),
      );
      assert.ok(busy, 'a host with a running VM');
      await s.request('PUT', '/groups/team-b/quota', {
        token: admin,
        body: { memoryBytes: busy.facts['memory.totalBytes'] + 4 * GiB },
      });
      const before = (await quotaOf('team-b')).body;
      const doomed = await s.request('POST', '/vms', {
        token: tokens.bob,
        body: {
          name: 'too-big',
          hostId: busy.id,
          cpus: 1,
          memoryBytes: busy.facts['memory.totalBytes'],
          diskBytes: 0,
        },
      });
      assert.equal(doomed.status, 202, JSON.stringify(doomed.body));
      const done = await s.waitForTask(admin, doomed.body.id);
      assert.equal(done.state, 'failed');
      assert.equal(done.error.code, 'ZEN_NO_CAPACITY');
      const after = (await quotaOf('team-b')).body;
      assert.deepEqual(after.used, before.used);
      assert.deepEqual(after.reserved, { vcpus: 0, memoryBytes: 0, diskBytes: 0, vms: 0 });
    });

    test('a clone counts like a new VM of its source size, and deleting a VM frees its share', async () => {
      const quota = (await quotaOf('team-a')).body;
      assert.equal(quota.available.vcpus, 0);
      const [source] = (
        await s.request('GET', '/vms?limit=1000&filter=name~race-a-', { token: admin })
      ).body.items as ApiAnswer[];
      assert.ok(source);
      const refused = await s.request('POST', `/vms/${source.id}/clone`, {
        token: tokens.alice,
        body: { name: 'clone-1' },
      });
      assert.equal(refused.status, 409, JSON.stringify(refused.body));
      assert.equal(refused.body.error.code, 'ZEN_QUOTA_EXCEEDED');
      const removal = await s.request('DELETE', `/vms/${source.id}`, { token: tokens.alice });
      assert.equal(removal.status, 202);
      assert.equal((await s.waitForTask(admin, removal.body.id)).state, 'succeeded');
      assert.equal((await quotaOf('team-a')).body.used.vcpus, 4);
      const [other] = (
        await s.request('GET', '/vms?limit=1000&filter=name~race-a-', { token: admin })
      ).body.items.filter((vm: ApiAnswer) => vm.id !== source.id) as ApiAnswer[];
      const clones = await Promise.all(
        ['clone-2', 'clone-3'].map((name) =>
          s.request('POST', `/vms/${other.id}/clone`, { token: tokens.alice, body: { name } }),
        ),
      );
      assert.deepEqual(clones.map((c) => c.status).sort(), [202, 409]);
      const accepted = clones.find((c) => c.status === 202)!;
      const done = await s.waitForTask(admin, accepted.body.id);
      assert.equal(done.state, 'succeeded', JSON.stringify(done.error));
      const after = (await quotaOf('team-a')).body;
      assert.equal(after.used.vcpus, 6);
      assert.equal(after.used.vms, 3);
      const cloneOwner = await s.request('GET', `/vms/${done.result.vmId}/ownership`, {
        token: admin,
      });
      assert.equal(cloneOwner.body.items[0].group, 'team-a');
    });

    test('after a crash, a creation whose VM turns out to exist settles: the VM joins the group, the reservation ends', async () => {
      const vms = (await s.request('GET', '/vms?limit=1000', { token: admin })).body.items;
      const discovered: ApiAnswer = vms.find(
        (vm: ApiAnswer) => !/^(race|clone|carol|no-group|too-big)/.test(vm.name),
      );
      assert.ok(discovered, 'a VM Zenith did not create');
      const group = (await s.request('GET', '/groups/team-b', { token: admin })).body;
      const bob = await s.plane.identities.get('bob');
      const before = (await quotaOf('team-b')).body;
      // What a control plane that stopped mid-creation leaves: a running task and its reservation.
      const taskId = newId('task');
      await s.plane.store.db
        .insertInto('tasks')
        .values({
          id: taskId,
          kind: 'vm.create',
          target_id: discovered.computed['location.hostId'],
          owner_id: bob.id,
          state: 'running',
          progress: 50,
          progress_message: null,
          progress_details: null,
          params: JSON.stringify({
            name: discovered.name,
            hostId: discovered.computed['location.hostId'],
            cpus: 1,
            memoryBytes: GiB,
            diskBytes: 0,
            group: { id: group.id, name: group.name },
            ownerName: 'bob',
          }),
          result: null,
          error_code: null,
          error_message: null,
          attempt: 1,
          created_at: 0,
          started_at: 0,
          ended_at: null,
        })
        .execute();
      await s.plane.store.db
        .insertInto('quota_reservations')
        .values({
          task_id: taskId,
          group_id: group.id,
          vcpus: 1,
          memory_bytes: GiB,
          disk_bytes: 0,
          vms: 1,
          created_at: 0,
        })
        .execute();
      assert.equal((await quotaOf('team-b')).body.reserved.vms, before.reserved.vms + 1);
      const outcome = await s.plane.tasks.recover();
      assert.equal(outcome.completed, 1);
      const after = (await quotaOf('team-b')).body;
      assert.equal(after.reserved.vms, before.reserved.vms);
      assert.equal(after.used.vms, before.used.vms + 1);
      const ownership = await s.request('GET', `/vms/${discovered.id}/ownership`, { token: admin });
      assert.deepEqual(
        [ownership.body.items[0].group, ownership.body.items[0].owner],
        ['team-b', 'bob'],
      );
    });
  });
}
