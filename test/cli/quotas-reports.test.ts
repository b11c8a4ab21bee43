import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { adminPassword } from '../../src/testing/control-plane.js';
import { parseCsv } from '../../src/testing/csv-reader.js';
import {
  cliRunner,
  startServerProcess,
  type ServerProcess,
} from '../../src/testing/server-process.js';

describe('quotas and compliance reports through the zenith command', () => {
  let server: ServerProcess;
  let dataDir: string;
  let zenith: ReturnType<typeof cliRunner>;
  /** Standard output, with the table's box drawing turned into spaces. */
  const run = async (args: string[]) => {
    const result = await zenith(args);
    assert.equal(result.code, 0, `${args.join(' ')}: ${result.stderr}`);
    return args.includes('csv') || args.includes('--json') || args.includes('json')
      ? result.stdout
      : result.stdout.replace(/[│┌┐└┘├┤┬┴┼─]/g, ' ');
  };
  before(async () => {
    dataDir = mkdtempSync(join(tmpdir(), 'zenith-quota-cli-'));
    server = await startServerProcess({ dataDir });
    zenith = cliRunner(server.url);
    const login = await zenith(['login', '--user', 'admin'], { input: `${adminPassword}\n` });
    assert.equal(login.code, 0, login.stderr);
  });
  after(async () => {
    await server.kill();
    rmSync(dataDir, { recursive: true, force: true });
  });

  test('quotas set, show, list and clear', async () => {
    await run(['groups', 'create', 'team-a']);
    const set = await run(['quotas', 'set', 'team-a', '--vcpus', '16', '--memory', '64GiB']);
    assert.match(set, /vCPUs\s+16\s+0\s+0\s+16/);
    assert.match(set, /disk\s+no limit/);
    const shown = JSON.parse(await run(['--json', 'quotas', 'show', 'team-a']));
    assert.deepEqual(shown.limits, {
      vcpus: 16,
      memoryBytes: 64 * 1024 ** 3,
      diskBytes: null,
      vms: null,
    });
    await run(['quotas', 'set', 'team-a', '--vcpus', 'none', '--vms', '3']);
    const listed = await run(['quotas', 'list']);
    assert.match(listed, /team-a\s+0 \/ no limit\s+0 B \/ 64(\.0)? GiB\s+0 B \/ no limit\s+0 \/ 3/);
    const bad = await zenith(['quotas', 'set', 'team-a', '--vms', 'many']);
    assert.equal(bad.code, 2, bad.stderr);
    assert.match(bad.stderr, /ZEN_BAD_REQUEST/);
    await run(['quotas', 'clear', 'team-a']);
    const gone = await zenith(['quotas', 'show', 'team-a']);
    assert.equal(gone.code, 4);
    assert.match(gone.stderr, /ZEN_NOT_FOUND/);
  });

  test('resource groups: create with a selector, list members, add and remove them', async () => {
    const add = await zenith([
      'connections',
      'add',
      'rg-lab',
      'simulated',
      '--set',
      'timeScale=0',
      '--set',
      'vmsPerHost=2',
    ]);
    assert.equal(add.code, 0, add.stderr);
    const vms = JSON.parse(await run(['--json', 'vms', 'list'])).items as Array<{
      id: string;
      name: string;
    }>;
    const [first, second] = vms as [{ id: string; name: string }, { id: string; name: string }];
    const created = await run(['resource-groups', 'create', 'pci', '--selector', 'tags=env:pci']);
    assert.match(created, /created resource group pci \(rg_/);
    assert.match(
      await run(['resource-groups', 'add', 'pci', first.name]),
      /member of pci \(1 listed\)/,
    );
    await run(['resource-groups', 'add', 'pci', second.id]);
    const shown = await run(['resource-groups', 'show', 'pci']);
    assert.match(shown, /selector\s+tags=env:pci/);
    assert.match(shown, new RegExp(`${first.name}\\s+vm\\s+${first.id}`));
    assert.match(shown, new RegExp(`${second.name}\\s+vm\\s+${second.id}`));
    assert.match(await run(['resource-groups', 'list']), /pci\s+rg_\S+\s+tags=env:pci\s+2/);
    await run(['resource-groups', 'remove', 'pci', first.id]);
    const after = JSON.parse(await run(['--json', 'resource-groups', 'show', 'pci']));
    assert.deepEqual(after.userFacts['user.members'], [second.id]);
    const unknown = await zenith(['resource-groups', 'add', 'pci', 'no-such-vm']);
    assert.equal(unknown.code, 4, unknown.stderr);
    assert.match(unknown.stderr, /ZEN_NOT_FOUND/);
  });

  test('access reports as a table, CSV and JSON', async () => {
    const from = new Date(Date.now() - 60_000).toISOString();
    await run(['groups', 'create', 'auditors']);
    await run(['bindings', 'create', 'auditors', 'viewer']);
    const to = new Date(Date.now() + 60_000).toISOString();
    const csv = parseCsv(
      await run(['access', 'report', 'effective', '--permission', 'audit.read', '--format', 'csv']),
    );
    assert.deepEqual(
      csv.map((row) => [row[0], row[3], row[4], row[8]]),
      [
        ['identity', 'permission', 'scope', 'role'],
        ['admin', 'audit.read', 'everything', 'admin'],
      ],
    );
    const changes = await run(['access', 'report', 'changes', '--from', from, '--to', to]);
    assert.match(changes, /admin\s+group\.create/);
    assert.match(changes, /admin\s+roleBinding\.create/);
    const actions = JSON.parse(
      await run([
        'access',
        'report',
        'actions',
        'admin',
        '--from',
        from,
        '--to',
        to,
        '--format',
        'json',
      ]),
    );
    assert.ok(actions.items.some((r: { action: string }) => r.action === 'roleBinding.create'));
    const bad = await zenith(['access', 'report', 'changes', '--from', 'yesterday', '--to', to]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /ZEN_BAD_REQUEST/);
  });
});
