import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startTestServer, type TestServer } from '../../src/testing/control-plane.js';

const GiB = 1024 ** 3;

describe('rebalancing, migration plans and evacuation through the API on the simulated driver', () => {
  let s: TestServer;
  let token: string;
  before(async () => {
    s = await startTestServer();
    token = await s.login();
    await s.addSimulatedFleet(token, { timeScale: 0.01, hostsPerCluster: 3, vmsPerHost: 3 });
  });
  after(async () => s.close());

  const get = async (path: string) => (await s.request('GET', path, { token })).body;
  const post = (path: string, body: unknown = {}) => s.request('POST', path, { token, body });
  const hostsOf = async (connection = 'lab') => {
    const conn = (await get('/connections')).items.find((c: any) => c.name === connection);
    return (await get('/hosts?limit=1000')).items.filter((h: any) => h.connectionId === conn.id);
  };
  const vmsOn = async (hostId: string) =>
    (await get('/vms?limit=1000')).items.filter(
      (vm: any) => vm.computed['location.hostId'] === hostId && vm.status === 'present',
    );
  const done = async (task: any) => {
    const ended = await s.waitForTask(token, task.id);
    assert.equal(ended.state, 'succeeded', JSON.stringify(ended.error));
    return ended;
  };
  const createOn = async (name: string, hostId: string, cpus: number, start = true) => {
    const created = await done(
      (await post('/vms', { name, hostId, cpus, memoryBytes: GiB, diskBytes: 0 })).body,
    );
    if (start) await done((await post(`/vms/${created.result.vmId}/start`)).body);
    return created.result.vmId as string;
  };

  test('evacuating a host: every VM leaves by policy, one at a time, and the host is in maintenance once empty, with a predicted and an actual completion time', async () => {
    const limit = await post('/policies', {
      name: 'one-at-a-time',
      scope: { kind: 'global' },
      settings: { migration: { maxPerHost: 1 } },
    });
    assert.equal(limit.status, 201, JSON.stringify(limit.body));
    const [host] = await hostsOf();
    const leaving = await vmsOn(host.id);
    assert.ok(leaving.length >= 2);

    const answer = await post(`/hosts/${host.name}/evacuate`);
    assert.equal(answer.status, 202, JSON.stringify(answer.body));
    const task = answer.body;
    assert.equal(task.kind, 'host.evacuate');
    assert.ok(task.params.predictedCompletionMs > 0);
    assert.equal(task.params.moves, leaving.length);
    assert.equal((await get(`/hosts/${host.id}`)).computed['host.mode'], 'entering-maintenance');
    const meanwhile = await post('/placement/preview', { vm: { cpus: 1, memoryBytes: GiB } });
    const rejected = meanwhile.body.rejected.find((r: any) => r.hostId === host.id);
    assert.equal(rejected.reason.kind, 'state');
    assert.match(rejected.reason.message, /maintenance/);

    const ended = await done(task);
    assert.equal(ended.result.mode, 'maintenance');
    assert.equal(ended.result.moves, leaving.length);
    assert.equal(ended.result.failed, 0);
    assert.ok(ended.result.actualCompletionMs > 0);
    assert.equal(ended.result.predictedCompletionMs, task.params.predictedCompletionMs);
    assert.equal(ended.progressDetails.movesDone, leaving.length);
    assert.equal(ended.progressDetails.movesTotal, leaving.length);
    assert.equal(ended.progressDetails.predictedCompletionMs, task.params.predictedCompletionMs);

    const after = await get(`/hosts/${host.id}`);
    assert.equal(after.computed['host.mode'], 'maintenance');
    assert.equal((await vmsOn(host.id)).length, 0);
    const plan = await get(`/placement/plans/${task.params.planId}`);
    assert.equal(plan.kind, 'evacuation');
    assert.equal(plan.state, 'applied');
    assert.equal(plan.outcome.moves.length, leaving.length);
    const migrations = await Promise.all(
      plan.outcome.moves.map((m: any) => get(`/tasks/${m.taskId}`)),
    );
    for (const migration of migrations) {
      assert.equal(migration.kind, 'vm.migrate');
      assert.equal(migration.state, 'succeeded');
    }
    // maxPerHost 1: the migrations off the host never overlap.
    const spans = migrations
      .map((m: any) => [m.startedAt, m.endedAt])
      .sort((a: any, b: any) => a[0] - b[0]);
    for (let i = 1; i < spans.length; i++)
      assert.ok(spans[i]![0] >= spans[i - 1]![1], 'one at a time');

    const refused = await post('/vms', {
      name: 'late',
      hostId: host.id,
      cpus: 1,
      memoryBytes: GiB,
      diskBytes: 0,
    });
    assert.equal(refused.status, 409);
    assert.equal(refused.body.error.code, 'ZEN_INVALID_STATE');
    const back = await post(`/hosts/${host.id}/exit-maintenance`);
    assert.equal(back.status, 200);
    assert.equal((await get(`/hosts/${host.id}`)).computed['host.mode'], undefined);
    const again = await post(`/hosts/${host.id}/exit-maintenance`);
    assert.equal(again.status, 409);
    await s.request('DELETE', '/policies/one-at-a-time', { token });
  });

  test('a VM with nowhere to go stops an evacuation before anything moves', async () => {
    const [, host] = await hostsOf();
    const [pinned] = await vmsOn(host.id);
    const policy = await post('/policies', {
      name: 'pinned',
      scope: { kind: 'global' },
      rules: [
        {
          name: 'stay',
          kind: 'onHosts',
          vms: `vm.name == '${pinned.name}'`,
          hosts: `host.name == '${host.name}'`,
          hard: true,
        },
      ],
    });
    assert.equal(policy.status, 201, JSON.stringify(policy.body));
    const answer = await post(`/hosts/${host.id}/evacuate`);
    assert.equal(answer.status, 409);
    assert.equal(answer.body.error.code, 'ZEN_NO_PLACEMENT');
    assert.deepEqual(
      answer.body.error.details.vms.map((v: any) => v.vm),
      [pinned.name],
    );
    assert.equal(
      (await get(`/hosts/${host.id}`)).computed['host.mode'],
      undefined,
      'not in maintenance',
    );
    assert.equal((await vmsOn(host.id)).length, 3, 'nothing moved');
    await s.request('DELETE', '/policies/pinned', { token });
  });

  test('rebalancing in recommend mode shows the moves and the imbalance before and after; applying runs them; a used or stale plan is refused', async () => {
    const hosts = await hostsOf();
    const busy = hosts[2];
    for (let i = 0; i < 4; i++) await createOn(`heavy-${i}`, busy.id, 16);
    const answer = await post('/placement/rebalance', {
      mode: 'balance',
      maxMoves: 4,
      minBenefit: 0.02,
    });
    assert.equal(answer.status, 201, JSON.stringify(answer.body));
    const { plan, task } = answer.body;
    assert.equal(task, null);
    assert.equal(plan.state, 'proposed');
    assert.ok(plan.moves.length > 0 && plan.moves.length <= 4);
    assert.ok(
      plan.moves.some((m: any) => m.fromHostId === busy.id),
      'the busy host gives VMs away',
    );
    for (const move of plan.moves) {
      assert.ok(move.benefit >= 0.02);
      assert.ok(move.endMs > move.startMs);
    }
    assert.ok(plan.metrics.after.stddevLoad < plan.metrics.before.stddevLoad);
    assert.ok(plan.predictedCompletionMs >= Math.max(...plan.moves.map((m: any) => m.endMs)));
    const first = plan.moves[0];
    assert.equal(
      (await get(`/vms/${first.vmId}`)).computed['location.hostId'],
      first.fromHostId,
      'nothing moved yet',
    );
    assert.ok(
      (await get('/placement/plans?state=proposed')).items.some((p: any) => p.id === plan.id),
    );

    const applied = await post(`/placement/plans/${plan.id}/apply`);
    assert.equal(applied.status, 202, JSON.stringify(applied.body));
    assert.equal(applied.body.kind, 'plan.apply');
    const ended = await done(applied.body);
    assert.equal(ended.result.failed, 0);
    for (const move of plan.moves)
      assert.equal((await get(`/vms/${move.vmId}`)).computed['location.hostId'], move.toHostId);
    const stored = await get(`/placement/plans/${plan.id}`);
    assert.equal(stored.state, 'applied');
    assert.ok(stored.outcome.actualCompletionMs > 0);
    const twice = await post(`/placement/plans/${plan.id}/apply`);
    assert.equal(twice.status, 409);
    assert.equal(twice.body.error.code, 'ZEN_INVALID_STATE');

    // A plan whose VM has moved since it was made is stale.
    const target = hosts.find((h: any) => h.id !== first.toHostId)!;
    const manual = await post('/placement/plans', { moves: [{ vm: first.vmId, to: target.name }] });
    assert.equal(manual.status, 201, JSON.stringify(manual.body));
    const elsewhere = hosts.find((h: any) => h.id !== first.toHostId && h.id !== target.id)!;
    await done((await post(`/vms/${first.vmId}/migrate`, { targetHostId: elsewhere.id })).body);
    const stale = await post(`/placement/plans/${manual.body.id}/apply`);
    assert.equal(stale.status, 409);
    assert.equal(stale.body.error.code, 'ZEN_PLAN_STALE');
    const discarded = await s.request('DELETE', `/placement/plans/${manual.body.id}`, { token });
    assert.equal(discarded.body.state, 'discarded');

    const consolidation = await post('/placement/rebalance', {
      mode: 'consolidate',
      maxMoves: 50,
      consolidateBelow: 0.5,
      targetLoad: 0.9,
    });
    assert.equal(consolidation.status, 201);
    const emptied = new Set(consolidation.body.plan.metrics.hostsEmptied);
    for (const move of consolidation.body.plan.moves) assert.ok(emptied.has(move.fromHostId));
    await s.request('DELETE', `/placement/plans/${consolidation.body.plan.id}`, { token });

    const automatic = await post('/placement/rebalance', {
      minBenefit: 0.01,
      maxMoves: 2,
      apply: 'automatic',
    });
    assert.equal(automatic.status, 201);
    if (automatic.body.plan.moves.length > 0) {
      assert.equal(automatic.body.plan.state, 'applying');
      await done(automatic.body.task);
      assert.equal((await get(`/placement/plans/${automatic.body.plan.id}`)).state, 'applied');
    }
  });

  test('given moves in an order that would overfill a host are reordered, and run so that capacity holds at every moment; moves that wait on each other are refused', async () => {
    const added = await post('/connections', {
      name: 'tight',
      type: 'simulated',
      settings: {
        seed: 11,
        clustersPerDatacenter: 1,
        hostsPerCluster: 3,
        vmsPerHost: 0,
        timeScale: 0.01,
      },
    });
    assert.equal(added.status, 201, JSON.stringify(added.body));
    const hosts = await hostsOf('tight');
    const cluster = hosts[0].parentId;
    const policy = await post('/policies', {
      name: 'tight-cpu',
      scope: { kind: 'cluster', id: cluster },
      settings: { cpuOvercommit: 0.25 },
    });
    assert.equal(policy.status, 201, JSON.stringify(policy.body));
    // b: the host with the least room; a and c can hold what b holds.
    const capacity = (h: any) => h.facts['cpu.cores'] / 4;
    const [b, a, c] = [...hosts].sort((x, y) => capacity(x) - capacity(y));
    const room = capacity(b);
    const v1 = await createOn('fills-a', a.id, room);
    const v2 = await createOn('fills-b', b.id, room);
    if (capacity(a) > room) await createOn('rest-of-a', a.id, capacity(a) - room);

    const swap = await post('/placement/plans', {
      moves: [
        { vm: v1, to: b.id },
        { vm: v2, to: a.id },
      ],
    });
    assert.equal(swap.status, 409);
    assert.equal(swap.body.error.code, 'ZEN_PLAN_INFEASIBLE');
    assert.deepEqual(swap.body.error.details.waiting.map((w: any) => w.vmName).sort(), [
      'fills-a',
      'fills-b',
    ]);

    const planned = await post('/placement/plans', {
      moves: [
        { vm: v1, to: b.id },
        { vm: v2, to: c.id },
      ],
    });
    assert.equal(planned.status, 201, JSON.stringify(planned.body));
    assert.equal(planned.body.reordered, true);
    assert.deepEqual(
      planned.body.moves.map((m: any) => m.vmName),
      ['fills-b', 'fills-a'],
    );
    const ended = await done((await post(`/placement/plans/${planned.body.id}/apply`)).body);
    assert.equal(ended.result.failed, 0);
    const outcome = (await get(`/placement/plans/${planned.body.id}`)).outcome.moves;
    const [second, first] = await Promise.all(
      ['fills-a', 'fills-b'].map((name) =>
        get(`/tasks/${outcome.find((m: any) => m.vmName === name).taskId}`),
      ),
    );
    assert.ok(second.startedAt >= first.endedAt, 'fills-a moves only once fills-b has left b');
    assert.equal((await get(`/vms/${v1}`)).computed['location.hostId'], b.id);
    assert.equal((await get(`/vms/${v2}`)).computed['location.hostId'], c.id);
  });

  test('bad input gets a coded 4xx', async () => {
    for (const [method, path, body, status, code] of [
      ['POST', '/placement/rebalance', { mode: 'shuffle' }, 400, 'ZEN_BAD_REQUEST'],
      [
        'POST',
        '/placement/rebalance',
        { scope: { kind: 'cluster', id: 'nope' } },
        404,
        'ZEN_NOT_FOUND',
      ],
      ['POST', '/placement/plans', { moves: [] }, 400, 'ZEN_BAD_REQUEST'],
      [
        'POST',
        '/placement/plans',
        { moves: [{ vm: 'no-such-vm', to: 'x' }] },
        404,
        'ZEN_NOT_FOUND',
      ],
      ['GET', '/placement/plans/plan_nope', undefined, 404, 'ZEN_NOT_FOUND'],
      ['POST', '/placement/plans/plan_nope/apply', {}, 404, 'ZEN_NOT_FOUND'],
      ['POST', '/hosts/no-such-host/evacuate', {}, 404, 'ZEN_NOT_FOUND'],
    ] as const) {
      const answer = await s.request(method, path, {
        token,
        ...(body !== undefined ? { body } : {}),
      });
      assert.equal(answer.status, status, `${method} ${path}: ${JSON.stringify(answer.body)}`);
      assert.equal(answer.body.error.code, code);
    }
  });
});
