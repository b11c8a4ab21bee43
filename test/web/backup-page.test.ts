/**
 * Backups in the web console, in Chromium against a real Zenith with a real QEMU host: the VM
 * page's Backups section (back up now, full then incremental, restore as a new VM through the
 * dialog), the backup repositories page (usage, dedup ratio, verify, a damaged backup shown and
 * not offered for restore), and what a viewer sees.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { seriousViolations } from '../../src/testing/accessibility.js';
import { launchBrowser, type TestBrowser, type WatchedPage } from '../../src/testing/browser.js';
import { startTestServer, type TestServer } from '../../src/testing/control-plane.js';
import { until } from '../../src/testing/wait.js';

/** A cold browser on a loaded 2-core machine is slow: wait for what is seen. */
const seen = { timeout: 30_000 };
const MiB = 1024 * 1024;

describe('backups in the web console in Chromium (real QEMU)', () => {
  let s: TestServer;
  let token: string;
  let browser: TestBrowser;
  let host: { id: string; name: string };
  let vmId = '';
  let repositoryId = '';
  const storage = mkdtempSync(join(tmpdir(), 'zenith-web-backup-'));
  const disk = () => join(storage, 'web-bk', 'disk0.qcow2');
  const write = (pattern: number, offset: number, length: number) =>
    execFileSync('qemu-io', [
      '-f',
      'qcow2',
      '-c',
      `write -P ${pattern} ${offset} ${length}`,
      disk(),
    ]);

  before(async () => {
    s = await startTestServer();
    token = await s.login();
    const added = await s.request('POST', '/connections', {
      token,
      body: { name: 'local', type: 'qemu', settings: { storageRoots: [storage] } },
    });
    assert.equal(added.body.state, 'connected', added.body.lastError);
    host = (await s.request('GET', '/hosts', { token })).body.items[0];
    // Never started: its disk is written to with qemu-io.
    const created = await s.waitForTask(
      token,
      (
        await s.request('POST', '/vms', {
          token,
          body: {
            name: 'web-bk',
            hostId: host.id,
            cpus: 1,
            memoryBytes: 64 * MiB,
            diskBytes: 64 * MiB,
          },
        })
      ).body.id,
    );
    assert.equal(created.state, 'succeeded', JSON.stringify(created.error));
    vmId = created.result.vmId;
    write(17, 0, 8 * MiB);
    const repository = await s.request('POST', '/backup-repositories', {
      token,
      body: { name: 'main', path: join(s.dataDir, 'backups', 'main') },
    });
    assert.equal(repository.status, 201, JSON.stringify(repository.body));
    repositoryId = repository.body.repository.id;
    const viewer = await s.request('POST', '/users', {
      token,
      body: { name: 'vic', role: 'viewer', password: 'viewer-password-1' },
    });
    assert.equal(viewer.status, 201, JSON.stringify(viewer.body));
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close();
    await s.close();
    rmSync(storage, { recursive: true, force: true });
  });

  /** The repository's chunk files. */
  const chunkFiles = () => {
    const chunks = join(s.dataDir, 'backups', 'main', 'chunks');
    return readdirSync(chunks).flatMap((prefix) =>
      readdirSync(join(chunks, prefix)).map((file) => join(chunks, prefix, file)),
    );
  };

  const logIn = async (watched: WatchedPage, username: string, password: string) => {
    const { page } = watched;
    await page.goto(s.baseUrl);
    await page.getByLabel('User name').fill(username);
    await page.getByLabel(/^Password/).fill(password);
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.getByRole('heading', { name: 'Virtual machines' }).waitFor(seen);
  };

  test('an admin backs a VM up (full, then incremental), downloads its disk, restores the newest as a new VM, and verifies the repository', async (t) => {
    const started = Date.now();
    const watched = await browser.newPage();
    const { page } = watched;
    await page.setViewportSize({ width: 1280, height: 900 });
    await logIn(watched, 'admin', 'admin-password-for-tests');
    await page.goto(`${s.baseUrl}/#/vms/${vmId}`);
    await page.getByRole('heading', { name: 'web-bk' }).waitFor(seen);
    await page.getByText('No backups.').waitFor(seen);

    // The first backup reads the disk's data in full.
    assert.equal(await page.getByLabel('Repository').inputValue(), repositoryId);
    await page.getByRole('button', { name: 'Back up now' }).click();
    const backups = page.getByRole('table', { name: 'Backups' });
    const rows = backups.getByRole('row');
    await backups.getByRole('row', { name: /full/ }).waitFor(seen);
    await page.getByText('Back up done.').waitFor(seen);
    await page.getByText('Backup full: read 8 MiB').waitFor(seen);
    const fullChunks = new Set(chunkFiles());

    // Written again, backed up again: only what changed is read.
    write(34, 20 * MiB, MiB);
    await page.getByRole('button', { name: 'Back up now' }).click();
    await backups.getByRole('row', { name: /incremental/ }).waitFor(seen);
    assert.equal(await rows.count(), 3, 'a header and two backups');
    const newest = rows.nth(1);
    const catalogue = (await s.request('GET', `/backups?vm=${vmId}`, { token })).body.items;
    assert.equal(catalogue.length, 2);
    assert.equal(catalogue[0].disks[0].scope, 'changed');
    assert.match(
      (await newest.textContent()) ?? '',
      /incremental64 MiB1 MiB.*1 \/ 2ok/,
      'size, read, new and shared chunks, state',
    );
    assert.match((await rows.nth(2).textContent()) ?? '', /full64 MiB8 MiB.*1 \/ 1ok/);
    assert.ok((await page.evaluate(overflow)) <= 0, 'no horizontal scrolling at 1280 px');
    assert.deepEqual(await seriousViolations(page), [], 'no serious axe-core violation');
    await watched.screenshot('vm-backups');

    // Its disk downloads through the browser: a single-use ticket, then a plain link it saves.
    await newest.getByRole('button', { name: 'Download ▾' }).click();
    const [download] = await Promise.all([
      page.waitForEvent('download'),
      page.getByRole('menuitem', { name: /disk0 as qcow2/ }).click(),
    ]);
    assert.match(download.suggestedFilename(), /^web-bk-disk0-\S+\.qcow2$/);
    const saved = join(storage, 'downloaded.qcow2');
    await download.saveAs(saved);
    execFileSync('qemu-img', ['check', '-q', saved]);
    assert.equal(
      execFileSync('qemu-img', ['compare', saved, disk()], { encoding: 'utf8' }).trim(),
      'Images are identical.',
      'the disk as at the newest backup (never started since)',
    );

    // The newest restored onto the same host under a new name; the dialog links to the new VM.
    await newest.getByRole('button', { name: 'Restore…' }).click();
    const dialog = page.getByRole('dialog');
    // The hosts are listed once the dialog has asked for them: its own comes first.
    const chosen = await until(
      'the dialog’s hosts listed',
      async () => (await dialog.getByLabel('Host').inputValue()) || undefined,
      30_000,
      100,
    );
    assert.equal(chosen, host.id, 'its own host first');
    const name = dialog.getByLabel('New VM name');
    assert.equal(await name.inputValue(), 'web-bk-restored');
    await name.fill('web-bk-back');
    await watched.screenshot('backup-restore-dialog');
    await dialog.getByRole('button', { name: 'Restore', exact: true }).click();
    await dialog.getByText('Restore done.').waitFor(seen);
    await dialog.getByRole('link', { name: 'Open web-bk-back' }).click();
    await page.getByRole('heading', { name: 'web-bk-back' }).waitFor(seen);
    await page.getByText('No backups.').waitFor(seen);
    const restored = (await s.request('GET', '/vms/web-bk-back', { token })).body;
    assert.equal(restored.computed['location.hostId'], host.id);
    assert.equal(restored.facts['power.state'], 'stopped');
    assert.ok(page.url().endsWith(`#/vms/${restored.id}`), page.url());

    // The repositories page: usage and the dedup ratio as the API answers them, the schedules; Verify.
    const scheduled = await s.request('PUT', '/backup-repositories/main/verify-schedule', {
      token,
      body: { schedule: '0 3 * * 0', timeZone: 'Europe/Paris' },
    });
    assert.equal(scheduled.status, 200, JSON.stringify(scheduled.body));
    await page.getByRole('link', { name: 'Backups' }).click();
    await page.getByRole('heading', { name: 'Backup repositories' }).waitFor(seen);
    const usage = (await s.request('GET', '/backup-repositories/main', { token })).body;
    assert.equal(usage.backups, 2);
    assert.ok(usage.usage.dedupRatio > 1, JSON.stringify(usage.usage));
    const repositories = page.getByRole('table', { name: 'Backup repositories' });
    const main = repositories.getByRole('row', { name: /^main/ });
    await main.getByText(`${usage.usage.dedupRatio}×`).waitFor(seen);
    assert.match((await main.textContent()) ?? '', /^main.*\/backups\/mainno2/);
    await main.getByText(/^Verify: 0 3 \* \* 0 \(Europe\/Paris\), next /).waitFor(seen);
    await main.getByText('Garbage collection: on demand').waitFor(seen);
    await page.getByRole('button', { name: 'Verify main' }).click();
    await page.getByText('Verify main done.').waitFor(seen);
    await page.getByText(/chunks of 2 backups read: none damaged\./).waitFor(seen);
    const verified = (await s.request('GET', '/tasks?limit=20', { token })).body.items.find(
      (task: { kind: string }) => task.kind === 'backup.verify',
    );
    assert.equal(verified.state, 'succeeded');
    assert.deepEqual(await seriousViolations(page), [], 'no serious axe-core violation');
    await watched.screenshot('backup-repositories');

    // A flipped byte in the chunk only the newest backup has: verify marks it damaged, and its
    // Restore is not offered.
    const [victim, ...others] = chunkFiles().filter((file) => !fullChunks.has(file));
    assert.ok(victim && others.length === 0, 'the incremental wrote one chunk');
    const bytes = readFileSync(victim);
    bytes[bytes.length - 1]! ^= 0xff;
    writeFileSync(victim, bytes);
    await page.getByRole('button', { name: 'Verify main' }).click();
    await page.getByText(/1 damaged, 1 backups marked damaged\./).waitFor(seen);
    await page.goto(`${s.baseUrl}/#/vms/${vmId}`);
    await rows.nth(1).getByText('damaged', { exact: true }).waitFor(seen);
    await rows
      .nth(1)
      .getByText(/damaged or missing chunk/)
      .waitFor(seen);
    const refused = rows.nth(1).getByRole('button', { name: 'Restore…' });
    assert.equal(await refused.isDisabled(), true, 'a damaged backup is not restored');
    assert.match((await refused.getAttribute('title')) ?? '', /^Damaged, not restored: /);
    assert.equal(await rows.nth(2).getByRole('button', { name: 'Restore…' }).isDisabled(), false);
    assert.deepEqual(watched.errors(), []);
    t.diagnostic(`browser part ${Date.now() - started} ms`);
  });

  test('an admin makes a backup job, runs it now and disables it; a job the server refuses says why', async () => {
    const watched = await browser.newPage();
    const { page } = watched;
    await logIn(watched, 'admin', 'admin-password-for-tests');
    await page.goto(`${s.baseUrl}/#/backups`);
    await page.getByRole('heading', { name: 'Backup jobs' }).waitFor(seen);
    await page.getByText('No backup job yet').waitFor(seen);
    await page.getByRole('button', { name: 'New job' }).click();
    const dialog = page.getByRole('dialog');
    await dialog.getByLabel('Name').fill('nightly');
    await dialog.getByLabel('Selector').fill("vm.name == 'web-bk'");
    await dialog.getByLabel('Schedule (cron)').fill('30 2 * * *');
    await dialog.getByLabel('Time zone').fill('Europe/Paris');
    await dialog.getByRole('button', { name: 'Make the job' }).click();
    const jobs = page.getByRole('table', { name: 'Backup jobs' });
    const row = jobs.getByRole('row', { name: /nightly/ });
    await row.getByText('30 2 * * * (Europe/Paris)').waitFor(seen);
    await row.getByText('last 7').waitFor(seen);

    await page.getByRole('button', { name: 'Run nightly now' }).click();
    await page.getByText('Run nightly done.').waitFor(seen);
    await page
      .getByLabel('Run result')
      .getByText(/^web-bk: succeeded \((full|incremental)\)/)
      .waitFor(seen);
    await row.getByText('succeeded').waitFor(seen);

    await page.getByRole('button', { name: 'Disable nightly' }).click();
    await row.getByText('disabled').waitFor(seen);
    const job = (await s.request('GET', '/backup-jobs/nightly', { token })).body;
    assert.equal(job.enabled, false);
    assert.equal(job.selector, "vm.name == 'web-bk'");

    // Edited: the dialog opens on the job's settings; a rule it does not show (weekly) is kept.
    const weekly = await s.request('PATCH', '/backup-jobs/nightly', {
      token,
      body: { retention: { last: 7, weekly: 4 } },
    });
    assert.equal(weekly.status, 200, JSON.stringify(weekly.body));
    await page.reload();
    await page.getByRole('button', { name: 'Edit nightly' }).click();
    assert.equal(await dialog.getByLabel('Name').inputValue(), 'nightly');
    assert.equal(await dialog.getByLabel('Name').isDisabled(), true, 'a job keeps its name');
    assert.equal(await dialog.getByLabel('Schedule (cron)').inputValue(), '30 2 * * *');
    assert.equal(await dialog.getByLabel('Selector').inputValue(), "vm.name == 'web-bk'");
    await dialog.getByLabel('Schedule (cron)').fill('15 4 * * 1-5');
    await dialog.getByLabel('Keep daily').fill('14');
    await dialog.getByRole('button', { name: 'Save' }).click();
    await row.getByText('15 4 * * 1-5 (Europe/Paris)').waitFor(seen);
    const edited = (await s.request('GET', '/backup-jobs/nightly', { token })).body;
    assert.equal(edited.schedule, '15 4 * * 1-5');
    assert.deepEqual(
      [edited.retention.last, edited.retention.daily, edited.retention.weekly],
      [7, 14, 4],
    );
    assert.equal(edited.selector, "vm.name == 'web-bk'", 'what was not changed stays');

    // Refused on purpose: the browser logs the 400.
    watched.allowHttpStatus(400);
    await page.getByRole('button', { name: 'New job' }).click();
    await dialog.getByLabel('Name').fill('broken');
    await dialog.getByLabel('Schedule (cron)').fill('61 * * * *');
    await dialog.getByRole('button', { name: 'Make the job' }).click();
    await dialog
      .getByRole('alert')
      .getByText(/is not a cron pattern/)
      .waitFor(seen);
    await dialog.getByRole('button', { name: 'Cancel' }).click();
    assert.equal(await jobs.getByRole('row', { name: /broken/ }).count(), 0);
    assert.deepEqual(watched.errors(), []);
  });

  test('a viewer sees the backups but is offered no backup, restore or verify', async () => {
    const watched = await browser.newPage();
    const { page } = watched;
    await logIn(watched, 'vic', 'viewer-password-1');
    await page.goto(`${s.baseUrl}/#/vms/${vmId}`);
    await page.getByRole('heading', { name: 'web-bk' }).waitFor(seen);
    const backups = page.getByRole('table', { name: 'Backups' });
    // The job's backup (test 2) may be a second full or incremental one.
    await backups
      .getByRole('row', { name: /incremental/ })
      .first()
      .waitFor(seen);
    await backups.getByRole('row', { name: /full/ }).first().waitFor(seen);
    for (const name of ['Back up now', 'Restore…'])
      assert.equal(await page.getByRole('button', { name }).count(), 0, `no ${name} button`);
    assert.equal(await page.getByLabel('Repository').count(), 0);
    // backup.read: the repositories page, without Verify.
    await page.getByRole('link', { name: 'Backups' }).click();
    await page
      .getByRole('table', { name: 'Backup repositories' })
      .getByRole('row', { name: /^main/ })
      .waitFor(seen);
    assert.equal(await page.getByRole('button', { name: 'Verify main' }).count(), 0);
    // The jobs, without Run now, New job or Remove.
    await page
      .getByRole('table', { name: 'Backup jobs' })
      .getByRole('row', { name: /nightly/ })
      .waitFor(seen);
    for (const name of ['Run nightly now', 'New job', 'Remove nightly', 'Enable nightly'])
      assert.equal(await page.getByRole('button', { name }).count(), 0, `no ${name} button`);
    assert.deepEqual(watched.errors(), []);
  });

  test('an admin restores the stopped VM over itself once its name is typed: the same VM, on the disk as it was', async () => {
    const watched = await browser.newPage();
    const { page } = watched;
    await logIn(watched, 'admin', 'admin-password-for-tests');
    const before = (await s.request('GET', `/vms/${vmId}`, { token })).body;
    assert.equal(before.facts['power.state'], 'stopped');
    await page.goto(`${s.baseUrl}/#/vms/${vmId}`);
    await page.getByRole('heading', { name: 'web-bk' }).waitFor(seen);
    const backups = page.getByRole('table', { name: 'Backups' });
    await backups.getByRole('row').nth(1).getByRole('button', { name: 'Restore…' }).click();
    const dialog = page.getByRole('dialog');
    await dialog.getByText('Over web-bk').click();
    const replace = dialog.getByRole('button', { name: 'Replace web-bk' });
    assert.equal(await replace.isDisabled(), true, 'not before the name is typed');
    await dialog.getByLabel('Type web-bk to confirm').fill('web-b');
    assert.equal(await replace.isDisabled(), true);
    await dialog.getByLabel('Type web-bk to confirm').fill('web-bk');
    await replace.click();
    await dialog.getByText('Restore done.').waitFor(seen);
    const after = (await s.request('GET', `/vms/${vmId}`, { token })).body;
    assert.equal(after.facts['vm.uuid'], before.facts['vm.uuid']);
    assert.equal(after.status, 'present');
    assert.ok(
      readdirSync(storage).some((d) => d.startsWith('web-bk-restored-')),
      'its disks written anew',
    );
    assert.equal(existsSync(disk()), false, 'its old disk removed');
    assert.deepEqual(watched.errors(), []);
  });

  test('an admin restores one disk of a backup into the stopped VM as a new disk; replacing one waits for the name', async () => {
    const watched = await browser.newPage();
    const { page } = watched;
    await logIn(watched, 'admin', 'admin-password-for-tests');
    const before = (await s.request('GET', `/vms/${vmId}`, { token })).body;
    await page.goto(`${s.baseUrl}/#/vms/${vmId}`);
    await page.getByRole('heading', { name: 'web-bk' }).waitFor(seen);
    const backups = page.getByRole('table', { name: 'Backups' });
    await backups.getByRole('row').nth(1).getByRole('button', { name: 'Restore…' }).click();
    const dialog = page.getByRole('dialog');
    await dialog.getByText('One disk').click();
    await dialog.getByLabel('Into web-bk').selectOption('disk0');
    const replace = dialog.getByRole('button', { name: 'Replace disk0' });
    assert.equal(await replace.isDisabled(), true, 'not before the name is typed');
    await dialog.getByLabel('Into web-bk').selectOption('add');
    await dialog.getByRole('button', { name: 'Add disk0 to web-bk' }).click();
    await dialog.getByText('Restore disk done.').waitFor(seen);
    const after = (await s.request('GET', `/vms/${vmId}`, { token })).body;
    assert.equal(after.facts['vm.uuid'], before.facts['vm.uuid']);
    assert.equal(after.facts['disk.totalBytes'], before.facts['disk.totalBytes'] + 64 * MiB);
    assert.ok(
      readdirSync(storage).some((d) => d.startsWith('web-bk-disk0-restored-')),
      'the disk written beside its own',
    );
    assert.deepEqual(watched.errors(), []);
  });
});

/** How far the page scrolls sideways (0 or less: it fits). */
function overflow(): number {
  const doc = (globalThis as any).document;
  return doc.documentElement.scrollWidth - doc.documentElement.clientWidth;
}
