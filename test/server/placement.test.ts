import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startTestServer, type TestServer } from '../../src/testing/control-plane.js';

const GiB = 1024 ** 3;
const active = new Set(['running', 'suspended', 'paused', 'unknown']);

describe('placement through the API on the simulated driver', () => {
  let s: TestServer;
  let token: string;
  let hosts: any[];
  before(async () => {
    s = await startTestServer();
    token = await s.login();
    await s.addSimulatedFleet(token, { timeScale: 0.02, hostsPerCluster: 3, vmsPerHost: 2 });
    hosts = (await s.request('GET', '/hosts?limit=1000', { token })).body.items;
    assert.equal(hosts.length, 6);
  });
  after(async () => s.close());

  const post = (path: string, body: unknown) => s.request('POST', path, { token, body });
  const preview = async (vm: unknown) => {
    const answer = await post('/placement/preview', { vm, topCandidates: 100 });
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
    return answer.body;
  };
  const policy = async (body: Record<string, unknown>) => {
    const answer = await post('/policies', { scope: { kind: 'global' }, ...body });
    assert.equal(answer.status, 201, JSON.stringify(answer.body));
    return async () => {
      await s.request('DELETE', `/policies/${String(body.name)}`, { token });
    };
  };
  /** What each host has in use now, from the inventory: the test's own oracle. */
  const usage = async () => {
    const vms = (await s.request('GET', '/vms?limit=1000', { token })).body.items;
    const used = new Map<string, { cpu: number; memory: number; vms: any[] }>();
    for (const host of hosts) used.set(host.id, { cpu: 0, memory: 0, vms: [] });
    for (const vm of vms) {
      const entry = used.get(vm.computed['location.hostId']);
      if (!entry || vm.status !== 'present') continue;
      entry.vms.push(vm);
      if (!active.has(vm.facts['power.state'])) continue;
      entry.cpu += vm.facts['cpu.count'];
      entry.memory += vm.facts['memory.bytes'];
    }
    return used;
  };
  /** Every host is either chosen, a ranked candidate, or rejected with a reason: none is silently left out. */
  const accountsForEveryHost = (decision: any) => {
    const seen = new Set([
      ...decision.candidates.map((c: any) => c.hostId),
      ...decision.rejected.map((r: any) => r.hostId),
    ]);
    assert.equal(seen.size, hosts.length, 'every host is a candidate or rejected');
    for (const r of decision.rejected) assert.ok(r.reason.message.length > 0, 'with a reason');
  };
  const createVm = async (body: Record<string, unknown>) => {
    const queued = await post('/vms', {
      cpus: 1,
      memoryBytes: 512 * 1024 ** 2,
      diskBytes: 0,
      ...body,
    });
    assert.equal(queued.status, 202, JSON.stringify(queued.body));
    return queued.body;
  };

  test('the preview shows the chosen host, ranked candidates, and for every rejected host the constraint that rejected it', async () => {
    const ssd = hosts.slice(0, 2);
    for (const host of ssd)
      await s.request('PATCH', `/objects/${host.id}`, { token, body: { addTags: ['ssd'] } });
    const drop = await policy({
      name: 'db-on-ssd',
      when: "'tier:db' in vm.tags",
      constraints: [{ name: 'ssd', expression: "'ssd' in host.tags" }],
    });
    try {
      const decision = await preview({
        name: 'db-9',
        cpus: 2,
        memoryBytes: 4 * GiB,
        tags: ['tier:db'],
      });
      accountsForEveryHost(decision);
      assert.ok(
        ssd.some((h) => h.id === decision.chosen.hostId),
        'an ssd host is chosen',
      );
      assert.deepEqual(
        decision.candidates.map((c: any) => c.hostId).sort(),
        ssd.map((h) => h.id).sort(),
      );
      for (const r of decision.rejected)
        assert.deepEqual(
          [r.reason.kind, r.reason.policy, r.reason.constraint, r.reason.expression],
          ['constraint', 'db-on-ssd', 'ssd', "'ssd' in host.tags"],
        );
      assert.ok(decision.candidates[0].score >= decision.candidates[1].score, 'best first');
      assert.ok(decision.candidates[0].breakdown.some((p: any) => p.kind === 'strategy'));
      const web = await preview({ cpus: 2, memoryBytes: 4 * GiB, tags: ['tier:web'] });
      assert.equal(web.rejected.length, 0, 'the policy does not apply to other VMs');
    } finally {
      await drop();
      for (const host of ssd)
        await s.request('PATCH', `/objects/${host.id}`, { token, body: { removeTags: ['ssd'] } });
    }
  });

  test('capacity counts overcommit: a cluster may allow more vCPUs per core than the global policy', async () => {
    const clusters = (await s.request('GET', '/clusters', { token })).body.items;
    const [roomy, strict] = clusters;
    const dropGlobal = await policy({ name: 'strict-cpu', settings: { cpuOvercommit: 1 } });
    try {
      const none = await preview({ cpus: 100, memoryBytes: GiB });
      assert.equal(none.chosen, null);
      for (const r of none.rejected) {
        assert.equal(r.reason.kind, 'capacity');
        assert.equal(r.reason.resource, 'cpu');
        assert.equal(r.reason.overcommit, 1);
      }
      const refused = await post('/vms', {
        name: 'huge',
        cpus: 100,
        memoryBytes: GiB,
        diskBytes: 0,
      });
      assert.equal(refused.status, 409);
      assert.equal(refused.body.error.code, 'ZEN_NO_PLACEMENT');
      assert.equal(refused.body.error.details.rejectedByReason.capacity, hosts.length);
      assert.equal(refused.body.error.details.rejected.length, hosts.length);

      const dropCluster = await policy({
        name: 'roomy-cpu',
        scope: { kind: 'cluster', id: roomy.id },
        settings: { cpuOvercommit: 4 },
      });
      try {
        const used = await usage();
        const decision = await preview({ cpus: 100, memoryBytes: GiB });
        accountsForEveryHost(decision);
        for (const host of hosts) {
          const fits =
            host.facts['cpu.cores'] * (host.parentId === roomy.id ? 4 : 1) -
              used.get(host.id)!.cpu >=
            100;
          const rejected = decision.rejected.find((r: any) => r.hostId === host.id);
          assert.equal(!rejected, fits, `${host.name}: ${rejected?.reason.message ?? 'accepted'}`);
          if (host.parentId === strict.id) assert.equal(rejected.reason.overcommit, 1);
        }
        const chosen = hosts.find((h) => h.id === decision.chosen.hostId);
        assert.equal(chosen.parentId, roomy.id);
      } finally {
        await dropCluster();
      }

      const used = await usage();
      const memory = await preview({ cpus: 1, memoryBytes: 300 * GiB });
      for (const host of hosts) {
        const fits = host.facts['memory.totalBytes'] - used.get(host.id)!.memory >= 300 * GiB;
        const rejected = memory.rejected.find((r: any) => r.hostId === host.id);
        assert.equal(!rejected, fits, `${host.name}: ${rejected?.reason.message ?? 'accepted'}`);
        if (rejected) assert.equal(rejected.reason.resource, 'memory');
      }
    } finally {
      await dropGlobal();
    }
  });

  test('hypervisor compatibility: a VM of a type no host runs is refused, with that reason for each host', async () => {
    const decision = await preview({ cpus: 1, memoryBytes: GiB, type: 'qemu' });
    assert.equal(decision.chosen, null);
    for (const r of decision.rejected) {
      assert.equal(r.reason.kind, 'hypervisor');
      assert.deepEqual(r.reason.hostTypes, ['simulated']);
    }
    const tasksBefore = (await s.request('GET', '/tasks?limit=200', { token })).body.items.length;
    const refused = await post('/vms', {
      name: 'wrong-type',
      type: 'qemu',
      cpus: 1,
      memoryBytes: GiB,
      diskBytes: 0,
    });
    assert.equal(refused.status, 409);
    assert.equal(refused.body.error.code, 'ZEN_NO_PLACEMENT');
    assert.equal(
      (await s.request('GET', '/tasks?limit=200', { token })).body.items.length,
      tasksBefore,
      'no task',
    );
    assert.notEqual((await preview({ cpus: 1, memoryBytes: GiB, type: 'simulated' })).chosen, null);
  });

  test('anti-affinity under pressure: concurrent creations land on distinct hosts though pack pulls them together, and one more is refused', async () => {
    const drop = await policy({
      name: 'web-apart',
      settings: { strategy: 'pack' },
      rules: [
        {
          name: 'replicas-apart',
          kind: 'separate',
          vms: "'tier:web' in vm.tags",
          groupBy: "tagValue(vm.tags, 'app')",
          hard: true,
        },
      ],
    });
    try {
      const queued = await Promise.all(
        hosts.map((_, i) => createVm({ name: `shop-web-${i}`, tags: ['tier:web', 'app:shop'] })),
      );
      const done = await Promise.all(queued.map((task: any) => s.waitForTask(token, task.id)));
      for (const task of done) assert.equal(task.state, 'succeeded', JSON.stringify(task.error));
      const placed = done.map((task: any) => task.result.hostId);
      assert.equal(new Set(placed).size, hosts.length, 'one replica per host');
      const created = await s.request('GET', `/vms/${done[0].result.vmId}`, { token });
      assert.deepEqual(
        created.body.tags,
        ['app:shop', 'tier:web'],
        'the request tags are on the VM',
      );

      const refused = await post('/vms', {
        name: 'shop-web-extra',
        cpus: 1,
        memoryBytes: 512 * 1024 ** 2,
        diskBytes: 0,
        tags: ['tier:web', 'app:shop'],
      });
      assert.equal(refused.status, 409);
      assert.equal(refused.body.error.code, 'ZEN_NO_PLACEMENT');
      for (const r of refused.body.error.details.rejected) {
        assert.equal(r.reason.kind, 'rule');
        assert.equal(r.reason.rule, 'replicas-apart');
        assert.equal(r.reason.conflicting.length, 1);
        assert.match(r.reason.conflicting[0], /^shop-web-\d$/);
      }
      const otherApp = await preview({ cpus: 1, memoryBytes: GiB, tags: ['tier:web', 'app:blog'] });
      assert.notEqual(otherApp.chosen, null, 'another app is its own group');

      await s.request('PUT', '/policies/web-apart', {
        token,
        body: {
          name: 'web-apart',
          scope: { kind: 'global' },
          rules: [
            {
              name: 'replicas-apart',
              kind: 'separate',
              vms: "'tier:web' in vm.tags",
              groupBy: "tagValue(vm.tags, 'app')",
              hard: false,
              weight: 5,
            },
          ],
        },
      });
      const soft = await preview({ cpus: 1, memoryBytes: GiB, tags: ['tier:web', 'app:shop'] });
      assert.notEqual(soft.chosen, null, 'a soft rule only ranks');
      const part = soft.candidates[0].breakdown.find((p: any) => p.kind === 'rule');
      assert.deepEqual([part.name, part.value, part.points], ['replicas-apart', -1, -5]);
    } finally {
      await drop();
    }
  });

  test('VM–host and VM–VM affinity: a GPU VM goes to GPU hosts, a pair goes together', async () => {
    const gpu = hosts.slice(3, 5);
    for (const host of gpu)
      await s.request('PATCH', `/objects/${host.id}`, { token, body: { addTags: ['gpu'] } });
    const drop = await policy({
      name: 'affinity',
      rules: [
        {
          name: 'gpu-hosts',
          kind: 'onHosts',
          vms: 'exists(vm.user.gpu)',
          hosts: "'gpu' in host.tags",
          hard: true,
        },
        { name: 'pair', kind: 'together', vms: "'app:pair' in vm.tags", hard: true },
      ],
    });
    try {
      const task = await s.waitForTask(
        token,
        (await createVm({ name: 'trainer', facts: { 'user.gpu': 1 } })).id,
      );
      assert.equal(task.state, 'succeeded', JSON.stringify(task.error));
      assert.ok(gpu.some((h) => h.id === task.result.hostId));
      const vm = (await s.request('GET', `/vms/${task.result.vmId}`, { token })).body;
      assert.equal(vm.userFacts['user.gpu'], 1);
      const explained = await preview({ cpus: 1, memoryBytes: GiB, facts: { 'user.gpu': 2 } });
      for (const r of explained.rejected) {
        assert.equal(r.reason.rule, 'gpu-hosts');
        assert.ok(!gpu.some((h) => h.id === r.hostId));
      }

      const first = await s.waitForTask(
        token,
        (await createVm({ name: 'pair-a', tags: ['app:pair'] })).id,
      );
      const second = await s.waitForTask(
        token,
        (await createVm({ name: 'pair-b', tags: ['app:pair'] })).id,
      );
      assert.equal(second.result.hostId, first.result.hostId, 'together');
    } finally {
      await drop();
      for (const host of gpu)
        await s.request('PATCH', `/objects/${host.id}`, { token, body: { removeTags: ['gpu'] } });
    }
  });

  test('ranking: cheaper hosts first when cost weighs most, a preference can outweigh it', async () => {
    const cheapest = Math.min(...hosts.map((h) => h.facts['cost.perHour']));
    const drop = await policy({
      name: 'thrifty',
      settings: { costWeight: 100, strategyWeight: 0 },
    });
    try {
      const decision = await preview({ cpus: 1, memoryBytes: GiB });
      const chosen = hosts.find((h) => h.id === decision.chosen.hostId);
      assert.equal(chosen.facts['cost.perHour'], cheapest);
      assert.equal(
        decision.candidates[0].breakdown.find((p: any) => p.kind === 'cost').points,
        100,
      );
      await s.request('PUT', '/policies/thrifty', {
        token,
        body: {
          name: 'thrifty',
          scope: { kind: 'global' },
          settings: { costWeight: 100, strategyWeight: 0 },
          preferences: [{ name: 'cores', expression: 'host.cpu.cores', weight: 10 }],
        },
      });
      const cores = await preview({ cpus: 1, memoryBytes: GiB });
      const biggest = Math.max(...hosts.map((h) => h.facts['cpu.cores']));
      assert.equal(hosts.find((h) => h.id === cores.chosen.hostId).facts['cpu.cores'], biggest);
      const part = cores.candidates[0].breakdown.find((p: any) => p.kind === 'preference');
      assert.deepEqual([part.name, part.policy, part.points], ['cores', 'thrifty', biggest * 10]);
    } finally {
      await drop();
    }
  });

  test('an existing VM: where it could move, its own host excluded; bad input gets a coded 4xx', async () => {
    const vm = (await s.request('GET', '/vms?limit=1', { token })).body.items[0];
    const decision = await preview(vm.name);
    accountsForEveryHost(decision);
    const own = decision.rejected.find((r: any) => r.hostId === vm.computed['location.hostId']);
    assert.equal(own.reason.kind, 'current');
    // Fact values keep their types through the API, both ways (policies compare them).
    const written = await s.request('PATCH', `/objects/${vm.id}`, {
      token,
      body: {
        facts: { 'user.rank': 1, 'user.code': '1', 'user.teams': ['blue'], 'user.on': true },
      },
    });
    assert.deepEqual(
      ['user.rank', 'user.code', 'user.teams', 'user.on'].map((k) => written.body.userFacts[k]),
      [1, '1', ['blue'], true],
    );
    for (const [body, status, code] of [
      [{ vm: 'no-such-vm' }, 404, 'ZEN_NOT_FOUND'],
      [{ vm: { cpus: 0, memoryBytes: GiB } }, 400, 'ZEN_BAD_REQUEST'],
      [{ vm: { cpus: 1, memoryBytes: GiB, colour: 'red' } }, 400, 'ZEN_BAD_REQUEST'],
      [{}, 400, 'ZEN_BAD_REQUEST'],
    ] as const) {
      const answer = await post('/placement/preview', body);
      assert.equal(answer.status, status, JSON.stringify(answer.body));
      assert.equal(answer.body.error.code, code);
    }
    const badTag = await post('/vms', {
      name: 'x',
      cpus: 1,
      memoryBytes: GiB,
      diskBytes: 0,
      tags: ['bad tag!'],
    });
    assert.equal(badTag.status, 400);
  });

  test('host state: hosts of a removed connection are missing and never chosen', async () => {
    const other = await post('/connections', {
      name: 'other',
      type: 'simulated',
      settings: {
        seed: 7,
        clustersPerDatacenter: 1,
        hostsPerCluster: 2,
        vmsPerHost: 1,
        timeScale: 0.02,
      },
    });
    assert.equal(other.status, 201);
    assert.equal((await s.request('DELETE', '/connections/other', { token })).status, 200);
    const decision = await preview({ cpus: 1, memoryBytes: GiB });
    const failed = decision.rejected.filter((r: any) => r.reason.kind === 'state');
    assert.equal(failed.length, 2);
    for (const r of failed) {
      assert.equal(r.reason.state, 'failed');
      assert.match(r.reason.message, /failed/);
    }
    assert.ok(hosts.some((h) => h.id === decision.chosen.hostId));
  });
});
