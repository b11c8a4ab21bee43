import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startTestServer, storeKinds, type TestServer } from '../../src/testing/control-plane.js';

async function waitTask(s: TestServer, token: string, id: string): Promise<Record<string, any>> {
  for (let i = 0; i < 200; i++) {
    const task = (await s.request('GET', `/tasks/${id}`, { token })).body;
    if (['succeeded', 'failed', 'cancelled'].includes(task.state)) return task;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`task ${id} did not finish`);
}

for (const store of storeKinds) {
  describe(`VM lifecycle through the API on ${store}`, () => {
    let s: TestServer;
    let token: string;
    before(async () => {
      s = await startTestServer({ store });
      token = await s.login();
      const added = await s.request('POST', '/connections', {
        token,
        body: {
          name: 'lab',
          type: 'simulated',
          settings: { timeScale: 0.02, hostsPerCluster: 2, vmsPerHost: 5 },
          secret: 'not-needed-but-secret',
        },
      });
      assert.equal(added.status, 201, JSON.stringify(added.body));
      assert.equal(added.body.state, 'connected');
      assert.equal(added.body.simulated, true);
    });
    after(async () => s.close());

    test("the connection's objects are listed and filtered by facts and tags", async () => {
      const all = await s.request('GET', '/vms?limit=1000', { token });
      assert.equal(all.body.items.length, 20);
      assert.ok(all.body.items.every((vm: { simulated: boolean }) => vm.simulated));
      const running = await s.request('GET', '/vms?filter=power.state=running&limit=1000', {
        token,
      });
      assert.ok(
        running.body.items.length > 0 &&
          running.body.items.every((vm: any) => vm.facts['power.state'] === 'running'),
      );
      const prod = await s.request('GET', '/vms?tag=env:prod&filter=cpu.count>=2&limit=1000', {
        token,
      });
      assert.ok(
        prod.body.items.every(
          (vm: any) => vm.tags.includes('env:prod') && vm.facts['cpu.count'] >= 2,
        ),
      );
      const hosts = await s.request('GET', '/hosts', { token });
      assert.equal(hosts.body.items.length, 4);
      const page1 = await s.request('GET', '/vms?limit=8', { token });
      const page2 = await s.request('GET', `/vms?limit=8&cursor=${page1.body.nextCursor}`, {
        token,
      });
      const page3 = await s.request('GET', `/vms?limit=8&cursor=${page2.body.nextCursor}`, {
        token,
      });
      assert.equal(page3.body.nextCursor, null);
      const names = [...page1.body.items, ...page2.body.items, ...page3.body.items].map(
        (v: any) => v.name,
      );
      assert.equal(new Set(names).size, 20);
      assert.deepEqual(names, [...names].sort());
    });

    test('start, migrate and stop run as tasks; the event stream and location history follow them', async () => {
      const stopped = (await s.request('GET', '/vms?filter=power.state=stopped&limit=1', { token }))
        .body.items[0];
      assert.ok(stopped, 'the fleet has a stopped VM');
      const events: Array<{ type: string; objectId: string | null }> = [];
      const controller = new AbortController();
      const stream = fetch(`${s.baseUrl}/api/v1/events/stream`, {
        headers: { authorization: `Bearer ${token}` },
        signal: controller.signal,
      })
        .then(async (response) => {
          assert.equal(response.headers.get('content-type'), 'text/event-stream');
          const decoder = new TextDecoder();
          let buffer = '';
          for await (const chunk of response.body!) {
            buffer += decoder.decode(chunk as Uint8Array);
            for (const block of buffer.split('\n\n').slice(0, -1)) {
              const data = block.split('\n').find((l) => l.startsWith('data: '));
              if (data) events.push(JSON.parse(data.slice(6)));
            }
            buffer = buffer.slice(buffer.lastIndexOf('\n\n') + 2);
          }
        })
        .catch(() => undefined);
      await new Promise((r) => setTimeout(r, 100));

      const start = await s.request('POST', `/vms/${stopped.id}/start`, { token });
      assert.equal(start.status, 202);
      assert.equal(start.body.state, 'queued');
      const started = await waitTask(s, token, start.body.id);
      assert.equal(started.state, 'succeeded', JSON.stringify(started.error));
      assert.equal(
        (await s.request('GET', `/vms/${stopped.id}`, { token })).body.facts['power.state'],
        'running',
      );

      const again = await s.request('POST', `/vms/${stopped.id}/start`, { token });
      assert.equal(again.status, 409);
      assert.equal(again.body.error.code, 'ZEN_INVALID_STATE');

      const sourceHost = (await s.request('GET', `/vms/${stopped.id}/location`, { token })).body;
      const beforeMigration = Date.now();
      const target = (await s.request('GET', '/hosts?limit=10', { token })).body.items.find(
        (h: any) => h.id !== sourceHost.hostId,
      );
      const migrate = await s.request('POST', `/vms/${stopped.id}/migrate`, {
        token,
        body: { targetHostId: target.name },
      });
      assert.equal(migrate.status, 202);
      const migrated = await waitTask(s, token, migrate.body.id);
      assert.equal(migrated.state, 'succeeded');
      assert.equal(migrated.result.hostId, target.id);

      const now = (await s.request('GET', `/vms/${stopped.name}/location`, { token })).body;
      assert.deepEqual(
        [now.hostId, now.hostName, now.powerState],
        [target.id, target.name, 'running'],
      );
      const then = (
        await s.request(
          'GET',
          `/vms/${stopped.id}/location?at=${new Date(beforeMigration).toISOString()}`,
          { token },
        )
      ).body;
      assert.equal(then.hostId, sourceHost.hostId);
      const history = (await s.request('GET', `/vms/${stopped.id}/location-history`, { token }))
        .body.items;
      assert.deepEqual(
        history.map((i: any) => [i.hostId, i.powerState]),
        [
          [target.id, 'running'],
          [sourceHost.hostId, 'running'],
          [sourceHost.hostId, 'stopped'],
        ],
      );

      const stop = await s.request('POST', `/vms/${stopped.id}/stop`, { token });
      assert.equal((await waitTask(s, token, stop.body.id)).state, 'succeeded');
      await new Promise((r) => setTimeout(r, 100));
      controller.abort();
      await stream;
      const forTask = (id: string) => events.filter((e) => e.objectId === id).map((e) => e.type);
      assert.deepEqual(
        forTask(start.body.id).filter((t) => t !== 'task.progress'),
        ['task.queued', 'task.running', 'task.succeeded'],
      );
      assert.ok(
        forTask(migrate.body.id).includes('task.progress'),
        'migration progress is streamed',
      );
      assert.ok(
        events.some((e) => e.type === 'inventory.updated' && e.objectId === stopped.id),
        'inventory changes are streamed',
      );
    });

    test('a running task can be cancelled and leaves the VM where it was', async () => {
      const vm = (await s.request('GET', '/vms?filter=power.state=running&limit=1', { token })).body
        .items[0];
      const target = (await s.request('GET', '/hosts?limit=10', { token })).body.items.find(
        (h: any) => h.id !== vm.computed['location.hostId'],
      );
      const migrate = await s.request('POST', `/vms/${vm.id}/migrate`, {
        token,
        body: { targetHostId: target.id, maxBandwidthBytesPerSecond: 1024 * 1024 },
      });
      for (
        let i = 0;
        i < 100 &&
        (await s.request('GET', `/tasks/${migrate.body.id}`, { token })).body.state !== 'running';
        i++
      )
        await new Promise((r) => setTimeout(r, 10));
      const cancel = await s.request('POST', `/tasks/${migrate.body.id}/cancel`, { token });
      assert.equal(cancel.status, 200);
      const done = await waitTask(s, token, migrate.body.id);
      assert.equal(done.state, 'cancelled');
      assert.equal(done.error.code, 'ZEN_TASK_CANCELLED');
      assert.equal(
        (await s.request('GET', `/vms/${vm.id}/location`, { token })).body.hostId,
        vm.computed['location.hostId'],
      );
    });

    test('every action is in the audit trail, with secrets removed, and the chain verifies', async () => {
      const records = (await s.request('GET', '/audit?limit=200', { token })).body.items;
      const actions = records.map((r: any) => r.action);
      for (const action of [
        'connection.add',
        'vm.start',
        'vm.start.completed',
        'vm.migrate',
        'vm.migrate.completed',
        'vm.stop.completed',
        'vm.migrate.cancelled',
        'auth.login',
      ]) {
        assert.ok(actions.includes(action), `audit has ${action}`);
      }
      const add = records.find((r: any) => r.action === 'connection.add');
      assert.equal(add.params.body.secret, '[redacted]');
      assert.ok(!JSON.stringify(records).includes('not-needed-but-secret'));
      const verify = await s.request('POST', '/audit/verify', { token });
      assert.equal(verify.body.ok, true);
      assert.ok(verify.body.records >= records.length);
    });

    test('removing a connection keeps its objects, marked missing, with their history', async () => {
      const removed = await s.request('DELETE', '/connections/lab', { token });
      assert.equal(removed.status, 200);
      const vms = (await s.request('GET', '/vms?limit=1000', { token })).body.items;
      assert.equal(vms.length, 20);
      assert.ok(vms.every((vm: any) => vm.status === 'missing'));
      const history = (await s.request('GET', `/vms/${vms[0].id}/location-history`, { token })).body
        .items;
      assert.ok(history.length >= 1 && history.every((i: any) => i.to !== null));
      const action = await s.request('POST', `/vms/${vms[0].id}/start`, { token });
      assert.equal(action.status, 409);
    });
  });
}
