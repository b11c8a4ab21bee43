import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { adminPassword } from '../../src/testing/control-plane.js';
import {
  cliRunner,
  startServerProcess,
  type ServerProcess,
} from '../../src/testing/server-process.js';

describe('policies, placement, rebalancing and evacuation through the zenith command', () => {
  let server: ServerProcess;
  let dataDir: string;
  let zenith: ReturnType<typeof cliRunner>;
  before(async () => {
    dataDir = mkdtempSync(join(tmpdir(), 'zenith-placement-tour-'));
    server = await startServerProcess({ dataDir });
    zenith = cliRunner(server.url);
    const login = await zenith(['login', '--user', 'admin'], { input: `${adminPassword}\n` });
    assert.equal(login.code, 0, login.stderr);
    const add = await zenith([
      'connections',
      'add',
      'lab',
      'simulated',
      '--set',
      'timeScale=0.01',
      '--set',
      'hostsPerCluster=3',
      '--set',
      'vmsPerHost=3',
    ]);
    assert.equal(add.code, 0, add.stderr);
  });
  after(async () => {
    await server.kill();
    rmSync(dataDir, { recursive: true, force: true });
  });

  test('write a policy, test it against the inventory (a mistake shows its line and column), save it', async () => {
    const typo = await zenith([
      'policy',
      'test',
      '--name',
      'prod',
      '--constraint',
      'big=host.cpu.cores >= 64 and\n  vm.cpu.count <',
    ]);
    assert.equal(typo.code, 2, 'bad input');
    assert.match(typo.stderr, /ZEN_POLICY_SYNTAX/);
    assert.match(typo.stderr, /line 2, column 17/);

    const file = join(dataDir, 'prod.json');
    writeFileSync(
      file,
      JSON.stringify({
        name: 'prod-on-big-hosts',
        scope: { kind: 'global' },
        when: "'env:prod' in vm.tags",
        constraints: [{ name: 'big', expression: 'host.cpu.cores >= 64' }],
        preferences: [{ name: 'cheap', expression: '1 - host.cost.perHour', weight: 1 }],
      }),
    );
    const tried = await zenith(['policy', 'test', '-f', file]);
    assert.equal(tried.code, 0, tried.stderr);
    assert.match(tried.stdout, /applies to \d+ VMs now/);
    assert.match(tried.stdout, /constraint big: holds for \d+, violated by \d+, failed on 0/);
    const expr = await zenith(['policy', 'test', '--expr', 'host.cpu.cores >= 64']);
    assert.match(expr.stdout, /evaluated on 6 hosts/);
    const created = await zenith(['policy', 'create', '-f', file]);
    assert.equal(created.code, 0, created.stderr);
    const listed = await zenith(['policy', 'list']);
    assert.match(listed.stdout, /prod-on-big-hosts.*global/);
  });

  test('placement chooses a host and explains every rejection; a VM is created where placement puts it', async () => {
    const explained = await zenith([
      'place',
      '--cpus',
      '2',
      '--memory',
      '4GiB',
      '--tag',
      'env:prod',
      '--explain',
    ]);
    assert.equal(explained.code, 0, explained.stderr);
    assert.match(explained.stdout, /new-vm → \S+ \(host_\w+\), score/);
    assert.match(explained.stdout, /best candidates/);
    const hosts = JSON.parse((await zenith(['--json', 'hosts', 'list'])).stdout).items as any[];
    const small = hosts.filter((h) => h.facts['cpu.cores'] < 64);
    if (small.length > 0) {
      assert.match(explained.stdout, new RegExp(`rejected \\(${small.length}\\)`));
      assert.match(
        explained.stdout,
        /constraint\s+.*constraint 'big' of policy 'prod-on-big-hosts'/,
      );
    }
    const created = await zenith([
      '--json',
      'vms',
      'create',
      'placed-1',
      '--cpus',
      '2',
      '--memory',
      '2GiB',
      '--tag',
      'env:prod',
    ]);
    assert.equal(created.code, 0, created.stderr);
    const task = JSON.parse(created.stdout);
    assert.ok(hosts.some((h) => h.id === task.result.hostId && h.facts['cpu.cores'] >= 64));
  });

  test('rebalance in recommend mode, then apply the plan', async () => {
    const hosts = JSON.parse((await zenith(['--json', 'hosts', 'list'])).stdout).items as any[];
    const busy = hosts.find((h) => h.facts['cpu.cores'] >= 64)!;
    for (const name of ['heavy-a', 'heavy-b']) {
      const created = await zenith([
        'vms',
        'create',
        name,
        '--host',
        busy.name,
        '--cpus',
        '32',
        '--memory',
        '1GiB',
      ]);
      assert.equal(created.code, 0, created.stderr);
      assert.equal((await zenith(['vms', 'start', name])).code, 0);
    }
    const recommended = await zenith([
      '--json',
      'rebalance',
      '--min-benefit',
      '0.005',
      '--max-moves',
      '3',
    ]);
    assert.equal(recommended.code, 0, recommended.stderr);
    const { plan } = JSON.parse(recommended.stdout);
    assert.equal(plan.state, 'proposed');
    assert.ok(plan.moves.length > 0);
    const shown = await zenith(['plans', 'show', plan.id]);
    assert.match(shown.stdout, /predicted completion/);
    assert.match(shown.stdout, /imbalance \(std\. dev\. of load\)\s+[\d.]+% → [\d.]+%/);
    const applied = await zenith(['plans', 'apply', plan.id]);
    assert.equal(applied.code, 0, applied.stderr);
    assert.match(applied.stdout, /done: predicted [\d.]+ s, took [\d.]+ s/);
    const list = await zenith(['plans', 'list']);
    assert.match(list.stdout, new RegExp(`${plan.id}.*rebalance.*applied`));
  });

  test('evacuate a host with a predicted and an actual completion time, then take it out of maintenance', async () => {
    const hosts = JSON.parse((await zenith(['--json', 'hosts', 'list'])).stdout).items as any[];
    const host = hosts.find((h) => h.computed['vms.total'] > 0)!;
    const evacuated = await zenith(['hosts', 'evacuate', host.name]);
    assert.equal(evacuated.code, 0, evacuated.stderr);
    assert.match(evacuated.stdout, /predicted completion\s+[\d.]+ s/);
    assert.match(evacuated.stdout, /done: predicted [\d.]+ s, took [\d.]+ s/);
    assert.match(evacuated.stdout, /is in maintenance/);
    const listed = await zenith(['hosts', 'list']);
    assert.match(listed.stdout, new RegExp(`${host.name}.*maintenance`));
    const back = await zenith(['hosts', 'exit-maintenance', host.name]);
    assert.equal(back.code, 0, back.stderr);
  });
});
