import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { launchBrowser, type TestBrowser, type WatchedPage } from '../../src/testing/browser.js';
import { startTestServer, type TestServer } from '../../src/testing/control-plane.js';
import { ensureGuestImage, GUEST_KERNEL_APPEND } from '../../src/testing/guest-image.js';

/** TCG guests and a cold browser are slow on a loaded 2-core machine: wait for what is seen. */
const seen = { timeout: 60_000 };

describe('the web console in Chromium, against a real Zenith with a real QEMU VM', () => {
  let s: TestServer;
  let token: string;
  let browser: TestBrowser;
  let vmId: string;
  const images = mkdtempSync(join(tmpdir(), 'zenith-web-images-'));

  before(async () => {
    const image = await ensureGuestImage();
    s = await startTestServer();
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
    const host = (await s.request('GET', '/hosts', { token })).body.items[0];
    const created = await s.waitForTask(
      token,
      (
        await s.request('POST', '/vms', {
          token,
          body: {
            name: 'web-tiny',
            hostId: host.id,
            cpus: 1,
            memoryBytes: 128 * 1048576,
            diskBytes: 0,
            options: { kernel: image.kernel, initrd: image.initrd, cmdline: GUEST_KERNEL_APPEND },
          },
        })
      ).body.id,
    );
    assert.equal(created.state, 'succeeded', JSON.stringify(created.error));
    vmId = created.result.vmId;
    const viewer = await s.request('POST', '/users', {
      token,
      body: { name: 'vera', role: 'viewer', password: 'viewer-password-1' },
    });
    assert.equal(viewer.status, 201, JSON.stringify(viewer.body));
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close();
    const vm = (await s.request('GET', `/vms/${vmId}`, { token })).body;
    if (vm?.facts?.['power.state'] && vm.facts['power.state'] !== 'stopped')
      await s
        .waitForTask(token, (await s.request('POST', `/vms/${vmId}/stop`, { token })).body.id)
        .catch(() => undefined);
    await s.close();
    rmSync(images, { recursive: true, force: true });
  });

  const logIn = async (watched: WatchedPage, username: string, password: string) => {
    const { page } = watched;
    await page.goto(s.baseUrl);
    await page.getByLabel('User name').fill(username);
    await page.getByLabel(/^Password/).fill(password);
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.getByRole('heading', { name: 'Virtual machines' }).waitFor(seen);
  };
  const vmRow = (watched: WatchedPage) =>
    watched.page.getByRole('table', { name: 'Virtual machines' }).getByRole('row', {
      name: /web-tiny/,
    });

  test('an operator logs in, finds the VM, sees it start live, drives it and reads its serial console', async () => {
    const watched = await browser.newPage();
    const { page } = watched;
    await page.goto(s.baseUrl);
    await page.getByRole('button', { name: 'Log in' }).waitFor(seen);
    await watched.screenshot('login');
    await logIn(watched, 'admin', 'admin-password-for-tests');

    await page.getByLabel('Search by name').fill('tiny');
    await vmRow(watched).getByText('stopped').waitFor(seen);
    await page.getByText('live', { exact: true }).waitFor(seen);
    await watched.screenshot('inventory');

    // Started elsewhere (the API, as the CLI would): the row turns running without a reload.
    await page.evaluate(() => ((globalThis as any).notReloaded = true));
    const started = await s.waitForTask(
      token,
      (await s.request('POST', `/vms/${vmId}/start`, { token })).body.id,
    );
    assert.equal(started.state, 'succeeded', JSON.stringify(started.error));
    await vmRow(watched).getByText('running').waitFor(seen);
    assert.equal(
      await page.evaluate(() => (globalThis as any).notReloaded),
      true,
      'the page was not reloaded',
    );

    await vmRow(watched).getByRole('link', { name: 'web-tiny' }).click();
    await page.getByRole('heading', { name: 'web-tiny' }).waitFor(seen);
    await page.getByRole('list', { name: 'Location history' }).getByText(/→ now/).waitFor(seen);
    await page.getByRole('table', { name: 'Facts' }).getByText('power.state').waitFor(seen);

    // A refused action shows the server's coded reason.
    watched.allowHttpStatus(409);
    await page.getByRole('button', { name: 'Resume' }).click();
    await page
      .getByRole('alert')
      .getByText(/ZEN_INVALID_STATE: web-tiny is running/)
      .waitFor(seen);

    await page.getByRole('button', { name: 'Suspend' }).click();
    await page.getByTestId('power-state').getByText('suspended').waitFor(seen);
    await page.getByRole('button', { name: 'Resume' }).click();
    await page.getByTestId('power-state').getByText('running').waitFor(seen);
    await page.getByText('Resume done.').waitFor(seen);

    await page.getByRole('button', { name: 'Open serial console' }).click();
    const terminal = page.getByRole('region', { name: 'Serial console' });
    await terminal
      .locator('.xterm-rows')
      .getByText(/tick \d+/)
      .first()
      .waitFor(seen);
    await watched.screenshot('vm-page-with-console');

    await page.getByRole('button', { name: 'Log out' }).click();
    await page.getByRole('button', { name: 'Log in' }).waitFor(seen);
    assert.equal(
      await page.evaluate(() => (globalThis as any).sessionStorage.getItem('zenith.session')),
      null,
      'the session is gone from sessionStorage',
    );
    assert.deepEqual(watched.errors(), []);
  });

  test('a viewer sees the VM and its history but is offered no actions and no console', async () => {
    const watched = await browser.newPage();
    const { page } = watched;
    await logIn(watched, 'vera', 'viewer-password-1');
    await vmRow(watched).getByRole('link', { name: 'web-tiny' }).click();
    await page.getByRole('heading', { name: 'web-tiny' }).waitFor(seen);
    await page.getByRole('table', { name: 'Facts' }).getByText('power.state').waitFor(seen);
    await page.getByText("You may not open this VM's consoles.").waitFor(seen);
    for (const name of ['Start', 'Stop', 'Suspend', 'Resume', 'Reboot', 'Open serial console'])
      assert.equal(await page.getByRole('button', { name }).count(), 0, `no ${name} button`);
    await watched.screenshot('vm-page-viewer');

    // An administrator lets her power this VM while she looks at it: when she comes back to the
    // tab, the power actions are offered without logging in again; taken back, they go.
    const role = await s.request('POST', '/roles', {
      token,
      body: { name: 'vm-powerer', permissions: ['inventory.read', 'vm.power'] },
    });
    assert.equal(role.status, 201, JSON.stringify(role.body));
    const binding = await s.request('POST', '/role-bindings', {
      token,
      body: { subject: 'vera', role: 'vm-powerer', scope: vmId },
    });
    assert.equal(binding.status, 201, JSON.stringify(binding.body));
    const powerButton = page.getByRole('button', { name: /^(Start|Stop)$/ }).first();
    await page.evaluate(() => (globalThis as any).dispatchEvent(new Event('focus')));
    await powerButton.waitFor(seen);
    const unbound = await s.request('DELETE', `/role-bindings/${binding.body.id}`, { token });
    assert.equal(unbound.status < 300, true, JSON.stringify(unbound.body));
    await page.evaluate(() => (globalThis as any).dispatchEvent(new Event('focus')));
    await powerButton.waitFor({ ...seen, state: 'detached' });
    assert.equal(await page.getByRole('button', { name: 'Open serial console' }).count(), 0);
    assert.deepEqual(watched.errors(), []);
  });

  test('a session the server no longer accepts returns to the login page at once, with the reason', async () => {
    const watched = await browser.newPage();
    const { page } = watched;
    await logIn(watched, 'admin', 'admin-password-for-tests');
    await page.getByText('live', { exact: true }).waitFor(seen);
    watched.allowHttpStatus(401);
    // Revoke this browser's session behind its back: its event stream ends with the reason, so
    // the page leaves without waiting for its next call.
    const stored = JSON.parse(
      (await page.evaluate(() => (globalThis as any).sessionStorage.getItem('zenith.session'))) ??
        '{}',
    );
    await s.request('POST', '/auth/logout', { token: stored.token });
    await page
      .getByText(/Your session ended \(ZEN_(TOKEN_EXPIRED|UNAUTHENTICATED): /)
      .waitFor(seen);
    await page.getByRole('button', { name: 'Log in' }).waitFor(seen);
    assert.deepEqual(watched.errors(), []);
  });
});
