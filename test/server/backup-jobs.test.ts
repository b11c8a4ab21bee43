/**
 * Backup jobs through the API, on a real QEMU host: a job for the VMs tagged env:prod that runs on
 * its schedule (a cron pattern with seconds, in a time zone) and on demand, backs up only those,
 * one at a time on the host, incrementally after the first, keeps what its retention says, and
 * acts as an identity of its own; a job's reach is its binding, which nobody can make wider than
 * their own; bad input is refused with codes and leaves nothing behind.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { startTestServer, type TestServer } from '../../src/testing/control-plane.js';
import {
  ensureGuestImage,
  GUEST_KERNEL_APPEND,
  GUEST_READY_LINE,
} from '../../src/testing/guest-image.js';
import { until } from '../../src/testing/wait.js';

const MiB = 1024 * 1024;

/** The chunks a backup's manifest names (its file in the repository). */
function chunkNamesOf(repository: string, backupId: string): string[] {
  const manifest = JSON.parse(
    readFileSync(join(repository, 'backups', `${backupId}.json`), 'utf8'),
  ) as { disks: Array<{ chunks: Array<string | null> }> };
  return manifest.disks.flatMap((disk) => disk.chunks.filter((c): c is string => c !== null));
}

describe('backup jobs through the API (real QEMU)', () => {
  let s: TestServer;
  let token: string;
  const base = mkdtempSync(join(tmpdir(), 'zenith-api-backup-jobs-'));
  const vms: Record<string, string> = {};

  const call = async (method: string, path: string, body?: unknown, as = token) =>
    s.request(method, path, { token: as, ...(body !== undefined ? { body } : {}) });
  const ok = async (method: string, path: string, body?: unknown, as = token) => {
    const answer = await call(method, path, body, as);
    assert.ok(
      answer.status < 300,
      `${method} ${path}: ${answer.status} ${JSON.stringify(answer.body)}`,
    );
    return answer.body;
  };
  const refused = async (
    status: number,
    code: string,
    method: string,
    path: string,
    body?: unknown,
    as = token,
  ) => {
    const answer = await call(method, path, body, as);
    assert.equal(answer.status, status, `${method} ${path}: ${JSON.stringify(answer.body)}`);
    assert.equal(answer.body.error.code, code, JSON.stringify(answer.body));
    return answer.body.error;
  };
  const backupsOf = async (repository: string) =>
    (await ok('GET', `/backups?repository=${repository}`)).items as Array<{
      id: string;
      state: string;
      vmName: string;
      jobId: string | null;
      takenAt: number;
      readBytes: number;
      parentId: string | null;
    }>;

  /** A new VM on the host, tagged; answers its id. */
  const taggedVm = async (name: string, tag: string, extra: Record<string, unknown> = {}) => {
    const host = await ok('GET', '/hosts/bj');
    const created = await call('POST', '/vms', {
      name,
      hostId: host.id,
      cpus: 1,
      memoryBytes: 64 * MiB,
      diskBytes: 16 * MiB,
      ...extra,
    });
    assert.equal(created.status, 202, JSON.stringify(created.body));
    const done = await s.waitForTask(token, created.body.id, 60_000);
    assert.equal(done.state, 'succeeded', JSON.stringify(done.error));
    await ok('PATCH', `/objects/${done.result.vmId}`, { addTags: [tag] });
    return done.result.vmId as string;
  };

  before(async () => {
    const image = await ensureGuestImage();
    s = await startTestServer();
    token = await s.login();
    const added = await ok('POST', '/connections', {
      name: 'bj',
      type: 'qemu',
      settings: {
        storageRoots: [base, dirname(image.kernel)],
        accelerator: 'tcg',
        hostName: 'bj',
      },
    });
    assert.equal(added.state, 'connected', added.lastError);
    for (const [name, tag] of [
      ['web-1', 'env:prod'],
      ['db-1', 'env:prod'],
      ['dev-1', 'env:dev'],
    ] as const)
      vms[name] = await taggedVm(name, tag);
    await ok('POST', '/backup-repositories', {
      name: 'jobs',
      path: join(s.dataDir, 'backups', 'jobs'),
    });
  });
  after(async () => {
    await s.close();
    rmSync(base, { recursive: true, force: true });
  });

  test('a job for VMs tagged env:prod runs on its schedule and on demand, one backup at a time on the host, incremental after the first, keeping what its retention says, as an identity of its own', async () => {
    const job = await ok('POST', '/backup-jobs', {
      name: 'prod-nightly',
      repository: 'jobs',
      selector: "'env:prod' in vm.tags",
      schedule: '*/2 * * * * *',
      timeZone: 'Europe/Paris',
      retention: { last: 2 },
      concurrency: { perHost: 1 },
    });
    assert.equal(job.repository.name, 'jobs');
    assert.match(job.identity.name, /^job-/);
    assert.equal(job.nextRuns.length, 3);
    assert.equal(job.nextRuns[1] - job.nextRuns[0], 2000, 'every 2 s');
    assert.deepEqual(job.concurrency, { perHost: 1, perRepository: 2 });

    const selection = await ok('GET', `/backup-jobs/${job.id}/selection`);
    assert.deepEqual(
      selection.vms.map((vm: { name: string }) => vm.name),
      ['db-1', 'web-1'],
    );

    // Three scheduled runs, each ended before the next began (one run of a job at a time).
    const runs = new Map<string, { state: string; createdAt: number }>();
    const deadline = Date.now() + 90_000;
    while (runs.size < 3 && Date.now() < deadline) {
      const listed = await ok('GET', `/tasks?targetId=${job.id}`);
      for (const run of listed.items)
        if (['succeeded', 'failed', 'cancelled'].includes(run.state) && !runs.has(run.id))
          runs.set(run.id, await ok('GET', `/tasks/${run.id}`));
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
    assert.ok(runs.size >= 3, `${runs.size} runs in 90 s`);
    await ok('PATCH', `/backup-jobs/${job.id}`, { enabled: false });
    const disabled = await ok('GET', `/backup-jobs/${job.id}`);
    assert.deepEqual(disabled.nextRuns, []);
    assert.equal(disabled.lastRun.trigger, 'schedule');

    const ordered = [...runs.values()].sort(
      (a, b) => a.createdAt - b.createdAt,
    ) as unknown as Array<{
      state: string;
      ownerId: string;
      result: {
        vms: Array<{ vmName: string; state: string; taskId: string; scope: string }>;
        pruned: string[];
      };
    }>;
    for (const run of ordered.slice(0, 3)) {
      assert.equal(run.state, 'succeeded', JSON.stringify(run));
      assert.equal(run.ownerId, job.identity.id, 'a scheduled run is the job’s own');
      assert.deepEqual(run.result.vms.map((vm) => vm.vmName).sort(), ['db-1', 'web-1']);
      // perHost 1: the run's two backups did not overlap.
      const children = await Promise.all(
        run.result.vms.map((vm) => ok('GET', `/tasks/${vm.taskId}`)),
      );
      for (const child of children) assert.equal(child.ownerId, job.identity.id);
      const [first, second] = children.sort((a, b) => a.startedAt - b.startedAt);
      assert.ok(first.endedAt <= second.startedAt, 'one backup at a time on the host');
    }
    assert.deepEqual(
      ordered[0]!.result.vms.map((vm) => vm.scope),
      ['full', 'full'],
      'the first backups read everything',
    );
    assert.deepEqual(
      ordered[1]!.result.vms.map((vm) => vm.scope),
      ['incremental', 'incremental'],
    );
    assert.equal(ordered[2]!.result.pruned.length, 2, 'the third run pruned one backup per VM');

    // On demand: the job's selection, backed up by the job's identity; the retention still holds.
    const manual = await call('POST', `/backup-jobs/${job.id}/run`);
    assert.equal(manual.status, 202, JSON.stringify(manual.body));
    const ran = await s.waitForTask(token, manual.body.id, 60_000);
    assert.equal(ran.state, 'succeeded', JSON.stringify(ran.error));
    const catalogue = await backupsOf('jobs');
    assert.deepEqual(
      catalogue.map((backup) => backup.vmName).sort(),
      ['db-1', 'db-1', 'web-1', 'web-1'],
      'dev-1 never; two kept of each',
    );
    assert.ok(catalogue.every((backup) => backup.jobId === job.id));
    // Stopped VMs: nothing changed, nothing read.
    assert.ok(catalogue.every((backup) => backup.parentId !== null && backup.readBytes === 0));
    // Removing the job leaves its backups, and its identity goes.
    await ok('DELETE', `/backup-jobs/${job.id}`);
    await refused(404, 'ZEN_NOT_FOUND', 'GET', `/backup-jobs/${job.id}`);
    await refused(404, 'ZEN_NOT_FOUND', 'GET', `/users/${job.identity.id}`);
    assert.equal((await backupsOf('jobs')).length, 4);
  });

  test('a repository verified and garbage-collected on schedules: each slot runs as the system, a damaged chunk found by a scheduled verify marks the backups using it; removed, no slot fires; bad input and a viewer are refused', async () => {
    const path = '/backup-repositories/jobs/verify-schedule';
    await refused(404, 'ZEN_NOT_FOUND', 'GET', path);
    await refused(400, 'ZEN_BAD_REQUEST', 'PUT', path, { schedule: 'nope' });
    await refused(400, 'ZEN_BAD_REQUEST', 'PUT', path, {
      schedule: '0 3 * * 0',
      timeZone: 'Mars/Olympus',
    });
    await refused(404, 'ZEN_NOT_FOUND', 'PUT', '/backup-repositories/none/verify-schedule', {
      schedule: '0 3 * * 0',
    });
    await ok('POST', '/users', { name: 'vera', password: 'correct horse battery', role: 'viewer' });
    const viewer = await s.login('vera', 'correct horse battery');
    await refused(403, 'ZEN_FORBIDDEN', 'PUT', path, { schedule: '0 3 * * 0' }, viewer);

    const weekly = await ok('PUT', path, { schedule: '0 3 * * 0', timeZone: 'Europe/Paris' });
    assert.equal(weekly.nextRuns.length, 3);
    for (const at of weekly.nextRuns) {
      const local = new Intl.DateTimeFormat('en-GB', {
        timeZone: 'Europe/Paris',
        weekday: 'short',
        hour: '2-digit',
        minute: '2-digit',
      }).format(new Date(at));
      assert.equal(local, 'Sun 03:00', 'Sundays at 03:00 in Paris');
    }
    const audited = (await ok('GET', '/audit?action=backupRepository.schedule.verify')).items;
    assert.ok(audited.length >= 1, 'the change is audited');

    // Every 2 s: the verifies are the system's tasks, one after the other.
    const backups = await backupsOf('jobs');
    assert.ok(backups.length > 0);
    await ok('PUT', path, { schedule: '*/2 * * * * *' });
    const verifies = async () =>
      (
        (await ok('GET', '/tasks?limit=1000')).items as Array<{
          id: string;
          kind: string;
          state: string;
          ownerId: string;
          result: { checkedBackups: number; damagedChunks: string[] } | null;
        }>
      ).filter((t) => t.kind === 'backup.verify');
    const first = await until('a scheduled verify to succeed', async () =>
      (await verifies()).find((t) => t.state === 'succeeded'),
    );
    assert.equal(first.ownerId, 'system');
    assert.equal(first.result!.checkedBackups, backups.length);
    assert.deepEqual(first.result!.damagedChunks, []);
    const shown = await ok('GET', path);
    assert.equal(shown.lastRun.state === 'succeeded' || shown.lastRun.state === 'running', true);

    // A backup with data, one of its chunks damaged: the next scheduled verify finds it and marks
    // every backup that uses it.
    execFileSync('qemu-io', [
      '-f',
      'qcow2',
      '-c',
      'write -P 0x5a 0 1M',
      join(base, 'dev-1', 'disk0.qcow2'),
    ]);
    const made = await call('POST', `/vms/${vms['dev-1']}/backups`, { repository: 'jobs' });
    assert.equal(made.status, 202, JSON.stringify(made.body));
    const backedUp = await s.waitForTask(token, made.body.id, 60_000);
    assert.equal(backedUp.state, 'succeeded', JSON.stringify(backedUp.error));
    const [chunk] = chunkNamesOf(join(s.dataDir, 'backups', 'jobs'), backedUp.result.backupId);
    assert.ok(chunk, 'the backup stored a chunk');
    const file = join(s.dataDir, 'backups', 'jobs', 'chunks', chunk.slice(0, 4), chunk);
    writeFileSync(file, readFileSync(file).subarray(0, 64));
    const caught = await until('a scheduled verify to find the damage', async () =>
      (await verifies()).find((t) => t.state === 'succeeded' && t.result!.damagedChunks.length > 0),
    );
    assert.deepEqual(caught.result!.damagedChunks, [chunk]);
    const damaged = (await backupsOf('jobs')).filter((b) => b.state === 'damaged');
    assert.deepEqual(
      damaged.map((b) => b.id),
      [backedUp.result.backupId],
      'the backup that uses the chunk, and only it',
    );

    const removed = await call('DELETE', path);
    assert.equal(removed.status, 204);
    await refused(404, 'ZEN_NOT_FOUND', 'GET', path);
    const settled = await until(
      'no verify under way',
      async () =>
        (await verifies()).every((t) => t.state !== 'queued' && t.state !== 'running') || undefined,
    );
    assert.ok(settled);
    const count = (await verifies()).length;

    // Garbage collection the same way: the chunks no backup names go, as the system.
    const gcPath = '/backup-repositories/jobs/garbage-collect-schedule';
    const gc = await ok('PUT', gcPath, { schedule: '*/2 * * * * *' });
    assert.equal(gc.work, 'garbage-collect');
    assert.deepEqual(
      (await ok('GET', '/backup-repositories/jobs/schedules')).items.map(
        (each: { work: string; schedule: string }) => [each.work, each.schedule],
      ),
      [['garbage-collect', '*/2 * * * * *']],
      'the verify schedule was removed above',
    );
    const collected = await until('a scheduled garbage collection to succeed', async () =>
      (
        (await ok('GET', '/tasks?limit=1000')).items as Array<{
          kind: string;
          state: string;
          ownerId: string;
        }>
      ).find((t) => t.kind === 'backup.gc' && t.state === 'succeeded'),
    );
    assert.equal(collected.ownerId, 'system');
    assert.equal((await call('DELETE', gcPath)).status, 204);
    assert.equal((await verifies()).length, count, 'no verify slot fired once it was removed');
  });

  test('two jobs writing to one repository, one backup at a time there: a run waits for the other’s backup, and both finish', async () => {
    const jobs = await Promise.all(
      (['web-1', 'db-1'] as const).map((name) =>
        ok('POST', '/backup-jobs', {
          name: `only-${name}`,
          repository: 'jobs',
          selector: `vm.name == '${name}'`,
          concurrency: { perHost: 2, perRepository: 1 },
        }),
      ),
    );
    const runs = await Promise.all(jobs.map((job) => call('POST', `/backup-jobs/${job.id}/run`)));
    const ended = await Promise.all(runs.map((run) => s.waitForTask(token, run.body.id, 60_000)));
    for (const run of ended) assert.equal(run.state, 'succeeded', JSON.stringify(run.error));
    const children = await Promise.all(
      ended.map((run) => ok('GET', `/tasks/${run.result.vms[0].taskId}`)),
    );
    const [first, second] = children.sort((a, b) => a.startedAt - b.startedAt);
    assert.ok(first.endedAt <= second.startedAt, 'one backup at a time into the repository');
    for (const job of jobs) await ok('DELETE', `/backup-jobs/${job.id}`);
  });

  test('a job reaches what its binding reaches: a manager of one group makes jobs there only, never wider than their own backup.run', async () => {
    const group = await ok('POST', '/resource-groups', { name: 'team-a' });
    await ok('POST', `/resource-groups/${group.id}/members`, { object: vms['web-1'] });
    await ok('POST', `/resource-groups/${group.id}/members`, { object: vms['dev-1'] });
    await ok('POST', '/roles', {
      name: 'backup-manager',
      permissions: ['inventory.read', 'backup.read', 'backup.run', 'backup.manage'],
    });
    await ok('POST', '/roles', {
      name: 'backup-planner',
      permissions: ['inventory.read', 'backup.read', 'backup.manage'],
    });
    const tokens: Record<string, string> = {};
    for (const [name, role] of [
      ['alice', 'backup-manager'],
      ['bob', 'backup-planner'],
    ] as const) {
      await ok('POST', '/users', { name, password: 'correct horse battery', role: 'none' });
      await ok('POST', '/role-bindings', { subject: name, role, scope: 'team-a' });
      tokens[name] = await s.login(name, 'correct horse battery');
    }
    const mine = await ok(
      'POST',
      '/backup-jobs',
      { name: 'team-a-all', repository: 'jobs', scope: 'team-a' },
      tokens.alice,
    );
    assert.equal(mine.scope.name, 'team-a');
    assert.deepEqual(
      (await ok('GET', `/backup-jobs/${mine.id}/selection`, undefined, tokens.alice)).vms.map(
        (vm: { name: string }) => vm.name,
      ),
      ['dev-1', 'web-1'],
      'the group’s members, not db-1',
    );
    // Wider than her reach: refused, nothing made.
    await refused(
      403,
      'ZEN_FORBIDDEN',
      'POST',
      '/backup-jobs',
      { name: 'everything', repository: 'jobs' },
      tokens.alice,
    );
    await refused(
      403,
      'ZEN_FORBIDDEN',
      'PATCH',
      `/backup-jobs/${mine.id}`,
      { scope: null },
      tokens.alice,
    );
    // A VM out of her reach: as if it did not exist.
    await refused(
      404,
      'ZEN_NOT_FOUND',
      'PATCH',
      `/backup-jobs/${mine.id}`,
      { scope: vms['db-1'] },
      tokens.alice,
    );
    // Bob manages jobs there but may not back up: he cannot give a job what he lacks.
    await refused(
      403,
      'ZEN_FORBIDDEN',
      'POST',
      '/backup-jobs',
      { name: 'bobs', repository: 'jobs', scope: 'team-a' },
      tokens.bob,
    );
    const names = (await ok('GET', '/backup-jobs')).items.map((j: { name: string }) => j.name);
    assert.deepEqual(names, ['team-a-all']);
    // Alice sees her job only; a job on everything is not hers to see.
    const global = await ok('POST', '/backup-jobs', { name: 'global', repository: 'jobs' });
    assert.deepEqual(
      (await ok('GET', '/backup-jobs', undefined, tokens.alice)).items.map(
        (j: { name: string }) => j.name,
      ),
      ['team-a-all'],
    );
    await refused(
      404,
      'ZEN_NOT_FOUND',
      'GET',
      `/backup-jobs/${global.id}`,
      undefined,
      tokens.alice,
    );
    await refused(
      404,
      'ZEN_NOT_FOUND',
      'POST',
      `/backup-jobs/${global.id}/run`,
      undefined,
      tokens.alice,
    );
    // The binding, not the selector, decides: without it the job reaches nothing.
    const bindings = (await ok('GET', `/role-bindings?subject=${mine.identity.id}`)).items;
    assert.equal(bindings.length, 1);
    assert.equal(bindings[0].role, 'backup-job');
    await ok('DELETE', `/role-bindings/${bindings[0].id}`);
    assert.deepEqual((await ok('GET', `/backup-jobs/${mine.id}/selection`)).vms, []);
    await ok('DELETE', `/backup-jobs/${mine.id}`, undefined, tokens.alice);
    await ok('DELETE', `/backup-jobs/${global.id}`);
  });

  test('bad input is refused with a code, naming its field, and leaves nothing behind', async () => {
    const job = (changes: Record<string, unknown>) => ({
      name: 'bad',
      repository: 'jobs',
      ...changes,
    });
    const cases: Array<[Record<string, unknown>, number, string, string | null]> = [
      [{ schedule: '0 99 * * *' }, 400, 'ZEN_BAD_REQUEST', 'schedule'],
      [{ schedule: '0 2 * * *', timeZone: 'Mars/Olympus' }, 400, 'ZEN_BAD_REQUEST', 'timeZone'],
      [{ selector: "'env:prod' in" }, 400, 'ZEN_POLICY_SYNTAX', 'selector'],
      [{ selector: 'vm.cpus + 1' }, 400, 'ZEN_POLICY_INVALID', 'selector'],
      [{ selector: "host.name == 'a'" }, 400, 'ZEN_POLICY_INVALID', 'selector'],
      [{ retention: { last: -1 } }, 400, 'ZEN_BAD_REQUEST', null],
      [{ repository: 'nowhere' }, 404, 'ZEN_NOT_FOUND', null],
      [{ scope: 'nothing-by-this-name' }, 404, 'ZEN_NOT_FOUND', null],
      [{ name: 'Bad Name' }, 400, 'ZEN_BAD_REQUEST', 'name'],
    ];
    for (const [changes, status, code, field] of cases) {
      const error = await refused(status, code, 'POST', '/backup-jobs', job(changes));
      if (field) assert.equal(error.details.field, field, JSON.stringify(error));
    }
    assert.deepEqual((await ok('GET', '/backup-jobs')).items, [], 'nothing was made');
    const identities = (await ok('GET', '/users')).items as Array<{ name: string }>;
    assert.ok(!identities.some((i) => i.name.startsWith('job-')), 'no identity left behind');
    const made = await ok('POST', '/backup-jobs', job({}));
    await refused(409, 'ZEN_CONFLICT', 'POST', '/backup-jobs', job({}));
    await refused(409, 'ZEN_CONFLICT', 'DELETE', '/backup-repositories/jobs');
    await refused(400, 'ZEN_BAD_REQUEST', 'PATCH', `/backup-jobs/${made.id}`, { schedule: 'nope' });
    assert.equal((await ok('GET', `/backup-jobs/${made.id}`)).schedule, null, 'unchanged');
    await ok('DELETE', `/backup-jobs/${made.id}`);
  });

  test('a job that restore-tests: each backup a run makes boots isolated on the host and is removed; asking for it needs backup.restore there', async () => {
    const image = await ensureGuestImage();
    await taggedVm('canary', 'env:canary', {
      memoryBytes: 128 * MiB,
      options: { kernel: image.kernel, initrd: image.initrd, cmdline: GUEST_KERNEL_APPEND },
    });

    // Someone who may back up and manage jobs everywhere, but not restore: no restore tests.
    await ok('POST', '/roles', {
      name: 'backup-runner',
      permissions: ['inventory.read', 'backup.read', 'backup.run', 'backup.manage'],
    });
    await ok('POST', '/users', { name: 'carol', password: 'correct horse battery', role: 'none' });
    await ok('POST', '/role-bindings', { subject: 'carol', role: 'backup-runner' });
    const carol = await s.login('carol', 'correct horse battery');
    const withTest = {
      name: 'canary-checked',
      repository: 'jobs',
      selector: "'env:canary' in vm.tags",
      restoreTest: { host: 'bj', marker: GUEST_READY_LINE, timeoutSeconds: 120 },
    };
    const forbidden = await refused(403, 'ZEN_FORBIDDEN', 'POST', '/backup-jobs', withTest, carol);
    assert.equal(forbidden.details.field, 'restoreTest');
    await refused(404, 'ZEN_NOT_FOUND', 'GET', '/backup-jobs/canary-checked');
    await refused(400, 'ZEN_BAD_REQUEST', 'POST', '/backup-jobs', {
      ...withTest,
      restoreTest: { host: 'bj', marker: '(' },
    });

    const job = await ok('POST', '/backup-jobs', withTest);
    assert.deepEqual(
      [job.restoreTest.host.name, job.restoreTest.marker, job.restoreTest.timeoutSeconds],
      ['bj', GUEST_READY_LINE, 120],
    );
    const started = await ok('POST', `/backup-jobs/${job.id}/run`, {});
    const run = await s.waitForTask(token, started.id, 300_000);
    assert.equal(run.state, 'succeeded', JSON.stringify(run.error));
    assert.deepEqual(
      run.result.vms.map((vm: { vmName: string; state: string }) => [vm.vmName, vm.state]),
      [['canary', 'succeeded']],
    );
    assert.equal(run.result.restoreTests.length, 1);
    const [tested] = run.result.restoreTests;
    assert.deepEqual(
      [tested.vmName, tested.state, tested.backupId],
      ['canary', 'succeeded', run.result.vms[0].backupId],
    );
    const testTask = await ok('GET', `/tasks/${tested.taskId}`);
    assert.equal(testTask.kind, 'backup.test');
    assert.equal(testTask.ownerId, job.identity.id, 'the restore test is the job’s own');
    const names = (
      (await ok('GET', '/vms?limit=200')).items as Array<{ name: string; status: string }>
    )
      .filter((vm) => vm.status === 'present')
      .map((vm) => vm.name);
    assert.ok(
      names.every((name) => !name.startsWith('canary-test-')),
      `the test VM is gone: ${names.join(', ')}`,
    );

    // Cleared, carol may not ask for them again.
    const cleared = await ok('PATCH', `/backup-jobs/${job.id}`, { restoreTest: null });
    assert.equal(cleared.restoreTest, null);
    await refused(
      403,
      'ZEN_FORBIDDEN',
      'PATCH',
      `/backup-jobs/${job.id}`,
      { restoreTest: { host: 'bj' } },
      carol,
    );
    assert.equal((await ok('GET', `/backup-jobs/${job.id}`)).restoreTest, null, 'unchanged');
    await ok('DELETE', `/backup-jobs/${job.id}`);
  });
});
