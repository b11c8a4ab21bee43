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
