import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import Database from 'better-sqlite3';
import { spawn } from 'node:child_process';
import { adminPassword } from '../../src/testing/control-plane.js';
import {
  cliRunner,
  configOf,
  startServerProcess,
  type ServerProcess,
} from '../../src/testing/server-process.js';

describe('the five-minute tour through the zenith command', () => {
  let server: ServerProcess;
  let dataDir: string;
  let zenith: ReturnType<typeof cliRunner>;
  before(async () => {
    dataDir = mkdtempSync(join(tmpdir(), 'zenith-tour-'));
    server = await startServerProcess({ dataDir });
    zenith = cliRunner(server.url);
  });
  after(async () => {
    await server.kill();
    rmSync(dataDir, { recursive: true, force: true });
  });

  test('before login, commands say how to log in and exit with 3', async () => {
    const result = await zenith(['vms', 'list']);
    assert.equal(result.code, 3);
    assert.match(result.stderr, /ZEN_UNAUTHENTICATED/);
    assert.match(result.stderr, /zenith login/);
  });

  test('log in, add a simulated connection, list and filter VMs', async () => {
    const wrong = await zenith(['login', '--user', 'admin'], { input: 'wrong-password\n' });
    assert.equal(wrong.code, 3);
    assert.match(wrong.stderr, /ZEN_BAD_CREDENTIALS/);
    const login = await zenith(['login', '--user', 'admin'], { input: `${adminPassword}\n` });
    assert.equal(login.code, 0, login.stderr);
    assert.match(login.stderr, /Logged in .* as admin \(admin\)/);
    const add = await zenith([
      'connections',
      'add',
      'lab',
      'simulated',
      '--set',
      'timeScale=0.05',
      '--set',
      'vmsPerHost=3',
    ]);
    assert.equal(add.code, 0, add.stderr);
    assert.match(add.stderr, /is connected/);
    const table = await zenith(['vms', 'list']);
    assert.equal(table.code, 0, table.stderr);
    assert.match(table.stdout, /NAME.*POWER.*HOST/);
    assert.match(table.stdout, /sim-vm-00001 \(simulated\)/);
    const json = await zenith([
      '--json',
      'vms',
      'list',
      '--filter',
      'power.state=running',
      '--tag',
      'env:prod',
    ]);
    const page = JSON.parse(json.stdout) as {
      items: Array<{ facts: Record<string, unknown>; tags: string[] }>;
    };
    assert.ok(page.items.length > 0);
    assert.ok(
      page.items.every(
        (vm) => vm.facts['power.state'] === 'running' && vm.tags.includes('env:prod'),
      ),
    );
    const bad = await zenith(['vms', 'list', '--filter', 'cpu.count>lots']);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /ZEN_BAD_FILTER/);
  });

  test('start, migrate and stop a VM, then read its location history and verify the audit trail', async () => {
    const list = JSON.parse(
      (await zenith(['--json', 'vms', 'list', '--filter', 'power.state=stopped', '--limit', '1']))
        .stdout,
    ) as { items: Array<{ name: string; computed: Record<string, string> }> };
    const vm = list.items[0]!;
    const start = await zenith(['vms', 'start', vm.name]);
    assert.equal(start.code, 0, start.stderr);
    assert.match(start.stderr, /vm.start succeeded/);
    const hosts = JSON.parse((await zenith(['--json', 'hosts', 'list'])).stdout) as {
      items: Array<{ id: string; name: string }>;
    };
    const target = hosts.items.find((h) => h.id !== vm.computed['location.hostId'])!;
    const migrate = await zenith(['vms', 'migrate', vm.name, target.name]);
    assert.equal(migrate.code, 0, migrate.stderr);
    const location = await zenith(['vms', 'location', vm.name]);
    assert.match(location.stdout, new RegExp(`host\\s+${target.name}`));
    const stop = await zenith(['vms', 'stop', vm.name]);
    assert.equal(stop.code, 0, stop.stderr);
    const history = await zenith(['vms', 'history', vm.name]);
    const rows = history.stdout.split('\n').filter((l) => /(running|stopped)/.test(l));
    assert.equal(rows.length, 4, history.stdout);
    assert.match(rows[0]!, new RegExp(`${target.name}.*stopped`));
    const again = await zenith(['vms', 'stop', vm.name]);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /ZEN_INVALID_STATE/);
    const tasks = await zenith(['tasks', 'list']);
    assert.match(tasks.stdout, /vm\.migrate.*succeeded/);
    const events = await zenith(['events', '--type', 'task.', '--limit', '5']);
    assert.match(events.stdout, /task\.succeeded/);
    const verify = await zenith(['audit', 'verify']);
    assert.equal(verify.code, 0, verify.stderr);
    assert.match(verify.stdout, /audit chain intact: \d+ records/);
  });

  test('clone a stopped VM, fully and linked; a taken name or a running source is refused', async () => {
    const stopped = JSON.parse(
      (await zenith(['--json', 'vms', 'list', '--filter', 'power.state=stopped', '--limit', '1']))
        .stdout,
    ) as { items: Array<{ name: string; facts: Record<string, unknown> }> };
    const source = stopped.items[0]!;
    const full = await zenith(['vms', 'clone', source.name, 'tour-copy', '--wait']);
    assert.equal(full.code, 0, full.stderr);
    assert.match(full.stderr, /vm\.clone succeeded/);
    const linked = await zenith(['--json', 'vms', 'clone', source.name, 'tour-link', '--linked']);
    assert.equal(linked.code, 0, linked.stderr);
    assert.equal(JSON.parse(linked.stdout).result.linked, true);
    const copy = JSON.parse((await zenith(['--json', 'vms', 'show', 'tour-copy'])).stdout) as {
      facts: Record<string, unknown>;
    };
    assert.deepEqual(
      [copy.facts['power.state'], copy.facts['cpu.count'], copy.facts['memory.bytes']],
      ['stopped', source.facts['cpu.count'], source.facts['memory.bytes']],
    );
    const taken = await zenith(['vms', 'clone', source.name, 'tour-copy']);
    assert.equal(taken.code, 1);
    assert.match(taken.stderr, /ZEN_CONFLICT/);
    const running = JSON.parse(
      (await zenith(['--json', 'vms', 'list', '--filter', 'power.state=running', '--limit', '1']))
        .stdout,
    ) as { items: Array<{ name: string }> };
    const busy = await zenith(['vms', 'clone', running.items[0]!.name, 'tour-busy', '--no-wait']);
    assert.equal(busy.code, 1);
    assert.match(busy.stderr, /ZEN_INVALID_STATE/);
  });

  test('events --follow shows a VM being created as it happens', async () => {
    const follower = spawn(
      process.execPath,
      [
        join(import.meta.dirname, '../../bin/zenith.js'),
        '--server',
        server.url,
        'events',
        '--follow',
      ],
      {
        env: { ...process.env, ZENITH_CONFIG: configOf(zenith) },
      },
    );
    let seen = '';
    follower.stdout.on('data', (chunk: Buffer) => (seen += chunk.toString()));
    await new Promise((r) => setTimeout(r, 1500));
    const hosts = JSON.parse(
      (await zenith(['--json', 'hosts', 'list', '--limit', '1'])).stdout,
    ) as { items: Array<{ name: string }> };
    const created = await zenith([
      'vms',
      'create',
      'tour-vm',
      '--host',
      hosts.items[0]!.name,
      '--cpus',
      '2',
      '--memory',
      '512MiB',
    ]);
    assert.equal(created.code, 0, created.stderr);
    for (let i = 0; i < 50 && !/task\.succeeded/.test(seen); i++)
      await new Promise((r) => setTimeout(r, 100));
    follower.kill();
    assert.match(seen, /task\.queued .*"kind":"vm\.create"/);
    assert.match(seen, /inventory\.created .*"name":"tour-vm"/);
    assert.match(seen, /task\.succeeded/);
    const badSize = await zenith([
      'vms',
      'create',
      'x',
      '--host',
      hosts.items[0]!.name,
      '--memory',
      'lots',
    ]);
    assert.equal(badSize.code, 2);
    // Commander hands over strings; the command parses numbers itself (the API does not coerce them).
    const badCpus = await zenith([
      'vms',
      'create',
      'x',
      '--host',
      hosts.items[0]!.name,
      '--cpus',
      'two',
    ]);
    assert.equal(badCpus.code, 2);
    assert.match(badCpus.stderr, /ZEN_BAD_REQUEST.*--cpus takes a whole number, not 'two'/);
  });

  test('a viewer is refused a stop with ZEN_FORBIDDEN; an administrator manages users and tokens', async () => {
    const created = await zenith(['users', 'create', 'vic', '--role', 'viewer'], {
      input: 'viewer-password-1\n',
    });
    assert.equal(created.code, 0, created.stderr);
    const token = await zenith(['tokens', 'create', 'automation']);
    assert.match(token.stdout, /^tok_[0-9A-Z]{26}\.\S+\n$/);
    const viewer = cliRunner(server.url);
    assert.equal(
      (await viewer(['login', '--user', 'vic'], { input: 'viewer-password-1\n' })).code,
      0,
    );
    const running = JSON.parse(
      (await viewer(['--json', 'vms', 'list', '--filter', 'power.state=running', '--limit', '1']))
        .stdout,
    ) as { items: Array<{ name: string }> };
    const refused = await viewer(['vms', 'stop', running.items[0]!.name]);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /ZEN_FORBIDDEN/);
    const users = await zenith(['users', 'list']);
    assert.match(users.stdout, /vic.*viewer/);
  });

  test('audit verify reads the store directly and names an edited record', async () => {
    const ok = await zenith(['audit', 'verify', '--data-dir', dataDir]);
    assert.equal(ok.code, 0, ok.stderr);
    const file = new Database(join(dataDir, 'zenith.db'));
    file.prepare("update audit set action = 'vm.start' where seq = 3").run();
    file.close();
    const broken = await zenith(['audit', 'verify', '--data-dir', dataDir]);
    assert.equal(broken.code, 1);
    assert.match(
      broken.stderr,
      /ZEN_AUDIT_CHAIN_BROKEN: audit chain broken at record 3 \(edited\)/,
    );
  });
});
