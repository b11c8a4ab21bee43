/**
 * Backups through the zenith command, against a test server with a real QEMU host: a repository
 * registered in the backup roots, a stopped VM backed up in full and then only what changed, the
 * catalogue as a table and as JSON, the repository's usage, a restore under a new name, verify,
 * an encrypted repository's key printed once, a delete, and a refusal.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  adminPassword,
  startTestServer,
  type TestServer,
} from '../../src/testing/control-plane.js';
import {
  ensureGuestImage,
  GUEST_KERNEL_APPEND,
  GUEST_READY_LINE,
} from '../../src/testing/guest-image.js';
import { cliRunner } from '../../src/testing/server-process.js';

const MiB = 1024 * 1024;

/** The data rows of a table the CLI printed: its cells, trimmed (the header row is left out). */
const rowsOf = (table: string) =>
  table
    .split('\n')
    .filter((line) => line.startsWith('│'))
    .map((line) =>
      line
        .split('│')
        .slice(1, -1)
        .map((cell) => cell.trim()),
    )
    .slice(1);

describe('backups through the zenith command (real QEMU)', () => {
  let s: TestServer;
  let token: string;
  let zenith: ReturnType<typeof cliRunner>;
  const base = mkdtempSync(join(tmpdir(), 'zenith-cli-backup-'));
  const root = join(base, 'vms');
  const disk = join(root, 'bk', 'disk0.qcow2');
  const ok = async (args: string[]) => {
    const result = await zenith(args);
    assert.equal(result.code, 0, `${args.join(' ')}: ${result.stderr}`);
    return result;
  };
  const json = async (args: string[]) => JSON.parse((await ok(['--json', ...args])).stdout);
  const write = (pattern: number, offset: number, length: number) =>
    execFileSync('qemu-io', ['-f', 'qcow2', '-c', `write -P ${pattern} ${offset} ${length}`, disk]);

  before(async () => {
    const image = await ensureGuestImage();
    s = await startTestServer();
    token = await s.login();
    const added = await s.request('POST', '/connections', {
      token,
      body: {
        name: 'bk',
        type: 'qemu',
        settings: {
          storageRoots: [root, dirname(image.kernel)],
          accelerator: 'tcg',
          hostName: 'bk-host',
        },
      },
    });
    assert.equal(added.body.state, 'connected', added.body.lastError);
    const host = (await s.request('GET', '/hosts/bk-host', { token })).body;
    const created = await s.request('POST', '/vms', {
      token,
      body: {
        name: 'bk',
        hostId: host.id,
        cpus: 1,
        memoryBytes: 128 * MiB,
        diskBytes: 64 * MiB,
        options: { kernel: image.kernel, initrd: image.initrd, cmdline: GUEST_KERNEL_APPEND },
      },
    });
    assert.equal(created.status, 202, JSON.stringify(created.body));
    const done = await s.waitForTask(token, created.body.id);
    assert.equal(done.state, 'succeeded', JSON.stringify(done.error));
    zenith = cliRunner(s.baseUrl);
    const login = await zenith(['login', '--user', 'admin'], { input: `${adminPassword}\n` });
    assert.equal(login.code, 0, login.stderr);
  });
  after(async () => {
    await s?.close();
    rmSync(base, { recursive: true, force: true });
  });

  test('a repository, a full and an incremental backup, the catalogue, usage, a restore, verify', async () => {
    const path = join(s.dataDir, 'backups', 'main');
    const added = await ok(['backups', 'repositories', 'add', 'main', path]);
    assert.equal(added.stdout, '', 'no key for an unencrypted repository');
    assert.match(added.stderr, new RegExp(`repository main \\(\\S+\\) at ${path}, 0 backup`));

    write(0x11, 0, 8 * MiB);
    const full = await ok(['backups', 'create', 'bk', '--repository', 'main']);
    assert.match(full.stderr, /backup\.create succeeded/);
    assert.match(
      full.stdout,
      /^backup \S+: full, read 8 MiB, stored [\d.]+ \w+; chunks 1 new, 1 shared\n/,
    );

    // 1 MiB changed: only that MiB is read (the rest of its 4 MiB chunk is the last backup's).
    write(0x33, 20 * MiB, MiB);
    const second = await json(['backups', 'create', 'bk', '--repository', 'main']);
    assert.equal(second.state, 'succeeded');
    assert.equal(second.result.scope, 'incremental');

    // What a user checks: two rows, newest first, the second an incremental that read 1 MiB.
    const table = await ok(['backups', 'list', '--vm', 'bk']);
    assert.match(table.stdout, /ID.*VM.*TAKEN.*SCOPE.*SIZE.*READ.*STORED.*NEW\/SHARED.*STATE/);
    const rows = rowsOf(table.stdout);
    assert.equal(rows.length, 2, table.stdout);
    assert.deepEqual(
      rows.map((row) => [row[0], row[1], row[3], row[4], row[5], row[8]]),
      [
        [second.result.backupId, 'bk', 'incremental', '64 MiB', '1 MiB', 'ok'],
        [rows[1]![0], 'bk', 'full', '64 MiB', '8 MiB', 'ok'],
      ],
    );
    const list = await json(['backups', 'list', '--repository', 'main', '--state', 'ok']);
    assert.deepEqual(
      list.items.map((b: { readBytes: number }) => b.readBytes),
      [MiB, 8 * MiB],
    );
    assert.equal(list.items[0].parentId, list.items[1].id);
    const firstId: string = list.items[1].id;

    const shown = await ok(['backups', 'show', second.result.backupId]);
    assert.match(shown.stdout, /scope\s+incremental/);
    // A stopped VM's disk: nothing to freeze.
    assert.match(shown.stdout, /quiesced\s+no: crash-consistent, or the VM was stopped/);
    assert.match(shown.stdout, /repository\s+main \(/);
    assert.match(shown.stdout, new RegExp(`parent\\s+${firstId}`));
    assert.match(shown.stdout, /disk0\s+│ 64 MiB\s+│ changed\s+│ 1 MiB/);

    const usage = await ok(['backups', 'repositories', 'show', 'main']);
    assert.match(usage.stdout, /backups\s+2\n/);
    assert.match(usage.stdout, /chunks\s+2\n/);
    assert.match(usage.stdout, /logical\s+20 MiB\n/);
    const ratio = /dedup ratio\s+([\d.]+)x\n/.exec(usage.stdout);
    assert.ok(ratio && Number(ratio[1]) > 1, usage.stdout);
    assert.match(usage.stdout, /free space\s+[\d.]+ \w+ of [\d.]+ \w+\n/);

    const restored = await ok([
      'backups',
      'restore',
      firstId,
      '--host',
      'bk-host',
      '--name',
      'bk-back',
    ]);
    assert.match(restored.stdout, /^restored as bk-back \(\S+\), stopped/);
    const copy = (await s.request('GET', '/vms/bk-back', { token })).body;
    assert.equal(copy.name, 'bk-back');
    assert.equal(copy.facts['power.state'], 'stopped');
    assert.equal(copy.computed['location.hostName'], 'bk-host');

    // A disk as a raw file: sparse where the disk reads as zeroes, its bytes the disk's at the point.
    const file = join(base, 'bk-disk0.raw');
    const downloaded = await ok([
      'backups',
      'download',
      second.result.backupId,
      '--disk',
      'disk0',
      '--output',
      file,
    ]);
    assert.match(downloaded.stderr, new RegExp(`wrote ${file} \\(64 MiB, raw\\)`));
    assert.equal(statSync(file).size, 64 * MiB);
    assert.ok(statSync(file).blocks * 512 <= 16 * MiB, 'the zeroes are holes');
    assert.equal(
      execFileSync('qemu-img', [
        'compare',
        '-U',
        '-f',
        'raw',
        '-F',
        'qcow2',
        file,
        disk,
      ]).toString(),
      'Images are identical.\n',
    );
    const asQcow2 = join(base, 'bk-disk0.qcow2');
    const qcow2 = await ok([
      'backups',
      'download',
      second.result.backupId,
      '--format',
      'qcow2',
      '--output',
      asQcow2,
    ]);
    assert.match(qcow2.stderr, new RegExp(`wrote ${asQcow2} \\([\\d.]+ MiB, qcow2\\)`));
    execFileSync('qemu-img', ['check', '-q', asQcow2]);
    assert.equal(
      execFileSync('qemu-img', ['compare', '-U', asQcow2, file]).toString(),
      'Images are identical.\n',
    );
    const missing = await zenith([
      'backups',
      'download',
      second.result.backupId,
      '--disk',
      'disk3',
    ]);
    assert.equal(missing.code, 4, missing.stderr);
    assert.match(missing.stderr, /error ZEN_NOT_FOUND: backup \S+ has no disk disk3/);

    const nowhere = await zenith(['backups', 'restore', second.result.backupId]);
    assert.notEqual(nowhere.code, 0);
    assert.match(nowhere.stderr, /--host H for a new VM, or --replace VM/);

    const verified = await ok(['backups', 'repositories', 'verify', 'main']);
    assert.match(verified.stdout, /checked 2 backup\(s\), 2 chunk\(s\): no damage/);
    const queued = await ok(['backups', 'repositories', 'verify', 'main', '--no-wait']);
    const task = /queued backup\.verify as (task_\w+)/.exec(queued.stderr);
    assert.ok(task, queued.stderr);
    await ok(['tasks', 'wait', task[1]!]);

    // On a schedule: set, shown with its next slots, then back to on demand.
    const weekly = await ok([
      'backups',
      'repositories',
      'verify-schedule',
      'main',
      '0 3 * * 0',
      '--time-zone',
      'Europe/Paris',
    ]);
    assert.match(weekly.stdout, /schedule\s+0 3 \* \* 0 \(Europe\/Paris\)/);
    assert.match(weekly.stdout, /next runs\s+\S+/);
    const shownSchedule = await json(['backups', 'repositories', 'verify-schedule', 'main']);
    assert.equal(shownSchedule.nextRuns.length, 3);
    const off = await ok(['backups', 'repositories', 'verify-schedule', 'main', '--off']);
    assert.match(off.stderr, /main: verify on demand only/);
    const none = await zenith(['backups', 'repositories', 'verify-schedule', 'main']);
    assert.equal(none.code, 4, none.stderr);
    assert.match(
      none.stderr,
      /error ZEN_NOT_FOUND: backup repository main is verified on demand only/,
    );

    // The oldest goes; the incremental stays (every backup lists all its chunks).
    const deleted = await ok(['backups', 'delete', firstId]);
    assert.match(deleted.stderr, new RegExp(`deleted backup ${firstId}`));
    const left = await json(['backups', 'list', '--vm', 'bk']);
    assert.deepEqual(
      left.items.map((b: { id: string }) => b.id),
      [second.result.backupId],
    );
  });

  test("an encrypted repository's key is printed once; remove; a path outside the roots is refused", async () => {
    const vault = await ok([
      'backups',
      'repositories',
      'add',
      'vault',
      join(s.dataDir, 'backups', 'vault'),
      '--encrypted',
      '--chunk-size',
      '1MiB',
    ]);
    assert.match(vault.stdout, /^[0-9a-f]{64}\n$/);
    assert.match(vault.stderr, /shown only this once: keep a copy elsewhere/);
    const repositories = await ok(['backups', 'repositories']);
    const vaultRow = rowsOf(repositories.stdout).find((row) => row[0] === 'vault');
    assert.deepEqual(vaultRow?.slice(2, 5), ['0', '1 MiB', 'yes']);
    await ok(['backups', 'repositories', 'remove', 'vault']);
    const names = (await json(['backups', 'repositories', 'list'])).items.map(
      (r: { name: string }) => r.name,
    );
    assert.deepEqual(names, ['main']);

    const outside = await zenith([
      'backups',
      'repositories',
      'add',
      'out',
      join(base, 'elsewhere'),
    ]);
    assert.equal(outside.code, 2, outside.stderr);
    assert.match(outside.stderr, /^error ZEN_BAD_REQUEST: .*backup roots/);
    const unknown = await zenith(['backups', 'create', 'bk', '--repository', 'nope']);
    assert.equal(unknown.code, 4, unknown.stderr);
    assert.match(unknown.stderr, /error ZEN_NOT_FOUND: no backup repository 'nope'/);
  });
  test('a backup job: add with a selector, a schedule and a retention; show; run; set; remove', async () => {
    const added = await ok([
      'backups',
      'jobs',
      'add',
      'nightly',
      'main',
      '--selector',
      "vm.name == 'bk'",
      '--schedule',
      '30 2 * * *',
      '--time-zone',
      'Europe/Paris',
      '--keep',
      'last=3',
      '--keep',
      'daily=7',
    ]);
    assert.match(added.stderr, /^backup job nightly \(bjob_\S+\), acting as job-\S+; next run /);
    const listed = rowsOf((await ok(['backups', 'jobs'])).stdout);
    assert.deepEqual(
      listed.map((row) => [row[0], row[1], row[2], row[3], row[6]]),
      [['nightly', 'main', 'everything', '30 2 * * * Europe/Paris', 'enabled']],
    );
    const shown = (await ok(['backups', 'jobs', 'show', 'nightly'])).stdout;
    assert.match(shown, /retention\s+last=3 daily=7/);
    assert.match(shown, /selects\s+bk\n/);
    assert.match(shown, /at once\s+1 per host, 2 per repository/);

    const ran = await ok(['backups', 'jobs', 'run', 'nightly']);
    assert.match(ran.stderr, /backup\.job succeeded/);
    assert.match(
      ran.stdout,
      /^bk: succeeded backup_\S+ \((full|incremental)\)\n1 VM\(s\) backed up, 0 backup\(s\) pruned\n$/,
    );

    // The job's backup, proven by a restore test: booted with no network, seen up, removed.
    const backupId = /^bk: succeeded (backup_\S+)/.exec(ran.stdout)![1]!;
    const tested = await ok([
      'backups',
      'test',
      backupId,
      '--host',
      'bk-host',
      '--marker',
      GUEST_READY_LINE,
      '--timeout',
      '120',
    ]);
    assert.match(
      tested.stdout,
      new RegExp(`^the guest came up in [\\d.]+ s: ${GUEST_READY_LINE}\\n$`),
    );

    await ok([
      'backups',
      'jobs',
      'set',
      'nightly',
      '--disable',
      '--keep',
      'none',
      '--per-host',
      '2',
    ]);
    const changed = await json(['backups', 'jobs', 'show', 'nightly']);
    assert.equal(changed.enabled, false);
    assert.equal(changed.retention, null);
    assert.deepEqual(changed.nextRuns, []);
    assert.equal(changed.concurrency.perHost, 2);
    assert.deepEqual(
      changed.selection.vms.map((vm: { name: string }) => vm.name),
      ['bk'],
    );
    await ok([
      'backups',
      'jobs',
      'set',
      'nightly',
      '--restore-test',
      'bk-host',
      '--restore-test-marker',
      GUEST_READY_LINE,
      '--restore-test-timeout',
      '90',
    ]);
    assert.match(
      (await ok(['backups', 'jobs', 'show', 'nightly'])).stdout,
      new RegExp(`restore tests\\s+on bk-host, waiting for /${GUEST_READY_LINE}/`),
    );
    assert.equal(
      (await json(['backups', 'jobs', 'show', 'nightly'])).restoreTest.timeoutSeconds,
      90,
    );
    await ok(['backups', 'jobs', 'set', 'nightly', '--restore-test', '']);
    assert.equal((await json(['backups', 'jobs', 'show', 'nightly'])).restoreTest, null);
    const bad = await zenith(['backups', 'jobs', 'set', 'nightly', '--schedule', '61 * * * *']);
    assert.equal(bad.code, 2, bad.stderr);
    assert.match(bad.stderr, /error ZEN_BAD_REQUEST: '61 \* \* \* \*' is not a cron pattern/);
    await ok(['backups', 'jobs', 'remove', 'nightly']);
    assert.deepEqual((await json(['backups', 'jobs', 'list'])).items, []);
  });
  test('restore-disk: a disk of a backup added to another VM, then over the disk of its own VM', async () => {
    const [newest] = (await json(['backups', 'list', '--vm', 'bk'])).items;
    const raw = join(base, 'bk-newest.raw');
    await ok(['backups', 'download', newest.id, '--disk', 'disk0', '--output', raw]);
    const same = (image: string) =>
      execFileSync('qemu-img', ['compare', '-f', 'raw', '-F', 'qcow2', raw, image]).toString();

    const added = await ok(['backups', 'restore-disk', newest.id, 'disk0', '--vm', 'bk-back']);
    assert.match(added.stderr, /backup\.restoreDisk succeeded/);
    assert.match(added.stdout, /^disk0 restored into bk-back \(\S+\) as disk1, 64 MiB\n/);
    assert.equal(
      (await s.request('GET', '/vms/bk-back', { token })).body.facts['disk.totalBytes'],
      128 * MiB,
    );

    write(0x77, 0, MiB);
    const over = await json(['backups', 'restore-disk', newest.id, 'disk0', '--replace', 'disk0']);
    assert.equal(over.state, 'succeeded');
    assert.deepEqual([over.result.name, over.result.vmDiskId], ['bk', 'disk0']);
    assert.equal(same(over.result.path), 'Images are identical.\n');
    assert.throws(() => statSync(disk), /ENOENT/, 'the image it had is gone');

    const missing = await zenith(['backups', 'restore-disk', newest.id, 'disk4']);
    assert.equal(missing.code, 4, missing.stderr);
    assert.match(missing.stderr, /error ZEN_NOT_FOUND: backup \S+ has no disk disk4/);
  });
});
