import assert from 'node:assert/strict';
import { dirname } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  startTestServer,
  storeKinds,
  type ApiAnswer,
  type TestServer,
} from '../../src/testing/control-plane.js';
import { consoleTicks } from '../../src/testing/guest-console.js';
import { ensureGuestImage, GUEST_KERNEL_APPEND } from '../../src/testing/guest-image.js';

const condition = 'subject.department == object.user.costCenter';

for (const store of storeKinds) {
  describe(`role bindings with a condition over identity facts, on ${store}`, () => {
    let s: TestServer;
    let admin: string;
    let dana: string;
    let sam: string;
    let engVm: ApiAnswer;
    let salesVm: ApiAnswer;
    let bindingId: string;

    const ticket = (token: string, vm: ApiAnswer) =>
      s.request('POST', `/vms/${vm.id}/console-tickets`, { token, body: {} });
    const explain = async (identity: string, vm: ApiAnswer) =>
      (
        await s.request(
          'GET',
          `/access/explain?identity=${identity}&permission=vm.console&object=${vm.id}`,
          { token: admin },
        )
      ).body;

    before(async () => {
      s = await startTestServer({ store });
      admin = await s.login();
      // Real VMs under QEMU (TCG), because consoles are real: a ticket is only issued for a running VM.
      const image = await ensureGuestImage();
      const added = await s.request('POST', '/connections', {
        token: admin,
        body: {
          name: 'local',
          type: 'qemu',
          settings: { storageRoots: [dirname(image.kernel)], accelerator: 'tcg' },
        },
      });
      assert.equal(added.status, 201, JSON.stringify(added.body));
      const host = (await s.request('GET', '/hosts', { token: admin })).body.items[0];
      const vms: ApiAnswer[] = [];
      for (const [name, costCenter] of [
        ['eng-vm', 'eng'],
        ['sales-vm', 'sales'],
      ] as const) {
        const create = await s.request('POST', '/vms', {
          token: admin,
          body: {
            name,
            hostId: host.id,
            cpus: 1,
            memoryBytes: 128 * 1048576,
            diskBytes: 0,
            options: { kernel: image.kernel, initrd: image.initrd, cmdline: GUEST_KERNEL_APPEND },
          },
        });
        const created = await s.waitForTask(admin, create.body.id);
        assert.equal(created.state, 'succeeded', JSON.stringify(created.error));
        const vmId = created.result.vmId as string;
        const started = await s.waitForTask(
          admin,
          (await s.request('POST', `/vms/${vmId}/start`, { token: admin })).body.id,
        );
        assert.equal(started.state, 'succeeded', JSON.stringify(started.error));
        const set = await s.request('PATCH', `/objects/${vmId}`, {
          token: admin,
          body: { facts: { 'user.costCenter': costCenter } },
        });
        assert.equal(set.status, 200, JSON.stringify(set.body));
        vms.push(set.body);
      }
      [engVm, salesVm] = vms;
      await s.request('POST', '/groups', { token: admin, body: { name: 'staff' } });
      for (const [name, department] of [
        ['dana', 'eng'],
        ['sam', 'sales'],
      ] as const) {
        const created = await s.request('POST', '/users', {
          token: admin,
          body: { name, role: 'none', password: `${name}-password-123` },
        });
        assert.equal(created.status, 201, JSON.stringify(created.body));
        const patched = await s.request('PATCH', `/users/${name}`, {
          token: admin,
          body: { attributes: { department } },
        });
        assert.deepEqual(patched.body.attributes, { department });
        await s.request('POST', '/groups/staff/members', { token: admin, body: { member: name } });
      }
      dana = await s.login('dana', 'dana-password-123');
      sam = await s.login('sam', 'sam-password-123');
      const role = await s.request('POST', '/roles', {
        token: admin,
        body: { name: 'console-user', permissions: ['inventory.read', 'vm.console'] },
      });
      assert.equal(role.status, 201, JSON.stringify(role.body));
    });
    after(async () => {
      for (const vm of (await s.request('GET', '/vms', { token: admin })).body.items ?? [])
        if (vm.facts['power.state'] !== 'stopped')
          await s
            .waitForTask(
              admin,
              (await s.request('POST', `/vms/${vm.id}/stop`, { token: admin })).body.id,
            )
            .catch(() => undefined);
      await s.close();
    });

    test('a condition that does not read, or reads other objects, is refused and nothing is written', async () => {
      const before = (await s.request('GET', '/role-bindings', { token: admin })).body.items.length;
      const syntax = await s.request('POST', '/role-bindings', {
        token: admin,
        body: { subject: 'staff', role: 'console-user', condition: 'subject.department = 1' },
      });
      assert.equal(syntax.status, 400);
      assert.equal(syntax.body.error.code, 'ZEN_POLICY_SYNTAX');
      assert.equal(syntax.body.error.details.column, 20);
      const other = await s.request('POST', '/role-bindings', {
        token: admin,
        body: { subject: 'staff', role: 'console-user', condition: "vm.name == 'x'" },
      });
      assert.equal(other.status, 400);
      assert.equal(other.body.error.code, 'ZEN_POLICY_INVALID');
      assert.match(other.body.error.message, /may read only subject, object/);
      const number = await s.request('POST', '/role-bindings', {
        token: admin,
        body: { subject: 'staff', role: 'console-user', condition: 'subject.level + 1' },
      });
      assert.equal(number.body.error.code, 'ZEN_POLICY_INVALID');
      const badAttribute = await s.request('PATCH', '/users/sam', {
        token: admin,
        body: { attributes: { 'not valid!': 'x' } },
      });
      assert.equal(badAttribute.status, 400);
      assert.equal(badAttribute.body.error.code, 'ZEN_BAD_REQUEST');
      assert.equal(
        (await s.request('GET', '/role-bindings', { token: admin })).body.items.length,
        before,
      );
    });

    test('only the user whose department is the VM’s cost center may open its console', async () => {
      // Without the binding, neither may.
      assert.equal((await ticket(dana, engVm)).status, 403);
      const created = await s.request('POST', '/role-bindings', {
        token: admin,
        body: { subject: 'staff', role: 'console-user', condition },
      });
      assert.equal(created.status, 201, JSON.stringify(created.body));
      assert.equal(created.body.condition, condition);
      bindingId = created.body.id;

      // Dana opens the console for real: the guest's ticks arrive over it.
      assert.equal((await consoleTicks(s, dana, engVm.id, 1)).length, 1);
      // The condition gates reading too: a VM it does not grant is not there (as if absent).
      const samEng = await ticket(sam, engVm);
      assert.equal(samEng.status, 404);
      assert.equal(samEng.body.error.code, 'ZEN_NOT_FOUND');
      assert.equal((await ticket(sam, salesVm)).status, 201);
      assert.equal((await ticket(dana, salesVm)).status, 404);

      // Lists hold only what the condition lets each read.
      const names = async (token: string) =>
        ((await s.request('GET', '/vms', { token })).body.items as ApiAnswer[]).map((v) => v.id);
      assert.deepEqual(await names(dana), [engVm.id]);
      assert.deepEqual(await names(sam), [salesVm.id]);
    });

    test('access explain shows the condition and whether it held', async () => {
      const allowed = await explain('dana', engVm);
      assert.equal(allowed.allowed, true);
      assert.equal(allowed.binding.id, bindingId);
      assert.equal(allowed.binding.condition, condition);
      assert.deepEqual(allowed.via.length, 1, 'through the group staff');
      assert.deepEqual(allowed.conditions, [{ bindingId, condition, held: true }]);
      assert.match(allowed.reason, /where subject\.department == object\.user\.costCenter/);

      const denied = await explain('sam', engVm);
      assert.equal(denied.allowed, false);
      assert.equal(denied.binding, null);
      assert.deepEqual(denied.conditions, [{ bindingId, condition, held: false }]);
      assert.match(denied.reason, new RegExp(`condition of ${bindingId} did not hold`));
    });

    test('a changed attribute counts at once; a removed one makes the condition fail', async () => {
      await s.request('PATCH', '/users/sam', {
        token: admin,
        body: { attributes: { department: 'eng', onCall: false } },
      });
      assert.equal((await ticket(sam, engVm)).status, 201);
      assert.equal((await ticket(sam, salesVm)).status, 404);
      await s.request('PATCH', '/users/sam', {
        token: admin,
        body: { attributes: { department: null } },
      });
      assert.equal((await ticket(sam, engVm)).status, 404);
      const user = (await s.request('GET', '/users', { token: admin })).body.items.find(
        (u: ApiAnswer) => u.name === 'sam',
      );
      assert.deepEqual(user.attributes, { onCall: false }, 'false stays false; null removes');
    });

    test('a fact of the wrong type makes a condition fail, and explain says why', async () => {
      await s.request('PATCH', '/users/sam', {
        token: admin,
        body: { attributes: { clearance: 'high' } },
      });
      await s.request('POST', '/role-bindings', {
        token: admin,
        body: { subject: 'sam', role: 'console-user', condition: 'subject.clearance > 2' },
      });
      const denied = await explain('sam', engVm);
      assert.equal(denied.allowed, false);
      const typed = denied.conditions.find(
        (c: ApiAnswer) => c.condition === 'subject.clearance > 2',
      );
      assert.equal(typed.held, false);
      assert.match(typed.error, /string/);
      assert.equal((await ticket(sam, engVm)).status, 404);
    });
  });
}
