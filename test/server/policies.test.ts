import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { silentLogger } from '../../src/core/logger.js';
import { startControlPlane } from '../../src/app/control-plane.js';
import {
  adminPassword,
  startTestServer,
  storeKinds,
  type TestServer,
} from '../../src/testing/control-plane.js';
import { createTestDatabase } from '../../src/testing/postgres.js';

const fleet = { timeScale: 0.02, hostsPerCluster: 3, vmsPerHost: 4 };

describe('policies through the API', () => {
  let s: TestServer;
  let token: string;
  let hosts: any[];
  let vms: any[];
  before(async () => {
    s = await startTestServer();
    token = await s.login();
    const added = await s.request('POST', '/connections', {
      token,
      body: { name: 'lab', type: 'simulated', settings: fleet },
    });
    assert.equal(added.status, 201, JSON.stringify(added.body));
    hosts = (await s.request('GET', '/hosts?limit=1000', { token })).body.items;
    vms = (await s.request('GET', '/vms?limit=1000', { token })).body.items;
  });
  after(async () => s.close());

  const post = (path: string, body: unknown, as = token) =>
    s.request('POST', path, { token: as, body });

  test('a policy is compiled when saved: a mistake is refused with its field, line and column, and nothing is saved', async () => {
    const cases: Array<[unknown, number, string, Record<string, unknown>]> = [
      [
        {
          name: 'broken',
          scope: { kind: 'global' },
          constraints: [
            { name: 'fine', expression: "'ssd' in host.tags" },
            { name: 'bad', expression: "'ssd' in host.tags and\n  host.cpu.cores >= )" },
          ],
        },
        400,
        'ZEN_POLICY_SYNTAX',
        { field: 'constraints[1].expression', line: 2, column: 21 },
      ],
      [
        { name: 'broken', scope: { kind: 'global' }, when: 'host.cpu.cores > 4' },
        400,
        'ZEN_POLICY_INVALID',
        { field: 'when', line: 1, column: 1 },
      ],
      [
        {
          name: 'broken',
          scope: { kind: 'global' },
          preferences: [{ name: 'p', expression: 'vm.name', weight: 1 }],
        },
        400,
        'ZEN_POLICY_INVALID',
        { field: 'preferences[0].expression' },
      ],
      [
        {
          name: 'broken',
          scope: { kind: 'vm', id: vms[0].name },
          settings: { cpuOvercommit: 2 },
        },
        400,
        'ZEN_POLICY_INVALID',
        { field: 'settings.cpuOvercommit' },
      ],
      [
        {
          name: 'broken',
          scope: { kind: 'global' },
          constraints: [
            { name: 'same', expression: 'true' },
            { name: 'same', expression: 'false' },
          ],
        },
        400,
        'ZEN_POLICY_INVALID',
        { field: 'constraints[1].name' },
      ],
      [
        {
          name: 'broken',
          scope: { kind: 'global' },
          rules: [{ name: 'r', kind: 'onHosts', hard: true }],
        },
        400,
        'ZEN_POLICY_INVALID',
        { field: 'rules[0].hosts' },
      ],
      [
        { name: 'broken', scope: { kind: 'cluster', id: 'no-such-cluster' } },
        404,
        'ZEN_NOT_FOUND',
        {},
      ],
      [
        { name: 'broken', scope: { kind: 'cluster' } },
        400,
        'ZEN_POLICY_INVALID',
        { field: 'scope.id' },
      ],
      [{ name: 'broken', scope: { kind: 'global' }, colour: 'red' }, 400, 'ZEN_BAD_REQUEST', {}],
      [
        { name: 'bad name!', scope: { kind: 'global' } },
        400,
        'ZEN_POLICY_INVALID',
        { field: 'name' },
      ],
    ];
    for (const [body, status, code, details] of cases) {
      const answer = await post('/policies', body);
      assert.equal(answer.status, status, JSON.stringify(answer.body));
      assert.equal(answer.body.error.code, code, JSON.stringify(answer.body));
      for (const [key, value] of Object.entries(details))
        assert.equal(
          answer.body.error.details[key],
          value,
          `${key} of ${JSON.stringify(answer.body)}`,
        );
    }
    assert.deepEqual((await s.request('GET', '/policies', { token })).body.items, []);
  });

  test('create, read, replace and delete; a viewer reads and tests but may not write', async () => {
    const created = await post('/policies', {
      name: 'prod-big-hosts',
      description: 'prod VMs on big hosts',
      scope: { kind: 'global' },
      when: "'env:prod' in vm.tags",
      constraints: [{ name: 'big', expression: 'host.cpu.cores >= 64' }],
      preferences: [{ name: 'cheap', expression: '1 - host.cost.perHour', weight: 2 }],
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    assert.match(created.body.id, /^pol_/);
    assert.deepEqual(created.body.scope, { kind: 'global', id: null, name: null });
    const again = await post('/policies', { name: 'prod-big-hosts', scope: { kind: 'global' } });
    assert.equal(again.status, 409);
    assert.equal(again.body.error.code, 'ZEN_CONFLICT');

    const read = await s.request('GET', '/policies/prod-big-hosts', { token });
    assert.equal(read.body.id, created.body.id);
    assert.equal(read.body.constraints[0].expression, 'host.cpu.cores >= 64');

    const replaced = await s.request('PUT', `/policies/${created.body.id}`, {
      token,
      body: { name: 'prod-big-hosts', scope: { kind: 'global' }, constraints: [] },
    });
    assert.equal(replaced.status, 200, JSON.stringify(replaced.body));
    assert.deepEqual(replaced.body.constraints, []);
    assert.equal(replaced.body.when, null);

    const user = await post('/users', {
      name: 'vic',
      role: 'viewer',
      password: 'viewer-password-1',
    });
    assert.equal(user.status, 201);
    const viewer = await s.login('vic', 'viewer-password-1');
    assert.equal((await s.request('GET', '/policies', { token: viewer })).status, 200);
    const tried = await post('/policies/test', { expression: 'host.cpu.cores >= 64' }, viewer);
    assert.equal(tried.status, 200);
    const refused = await post('/policies', { name: 'v', scope: { kind: 'global' } }, viewer);
    assert.equal(refused.status, 403);
    assert.equal(refused.body.error.code, 'ZEN_FORBIDDEN');

    const deleted = await s.request('DELETE', '/policies/prod-big-hosts', { token });
    assert.equal(deleted.status, 200);
    assert.equal((await s.request('GET', '/policies/prod-big-hosts', { token })).status, 404);
    const audit = (await s.request('GET', '/audit?limit=200', { token })).body.items.map(
      (r: any) => r.action,
    );
    for (const action of ['policy.create', 'policy.replace', 'policy.delete'])
      assert.ok(audit.includes(action), `${action} is audited`);
  });

  test('testing a policy shows whom it applies to and who breaks it where they run now, without saving it', async () => {
    const prod = vms.filter((vm) => vm.tags.includes('env:prod'));
    const small = new Set(hosts.filter((h) => h.facts['cpu.cores'] < 64).map((h) => h.id));
    const onSmall = prod.filter((vm) => small.has(vm.computed['location.hostId']));
    assert.ok(prod.length > 0 && onSmall.length > 0, 'the fleet has prod VMs on small hosts');
    const answer = await post('/policies/test', {
      limit: 1000,
      policy: {
        name: 'draft',
        scope: { kind: 'global' },
        when: "'env:prod' in vm.tags",
        constraints: [
          { name: 'big', expression: 'host.cpu.cores >= 64' },
          { name: 'typo', expression: '# compares a string\nvm.guest.os > 3' },
        ],
        preferences: [{ name: 'cheap', expression: '1 - host.cost.perHour', weight: 1 }],
        rules: [{ name: 'db-apart', kind: 'separate', vms: "'tier:db' in vm.tags", hard: true }],
      },
    });
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
    const result = answer.body;
    assert.equal(result.appliesTo.vms, prod.length);
    const big = result.constraints.find((c: any) => c.name === 'big');
    assert.equal(big.violated, onSmall.length);
    assert.equal(big.holds, prod.length - onSmall.length);
    assert.deepEqual(
      big.violations.map((v: any) => v.vmName).sort(),
      onSmall.map((vm) => vm.name).sort(),
    );
    const typo = result.constraints.find((c: any) => c.name === 'typo');
    assert.equal(typo.failed, prod.length);
    assert.deepEqual(
      [typo.failures[0].code, typo.failures[0].line, typo.failures[0].column],
      ['ZEN_POLICY_EVALUATION', 2, 13],
    );
    const cheap = result.preferences[0];
    assert.ok(cheap.min < cheap.max, 'hosts of two prices give two values');
    const dbByHost = new Map<string, number>();
    for (const vm of prod.filter((v) => v.tags.includes('tier:db')))
      dbByHost.set(
        vm.computed['location.hostId'],
        (dbByHost.get(vm.computed['location.hostId']) ?? 0) + 1,
      );
    const expectedBroken = [...dbByHost.values()].reduce((sum, n) => sum + n - 1, 0);
    assert.equal(result.rules[0].violations.length, expectedBroken);
    assert.deepEqual(
      (await s.request('GET', '/policies', { token })).body.items,
      [],
      'nothing was saved',
    );
  });

  test('one expression is tried across the fleet, or on one VM and host', async () => {
    const bigHosts = hosts.filter((h) => h.facts['cpu.cores'] >= 64);
    const fleetWide = await post('/policies/test', { expression: 'host.cpu.cores >= 64' });
    assert.equal(fleetWide.status, 200);
    assert.equal(fleetWide.body.over, 'hosts');
    assert.equal(fleetWide.body.evaluated, hosts.length);
    assert.equal(
      fleetWide.body.counts.find((c: any) => c.value === 'true')?.count ?? 0,
      bigHosts.length,
    );
    assert.deepEqual(fleetWide.body.matches.sort(), bigHosts.map((h) => h.name).sort());

    const vm = vms[0];
    const one = await post('/policies/test', {
      expression: 'vm.cpu.count * 2 + len(vm.tags)',
      vm: vm.name,
    });
    assert.equal(one.body.value, vm.facts['cpu.count'] * 2 + vm.tags.length);
    const pair = await post('/policies/test', {
      expression: 'host.name',
      vm: vm.id,
      host: hosts[1].name,
    });
    assert.equal(pair.body.value, hosts[1].name);
    const perVm = await post('/policies/test', { expression: 'host.id == vm.location.hostId' });
    assert.equal(perVm.body.over, 'vms');
    assert.equal(perVm.body.counts[0].value, 'true');
    assert.equal(perVm.body.counts[0].count, vms.length);

    const both = await post('/policies/test', {
      expression: 'true',
      policy: { name: 'x', scope: { kind: 'global' } },
    });
    assert.equal(both.status, 400);
    assert.equal(both.body.error.code, 'ZEN_BAD_REQUEST');
    const broken = await post('/policies/test', { expression: 'host.cpu.cores >' });
    assert.equal(broken.status, 400);
    assert.equal(broken.body.error.code, 'ZEN_POLICY_SYNTAX');
    assert.equal(broken.body.error.details.column, 17);
    const failing = await post('/policies/test', { expression: 'vm.name + 1', vm: vm.name });
    assert.equal(failing.status, 400, 'a type error the compiler sees');
    const runtime = await post('/policies/test', { expression: 'vm.guest.os * 2', vm: vm.name });
    assert.equal(runtime.status, 422);
    assert.equal(runtime.body.error.code, 'ZEN_POLICY_EVALUATION');
  });

  test('scopes inherit: a cluster overrides global settings for its hosts, a VM or its resource group adds its own', async () => {
    const clusters = (await s.request('GET', '/clusters', { token })).body.items;
    const [first, second] = clusters;
    const vmIn = (cluster: any) =>
      vms.find(
        (vm) => hosts.find((h) => h.id === vm.computed['location.hostId'])?.parentId === cluster.id,
      );
    const inFirst = vmIn(first);
    const inSecond = vmIn(second);
    const created = await Promise.all([
      post('/policies', {
        name: 'global-oc',
        scope: { kind: 'global' },
        settings: { cpuOvercommit: 2, strategy: 'spread' },
      }),
      post('/policies', {
        name: 'first-oc',
        scope: { kind: 'cluster', id: first.name },
        settings: { cpuOvercommit: 8 },
      }),
      post('/policies', {
        name: 'pack-me',
        scope: { kind: 'vm', id: inFirst.name },
        settings: { strategy: 'pack' },
      }),
    ]);
    for (const answer of created) assert.equal(answer.status, 201, JSON.stringify(answer.body));
    const effective = async (vm: any) =>
      (await s.request('GET', `/policies/effective?vm=${vm.name}`, { token })).body;
    const a = await effective(inFirst);
    assert.equal(a.capacity.cpuOvercommit, 8);
    assert.equal(a.settings.cpuOvercommit, 8);
    assert.equal(a.settings.strategy, 'pack');
    assert.deepEqual(a.policies.map((p: any) => p.name).sort(), [
      'first-oc',
      'global-oc',
      'pack-me',
    ]);
    const b = await effective(inSecond);
    assert.equal(b.capacity.cpuOvercommit, 2);
    assert.equal(b.settings.strategy, 'spread');

    const group = await post('/resource-groups', { name: 'shop' });
    assert.equal(group.status, 201);
    await s.request('PATCH', `/objects/${inSecond.id}`, {
      token,
      body: { facts: { 'user.resourceGroup': 'shop' } },
    });
    const grouped = await post('/policies', {
      name: 'shop-pack',
      scope: { kind: 'resourceGroup', id: 'shop' },
      settings: { strategy: 'pack', costWeight: 3 },
    });
    assert.equal(grouped.status, 201, JSON.stringify(grouped.body));
    const c = await effective(inSecond);
    assert.equal(c.settings.strategy, 'pack');
    assert.equal(c.settings.costWeight, 3);
    assert.ok(c.policies.some((p: any) => p.name === 'shop-pack'));
    for (const name of ['global-oc', 'first-oc', 'pack-me', 'shop-pack'])
      await s.request('DELETE', `/policies/${name}`, { token });
  });

  test("a host's overcommit comes from its policies whatever their `when`; the effective view says which", async () => {
    const [first] = (await s.request('GET', '/clusters', { token })).body.items;
    const vm = vms.find(
      (v) => hosts.find((h) => h.id === v.computed['location.hostId'])?.parentId === first.id,
    );
    const created = await post('/policies', {
      name: 'prod-oc',
      scope: { kind: 'cluster', id: first.name },
      when: "'no-such-tag' in vm.tags",
      settings: { cpuOvercommit: 6, strategy: 'pack' },
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const view = (await s.request('GET', `/policies/effective?vm=${vm.name}`, { token })).body;
    // Its `when` does not hold for this VM: not in force for it, so its strategy does not count…
    assert.equal(
      view.policies.some((p: any) => p.name === 'prod-oc'),
      false,
    );
    assert.notEqual(view.settings.strategy, 'pack');
    // …but the host's capacity is the host's: placement counts 6 vCPUs per core there, and says why.
    assert.equal(view.capacity.cpuOvercommit, 6);
    assert.equal(view.settings.cpuOvercommit, 6);
    assert.deepEqual(
      view.capacity.from.map((p: any) => p.name),
      ['prod-oc'],
    );
    // Placement's own explanation counts 6 vCPUs per core on this cluster's hosts, 4 elsewhere.
    const placed = await post('/placement/preview', {
      vm: { name: 'probe', cpus: 512, memoryBytes: 64 * 1048576, diskBytes: 0 },
    });
    assert.equal(placed.status, 200, JSON.stringify(placed.body));
    const overcommitOf = new Map(
      placed.body.rejected.map((r: any) => [r.hostId, r.reason.overcommit as number]),
    );
    for (const host of hosts)
      assert.equal(overcommitOf.get(host.id), host.parentId === first.id ? 6 : 4, host.name);
    await s.request('DELETE', '/policies/prod-oc', { token });
  });
});

for (const store of storeKinds) {
  test(`policies survive a restart of the control plane (${store})`, async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'zenith-policies-'));
    const database = store === 'postgres' ? await createTestDatabase() : undefined;
    const start = () =>
      startControlPlane({
        dataDir,
        databaseUrl: database?.url,
        adminPassword,
        logger: silentLogger,
      });
    try {
      const first = await start();
      try {
        await first.policies.create(
          {
            name: 'kept',
            scope: { kind: 'global' },
            when: "'env:prod' in vm.tags",
            constraints: [{ name: 'c', expression: 'host.state == "connected"' }],
            settings: { memoryOvercommit: 1.5 },
          },
          { id: 'system', kind: 'system', name: 'test' },
        );
      } finally {
        await first.close();
      }
      const again = await start();
      try {
        const [kept] = again.policies.list();
        assert.equal(kept?.name, 'kept');
        assert.equal(kept?.when, "'env:prod' in vm.tags");
        assert.deepEqual(kept?.settings, { memoryOvercommit: 1.5 });
        assert.equal(again.policies.index.global.length, 1, 'compiled again and in force');
      } finally {
        await again.close();
      }
    } finally {
      await database?.drop();
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
}
