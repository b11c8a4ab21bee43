/**
 * The VM page and the create-VM wizard in Chromium, against a real Zenith with two real QEMU
 * hosts: the control plane's own (a local qemu connection) and one run by an agent process.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { processAlive } from '../../src/core/process.js';
import { seriousViolations } from '../../src/testing/accessibility.js';
import { spawnAgent, type AgentProcess } from '../../src/testing/agent-process.js';
import type { Page } from 'playwright-core';
import { launchBrowser, type TestBrowser, type WatchedPage } from '../../src/testing/browser.js';
import { startTestServer, type TestServer } from '../../src/testing/control-plane.js';
import { ensureGuestImage, GUEST_KERNEL_APPEND } from '../../src/testing/guest-image.js';
import { until } from '../../src/testing/wait.js';

/** TCG guests and a cold browser are slow on a loaded 2-core machine: wait for what is seen. */
const seen = { timeout: 90_000 };

/** The directory of an agent's QEMU sockets (as the QEMU driver names it), which its QEMU command lines contain. */
function runDirOf(agentStateDir: string): string {
  return `/run/zenith/${createHash('sha256').update(join(agentStateDir, 'qemu')).digest('hex').slice(0, 12)}`;
}

/** Pixels of the graphical console's canvas that are not (nearly) black. */
function litPixels(): number {
  const doc = (globalThis as any).document;
  const canvas = doc.querySelector('[aria-label="Graphical console"] canvas');
  if (!canvas || canvas.width < 64 || canvas.height < 64) return 0;
  const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
  let lit = 0;
  for (let i = 0; i < data.length; i += 4) if (data[i] + data[i + 1] + data[i + 2] > 96) lit += 1;
  return lit;
}

/** Visible buttons, inputs and links a screen reader could not name (by label, text or aria). */
function unlabelledControls(): string[] {
  const doc = (globalThis as any).document;
  const unnamed: string[] = [];
  for (const element of doc.querySelectorAll('button, input, select, textarea, a[href]')) {
    if (element.type === 'hidden' || element.closest('[aria-hidden="true"]')) continue;
    const named =
      (element.labels?.length ?? 0) > 0 ||
      element.getAttribute('aria-label') ||
      element.getAttribute('aria-labelledby') ||
      element.getAttribute('title') ||
      element.textContent.trim() !== '';
    if (!named) unnamed.push(element.outerHTML.slice(0, 120));
  }
  return unnamed;
}

describe('the VM page and the create-VM wizard in Chromium (real QEMU, local and agent hosts)', () => {
  let s: TestServer;
  let token: string;
  let browser: TestBrowser;
  let image: { kernel: string; initrd: string };
  let localHost: { id: string; name: string };
  let stillVmId: string;
  const images = mkdtempSync(join(tmpdir(), 'zenith-web-vm-images-'));
  const agentDir = mkdtempSync(join(tmpdir(), 'zenith-web-vm-agent-'));
  let agent: AgentProcess | undefined;

  before(async () => {
    image = await ensureGuestImage();
    // Samples every second, so that a VM that ran for a few seconds has a metrics history.
    s = await startTestServer({ metrics: { sampleEveryMs: 1000 } });
    token = await s.login();
    const added = await s.request('POST', '/connections', {
      token,
      body: {
        name: 'local',
        type: 'qemu',
        settings: { storageRoots: [images, dirname(image.kernel)], accelerator: 'tcg' },
      },
    });
    assert.equal(added.status, 201, JSON.stringify(added.body));
    localHost = (await s.request('GET', '/hosts', { token })).body.items[0];
    const enrollment = (await s.request('POST', '/agents/enrollment-tokens', { token, body: {} }))
      .body.token;
    agent = spawnAgent({
      serverUrl: s.baseUrl,
      stateDir: agentDir,
      storageRoots: [join(agentDir, 'storage'), dirname(image.kernel)],
      hostName: 'web-agent',
      extra: ['--token', enrollment],
    });
    await until(
      () => `the agent host\nagent output:\n${agent!.output().slice(-2000)}`,
      async () => {
        const hosts = (await s.request('GET', '/hosts', { token })).body.items as Array<{
          name: string;
        }>;
        return hosts.some((h) => h.name === 'web-agent') ? true : undefined;
      },
    );
    // A VM the viewer looks at (never started).
    const still = await s.waitForTask(
      token,
      (
        await s.request('POST', '/vms', {
          token,
          body: {
            name: 'web-still',
            hostId: localHost.id,
            cpus: 1,
            memoryBytes: 64 * 1048576,
            diskBytes: 0,
            options: { kernel: image.kernel, initrd: image.initrd, cmdline: GUEST_KERNEL_APPEND },
          },
        })
      ).body.id,
    );
    assert.equal(still.state, 'succeeded', JSON.stringify(still.error));
    stillVmId = still.result.vmId;
    // A price high enough that a VM running for seconds costs whole cents.
    const card = await s.request('POST', '/accounting/rate-cards', {
      token,
      body: {
        effectiveFrom: Date.now() - 86_400_000,
        currency: 'EUR',
        timeZone: 'UTC',
        rates: [{ vcpuHour: '360' }],
      },
    });
    assert.equal(card.status, 201, JSON.stringify(card.body));
    const viewer = await s.request('POST', '/users', {
      token,
      body: { name: 'vic', role: 'viewer', password: 'viewer-password-1' },
    });
    assert.equal(viewer.status, 201, JSON.stringify(viewer.body));
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close();
    for (const vm of (await s.request('GET', '/vms?limit=100', { token })).body.items ?? [])
      if (typeof vm.facts['qemu.pid'] === 'number' && processAlive(vm.facts['qemu.pid']))
        process.kill(vm.facts['qemu.pid'], 'SIGKILL');
    try {
      await agent?.kill();
    } finally {
      // Any QEMU the agent started (an incoming one is in no inventory).
      spawnSync('pkill', ['-9', '-f', runDirOf(agentDir)]);
      await s.close();
      rmSync(images, { recursive: true, force: true });
      rmSync(agentDir, { recursive: true, force: true });
    }
  });

  /** What the metrics section must show follows the API's own answer for the same period. */
  const expectMetrics = async (page: Page, vmId: string, spanMs: number, step: number) => {
    const to = Date.now();
    const answer = await s.request(
      'GET',
      `/vms/${vmId}/metrics/history?from=${to - spanMs}&to=${to}&step=${step}`,
      { token },
    );
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
    const measured = (answer.body.points as Array<Record<string, number | null>>).some((point) =>
      Object.entries(point).some(([key, value]) => key !== 'at' && value !== null),
    );
    if (!measured) {
      await page.getByText('No measurements in this period.').waitFor(seen);
      assert.equal(await page.getByRole('figure').count(), 0, 'no empty charts');
      return false;
    }
    for (const chart of ['CPU', 'Memory', 'Disk', 'Network'])
      await page.getByRole('figure', { name: `${chart} chart` }).waitFor(seen);
    // The CPU series is drawn: recharts' curve and a dot per measured step.
    const cpu = page.getByRole('figure', { name: 'CPU chart' });
    assert.match(
      (await cpu.locator('path.recharts-line-curve').first().getAttribute('d')) ?? '',
      /^M/,
    );
    assert.ok((await cpu.locator('.recharts-line-dots circle').count()) > 0, 'CPU dots drawn');
    return true;
  };

  const logIn = async (watched: WatchedPage, username: string, password: string) => {
    const { page } = watched;
    await page.goto(s.baseUrl);
    await page.getByLabel('User name').fill(username);
    await page.getByLabel(/^Password/).fill(password);
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.getByRole('heading', { name: 'Virtual machines' }).waitFor(seen);
  };

  test('an operator creates a VM with the wizard, starts it, uses both consoles, snapshots, migrates, clones and deletes it', async (t) => {
    const watched = await browser.newPage();
    const { page } = watched;
    watched.allowHttpStatus(409);
    await page.setViewportSize({ width: 1280, height: 900 });
    await logIn(watched, 'admin', 'admin-password-for-tests');

    // The wizard: size, boot and network, placement (the preview ranks both hosts), review.
    await page.getByRole('link', { name: 'New VM' }).click();
    await page.getByRole('heading', { name: 'New virtual machine' }).waitFor(seen);
    await page.getByLabel('Name').fill('web-wizard');
    await page.getByLabel('Memory (MiB)').fill('128');
    await page.getByLabel('Disk (GiB, 0 for none)').fill('1');
    await page.getByRole('button', { name: 'Next' }).click();
    await page.getByLabel('Kernel (path in a storage root)').fill(image.kernel);
    await page.getByLabel('Initrd (path, optional)').fill(image.initrd);
    await page.getByLabel('Kernel command line (optional)').fill(GUEST_KERNEL_APPEND);
    await page.getByRole('button', { name: 'Next' }).click();
    const candidates = page.getByRole('table', { name: 'Candidate hosts' });
    await candidates.getByRole('row', { name: /web-agent/ }).waitFor(seen);
    await candidates.getByRole('row', { name: new RegExp(localHost.name) }).waitFor(seen);
    await page.getByRole('radio', { name: `Choose ${localHost.name}` }).check();
    await watched.screenshot('create-vm-placement');
    await page.getByRole('button', { name: 'Next' }).click();
    await page
      .getByRole('table', { name: 'New VM' })
      .getByRole('row', { name: new RegExp(`Host ${localHost.name}`) })
      .waitFor(seen);
    await page.getByRole('button', { name: 'Create VM' }).click();
    await page.getByRole('heading', { name: 'web-wizard' }).waitFor(seen);
    const created = (await s.request('GET', '/vms/web-wizard', { token })).body;
    assert.equal(created.computed['location.hostId'], localHost.id);
    assert.equal(created.facts['cpu.count'], 1);

    // Started from the page: the badge turns running from the event stream, the task is listed.
    await page.getByTestId('power-state').getByText('stopped').waitFor(seen);
    await page.getByRole('button', { name: 'Start' }).click();
    await page.getByTestId('power-state').getByText('running').waitFor(seen);
    const tasks = page.getByRole('table', { name: 'Tasks of this VM' });
    await tasks.getByRole('row', { name: /vm\.start succeeded/ }).waitFor(seen);

    // A refused action shows the coded reason (a running VM is not deleted).
    await page.getByRole('button', { name: 'Delete…' }).click();
    await page.getByLabel('Type web-wizard to confirm').fill('web-wizard');
    await page.getByRole('button', { name: 'Delete VM' }).click();
    await page
      .getByRole('alert')
      .getByText(/ZEN_INVALID_STATE/)
      .waitFor(seen);
    await page.getByRole('button', { name: 'Cancel' }).click();

    await page.getByRole('button', { name: 'Reset' }).click();
    await page.getByText('Reset done.').waitFor(seen);
    await tasks.getByRole('row', { name: /vm\.reset succeeded/ }).waitFor(seen);

    await page.getByRole('button', { name: 'Open serial console' }).click();
    await page
      .getByRole('region', { name: 'Serial console' })
      .locator('.xterm-rows')
      .getByText(/tick \d+/)
      .first()
      .waitFor(seen);

    await page.getByRole('button', { name: 'Open graphical console' }).click();
    await page.locator('[aria-label="Graphical console"][data-status="connected"]').waitFor(seen);
    await page.waitForFunction(litPixels, undefined, seen);
    const lit = await page.evaluate(litPixels);
    // The guest's VGA text mode (80x25 cells of 9x16), not QEMU's 640x480 "no display" notice.
    const size = await page.evaluate(() => {
      const canvas = (globalThis as any).document.querySelector(
        '[aria-label="Graphical console"] canvas',
      );
      return `${canvas.width}x${canvas.height}`;
    });
    t.diagnostic(`VNC framebuffer ${size}, ${lit} lit pixels`);
    assert.equal(size, '720x400', 'the guest drives a VGA text screen');
    await watched.screenshot('vm-page-vnc');
    await page.getByRole('button', { name: 'Close graphical console' }).click();

    // A snapshot taken, reverted to and deleted, each change confirmed (a storage migration
    // cannot carry snapshots).
    await page.getByLabel('Snapshot name').fill('before-move');
    await page.getByRole('button', { name: 'Take snapshot' }).click();
    const snapshots = page.getByRole('table', { name: 'Snapshots' });
    await snapshots.getByRole('row', { name: /before-move .* running/ }).waitFor(seen);
    await page.getByRole('button', { name: 'Revert to before-move' }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Revert' }).click();
    await page.getByText('Revert to before-move done.').waitFor(seen);
    await page.getByTestId('power-state').getByText('running').waitFor(seen);
    await page.getByRole('button', { name: 'Delete snapshot before-move' }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Delete' }).click();
    await page.getByText('No snapshots.').waitFor(seen);

    // Migrate to the agent's host: the preview explains the current host, the timeline grows.
    const history = page.getByRole('list', { name: 'Location history' });
    const intervals = await history.getByRole('listitem').count();
    assert.ok(intervals >= 2, 'stopped, then running');
    await page.getByRole('button', { name: 'Migrate…' }).click();
    const dialog = page.getByRole('dialog');
    await dialog
      .getByRole('table', { name: 'Rejected hosts' })
      .getByRole('row', { name: new RegExp(localHost.name) })
      .waitFor(seen);
    await dialog.getByRole('radio', { name: 'Choose web-agent' }).check();
    await watched.screenshot('vm-migrate-preview');
    // Throttled so that its progress can be watched: QEMU's figures in the task's details.
    // (The limit applies to the disk's mirror too: 1 GiB of sparse disk at 128 MiB/s is ~8 s.)
    await dialog.getByLabel('Bandwidth limit (MiB/s; empty for none)').fill('128');
    await dialog.getByRole('button', { name: 'Migrate to web-agent' }).click();
    await dialog
      .getByRole('table', { name: 'Task progress details' })
      .getByRole('row', { name: /^(diskBytesCopied|bytesSent) \d+$/ })
      .first()
      .waitFor(seen);
    await watched.screenshot('vm-migrate-progress');
    await dialog.getByText('Migrate done.').waitFor(seen);
    await dialog.getByRole('button', { name: 'Close' }).click();
    await history.getByRole('listitem').nth(intervals).waitFor(seen);
    await history
      .getByRole('listitem')
      .first()
      .getByText(/web-agent · running/)
      .waitFor(seen);
    await tasks.getByRole('row', { name: /vm\.migrate succeeded/ }).waitFor(seen);
    const moved = (await s.request('GET', '/vms/web-wizard', { token })).body;
    assert.notEqual(moved.computed['location.hostId'], localHost.id);
    const migration = (
      await s.request('GET', `/tasks?targetId=${moved.id}&limit=20`, { token })
    ).body.items.find((task: { kind: string }) => task.kind === 'vm.migrate');
    t.diagnostic(
      `migration local → agent with storage: task ${migration.endedAt - migration.startedAt} ms, ` +
        `QEMU total ${migration.result.totalTimeMs} ms, downtime ${migration.result.downtimeMs} ms, ` +
        `${migration.result.transferredBytes} bytes`,
    );
    // It has run for a while, sampled every second: the charts show its metrics (6 h asks again).
    await page.getByRole('radiogroup', { name: 'Metrics period' }).getByText('6 h').click();
    assert.equal(await expectMetrics(page, moved.id, 6 * 3_600_000, 300), true, 'measured');
    await watched.screenshot('vm-page-after-migration');
    // Its cost so far, from the accounting report narrowed to it, priced by the rate card.
    const cost = page.getByTestId('vm-cost-total');
    await cost.waitFor(seen);
    const shown = (await cost.textContent()) ?? '';
    const match = /^([\d,]+)\.(\d{2}) EUR$/.exec(shown);
    assert.ok(match, `a cost in EUR: '${shown}'`);
    const shownCents = Number(match[1]!.replaceAll(',', '')) * 100 + Number(match[2]);
    assert.ok(shownCents > 0, `it ran, so it cost something: ${shown}`);
    await page.getByText(/rate card version 1/).waitFor(seen);
    const billed = await s.request(
      'GET',
      `/accounting/report?from=${Date.now() - 86_400_000}&to=${Date.now()}&groupBy=vm&vm=${moved.id}`,
      { token },
    );
    assert.equal(billed.status, 200, JSON.stringify(billed.body));
    // Read a moment later while it still runs: the API's total can only have grown.
    assert.ok(
      billed.body.totals.total >= shownCents,
      `page ${shownCents} vs API ${billed.body.totals.total}`,
    );

    // Stopped, then deleted with its name typed: back to the list, and gone from the API.
    await page.getByRole('button', { name: 'Stop' }).click();
    await page.getByTestId('power-state').getByText('stopped').waitFor(seen);
    // Only what the QEMU driver supports is offered: no Rename, no Reconfigure.
    for (const name of ['Rename…', 'Reconfigure…'])
      assert.equal(await page.getByRole('button', { name }).count(), 0, `no ${name} on QEMU`);
    // A full clone of the stopped VM, on the same host, with a link to it.
    await page.getByRole('button', { name: 'Clone…' }).click();
    const cloneDialog = page.getByRole('dialog');
    await cloneDialog.getByLabel('Clone name').fill('web-wizard-copy');
    await cloneDialog.getByRole('button', { name: 'Clone', exact: true }).click();
    await cloneDialog.getByText('Clone done.').waitFor(seen);
    await cloneDialog.getByRole('link', { name: 'Open web-wizard-copy' }).waitFor(seen);
    await cloneDialog.getByRole('button', { name: 'Close' }).click();
    await tasks.getByRole('row', { name: /vm\.clone succeeded/ }).waitFor(seen);
    const copy = (await s.request('GET', '/vms/web-wizard-copy', { token })).body;
    assert.equal(copy.computed['location.hostName'], 'web-agent');
    assert.notEqual(copy.id, moved.id);
    await page.getByRole('button', { name: 'Delete…' }).click();
    const deleteButton = page.getByRole('button', { name: 'Delete VM' });
    assert.equal(await deleteButton.isDisabled(), true, 'disabled until the name is typed');
    await page.getByLabel('Type web-wizard to confirm').fill('web-wizard');
    await deleteButton.click();
    await page.getByRole('table', { name: 'Virtual machines' }).waitFor(seen);
    // A deleted VM stays in the inventory, marked missing, with its history.
    const deleted = (await s.request('GET', '/vms/web-wizard', { token })).body;
    assert.equal(deleted.status, 'missing');
    assert.deepEqual(watched.errors(), []);
  });

  test('a viewer sees the VM page with no action, no snapshot change and no console', async () => {
    const watched = await browser.newPage();
    const { page } = watched;
    const asked: URL[] = [];
    page.on('request', (request) => {
      if (request.url().includes('/metrics/history')) asked.push(new URL(request.url()));
    });
    await logIn(watched, 'vic', 'viewer-password-1');
    assert.equal(await page.getByRole('link', { name: 'New VM' }).count(), 0);
    await page.goto(`${s.baseUrl}/#/vms/${stillVmId}`);
    await page.getByRole('heading', { name: 'web-still' }).waitFor(seen);
    await page.getByText("You may not open this VM's consoles.").waitFor(seen);
    // No accounting.read: no cost section.
    assert.equal(await page.getByRole('heading', { name: 'Cost' }).count(), 0);
    await page.getByText('No tasks yet.').waitFor(seen);
    await expectMetrics(page, stillVmId, 3_600_000, 60);
    await page.getByRole('radiogroup', { name: 'Metrics period' }).getByText('7 d').click();
    await until('the 7-day history asked for', async () =>
      asked.some((url) => url.searchParams.get('step') === '3600') ? true : undefined,
    );
    await expectMetrics(page, stillVmId, 7 * 24 * 3_600_000, 3600);
    // The contract: from and to in ms since the epoch, step in seconds, for the chosen period.
    const spans = asked.map((url) => [
      url.pathname,
      Number(url.searchParams.get('to')) - Number(url.searchParams.get('from')),
      url.searchParams.get('step'),
    ]);
    assert.deepEqual(spans.at(0), [`/api/v1/vms/${stillVmId}/metrics/history`, 3_600_000, '60']);
    assert.deepEqual(spans.at(-1), [
      `/api/v1/vms/${stillVmId}/metrics/history`,
      7 * 24 * 3_600_000,
      '3600',
    ]);
    for (const name of [
      'Start',
      'Shut down',
      'Stop',
      'Reboot',
      'Reset',
      'Suspend',
      'Resume',
      'Clone…',
      'Migrate…',
      'Delete…',
      'Take snapshot',
      'Open serial console',
      'Open graphical console',
    ])
      assert.equal(await page.getByRole('button', { name }).count(), 0, `no ${name} button`);
    await watched.screenshot('vm-page-viewer-full');
    assert.deepEqual(watched.errors(), []);
  });

  test('the VM page and the wizard fit laptop and large-screen widths; a refused console says why', async () => {
    const watched = await browser.newPage();
    const { page } = watched;
    await logIn(watched, 'admin', 'admin-password-for-tests');
    for (const width of [1280, 2560]) {
      await page.setViewportSize({ width, height: 1000 });
      for (const [hash, heading] of [
        [`#/vms/${stillVmId}`, 'web-still'],
        ['#/vms/new', 'New virtual machine'],
      ] as const) {
        await page.goto(`${s.baseUrl}/${hash}`);
        await page.getByRole('heading', { name: heading }).waitFor(seen);
        const overflow = await page.evaluate(() => {
          const doc = (globalThis as any).document;
          return doc.documentElement.scrollWidth - doc.documentElement.clientWidth;
        });
        assert.ok(overflow <= 0, `no horizontal scrolling at ${width}px on ${hash} (${overflow})`);
        assert.deepEqual(
          await page.evaluate(unlabelledControls),
          [],
          `labelled controls on ${hash}`,
        );
        if (hash !== '#/vms/new') await page.getByRole('table', { name: 'Facts' }).waitFor(seen);
        assert.deepEqual(
          await seriousViolations(page),
          [],
          `no serious or critical axe-core violation on ${hash} at ${width}px`,
        );
      }
      await page.goto(`${s.baseUrl}/#/vms/${stillVmId}`);
      await page.getByRole('heading', { name: 'web-still' }).waitFor(seen);
      await watched.screenshot(`vm-page-${width}`);
    }
    // A console the server refuses (the VM is stopped) shows the coded reason.
    watched.allowHttpStatus(409);
    await page.getByRole('button', { name: 'Open graphical console' }).click();
    await page
      .getByRole('alert')
      .getByText(/ZEN_INVALID_STATE: web-still is stopped/)
      .waitFor(seen);
    assert.deepEqual(watched.errors(), []);
  });
});
