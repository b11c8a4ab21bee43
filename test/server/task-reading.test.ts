/**
 * Who may read a task: whoever may read it on its target, and its submitter, wherever the target
 * now is. The list and the task's own page answer alike.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  startTestServer,
  type ApiAnswer,
  type TestServer,
} from '../../src/testing/control-plane.js';

describe('reading a task: the list and GET /tasks/:id agree', () => {
  let s: TestServer;
  let admin: string;
  let clusters: [ApiAnswer, ApiAnswer];
  let vmsOf: (clusterId: string) => Promise<ApiAnswer[]>;
  const user = async (name: string): Promise<string> => {
    const password = `${name}-password-123`;
    const created = await s.request('POST', '/users', {
      token: admin,
      body: { name, role: 'none', password },
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    return s.login(name, password);
  };
  const bind = async (subject: string, role: string, scope: string): Promise<string> => {
    const binding = await s.request('POST', '/role-bindings', {
      token: admin,
      body: { subject, role, scope },
    });
    assert.equal(binding.status, 201, JSON.stringify(binding.body));
    return binding.body.id as string;
  };
  const listed = async (token: string): Promise<string[]> => {
    const page = await s.request('GET', '/tasks?limit=1000', { token });
    assert.equal(page.status, 200, JSON.stringify(page.body));
    return page.body.items.map((task: ApiAnswer) => task.id as string);
  };

  before(async () => {
    s = await startTestServer();
    admin = await s.login();
    await s.addSimulatedFleet(admin, {
      timeScale: 0,
      clustersPerDatacenter: 2,
      hostsPerCluster: 1,
      vmsPerHost: 1,
    });
    clusters = (await s.request('GET', '/clusters', { token: admin })).body.items;
    vmsOf = async (clusterId) => {
      const all = (await s.request('GET', '/vms?limit=1000', { token: admin })).body.items;
      return all.filter((vm: ApiAnswer) => vm.computed['location.clusterId'] === clusterId);
    };
  });
  after(async () => s.close());

  test("a submitter who lost the target's scope still reads the task, in the list and by id", async () => {
    const [first, second] = clusters;
    const bob = await user('bob');
    const onFirst = await bind('bob', 'operator', first.name);
    const [vm] = await vmsOf(first.id);
    const submitted = await s.request('POST', `/vms/${vm!.id}/stop`, { token: bob });
    assert.equal(submitted.status, 202, JSON.stringify(submitted.body));
    const taskId = submitted.body.id as string;
    await s.waitForTask(admin, taskId);

    // Bob now works on the other cluster only: the stopped VM is out of his reach.
    await bind('bob', 'operator', second.name);
    const removed = await s.request('DELETE', `/role-bindings/${onFirst}`, { token: admin });
    assert.equal(removed.status, 200, JSON.stringify(removed.body));
    assert.equal((await s.request('GET', `/vms/${vm!.id}`, { token: bob })).status, 404);

    assert.ok((await listed(bob)).includes(taskId), 'the list shows bob his own task');
    const own = await s.request('GET', `/tasks/${taskId}`, { token: bob });
    assert.equal(own.status, 200, JSON.stringify(own.body));
    assert.equal(own.body.id, taskId);
    assert.equal(own.body.state, 'succeeded');

    // Someone else on the other cluster sees it neither way: as a task that does not exist.
    const carol = await user('carol');
    await bind('carol', 'operator', second.name);
    assert.ok(!(await listed(carol)).includes(taskId));
    const theirs = await s.request('GET', `/tasks/${taskId}`, { token: carol });
    assert.equal(theirs.status, 404, JSON.stringify(theirs.body));
    assert.equal(theirs.body.error.code, 'ZEN_NOT_FOUND');
    // Reading is all the submitter keeps: cancelling still takes task.cancel on the target.
    const cancel = await s.request('POST', `/tasks/${taskId}/cancel`, { token: bob });
    assert.equal(cancel.status, 403, JSON.stringify(cancel.body));
    assert.equal(cancel.body.error.code, 'ZEN_FORBIDDEN');
  });
});
