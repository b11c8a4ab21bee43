/**
 * The web console's high availability in Chromium, against a real Zenith that has had a real
 * failover: two physical hosts, each a `zenith agent` in its own PID and network namespace
 * (src/testing/physical-hosts.ts) with a storage directory both see; host A's machine behind a BMC
 * — Zenith's Redfish service simulator, a simulator of our own, whose power hooks start and kill
 * A's namespace — linked to A's agent host by its NIC's MAC; HA enabled by a global policy; one
 * tiny TCG guest on A. A crashes (everything in its namespace killed at once) while the HA page is
 * open: the page turns A failed, fenced through its BMC, and lists the failover with the guest
 * running on B, without a reload. The VM page shows the guest protected and marks its interval on
 * B as a failover from A; A's host page carries its HA state and fencing; a viewer reads it all.
 * Every page passes axe-core and does not scroll sideways at 1280, 1440 and 2560 pixels.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { seriousViolations } from '../../src/testing/accessibility.js';
import { launchBrowser, type TestBrowser, type WatchedPage } from '../../src/testing/browser.js';
import {
  ok,
  startTestServer,
  type ApiAnswer,
  type TestServer,
} from '../../src/testing/control-plane.js';
import { ensureGuestImage, GUEST_KERNEL_APPEND } from '../../src/testing/guest-image.js';
import { MachineProcess } from '../../src/testing/machine-process.js';
import {
  startPhysicalLab,
  type PhysicalHost,
  type PhysicalLab,
} from '../../src/testing/physical-hosts.js';
import {
  startRedfishSimulator,
  type RedfishSimulator,
} from '../../src/testing/redfish-simulator.js';
import { until } from '../../src/testing/wait.js';

const seen = { timeout: 30_000 };

describe('the web console shows high availability after a real failover (agents in namespaces, Redfish simulator, Chromium)', () => {
  let lab: PhysicalLab;
  let s: TestServer;
  let admin: string;
  let sim: RedfishSimulator;
  let browser: TestBrowser;
  const machines: Record<string, MachineProcess> = {};
  const physical: Record<string, PhysicalHost> = {};
  const baseDir = mkdtempSync(join(tmpdir(), 'zenith-ha-web-'));
  const shared = join(baseDir, 'shared');
  let vmId: string;
  let hostAId: string;

  const get = async (path: string) => ok(await s.request('GET', path, { token: admin }));

  before(async () => {
    const image = await ensureGuestImage();
    mkdirSync(shared, { recursive: true });
    lab = await startPhysicalLab();
    s = await startTestServer({ listenHost: lab.gateway, ha: { graceMs: 1000, tickMs: 250 } });
    admin = await s.login();
    for (const name of ['ha-a', 'ha-b']) {
      const token = ok(
        await s.request('POST', '/agents/enrollment-tokens', { token: admin, body: {} }),
        201,
      ).token as string;
      // The shared directory first: the guest's disk goes there, where both hosts see it.
      const host = await lab.addHost({
        name,
        serverUrl: s.baseUrl,
        enrollmentToken: token,
        storageRoots: [shared, dirname(image.kernel)],
        baseDir,
      });
      machines[name] = new MachineProcess(host.machineCommand);
      physical[name] = host;
    }
    sim = await startRedfishSimulator({
      machines: 1,
      hooks: {
        powerOn: () => machines['ha-a']!.start(),
        powerOff: () => machines['ha-a']!.stop(),
      },
    });
    sim.machine('System1').macs = [physical['ha-a']!.mac];
    for (const machine of Object.values(machines)) await machine.start();
    for (const name of Object.keys(machines))
      await until(
        `agent host ${name} connected`,
        async () => {
          const host = await s.request('GET', `/hosts/${name}`, { token: admin });
          if (host.status !== 200) return undefined;
          const connection = await get(`/connections/${host.body.connectionId}`);
          return connection.state === 'connected' ? true : undefined;
        },
        60_000,
        200,
      );
    ok(
      await s.request('POST', '/connections', {
        token: admin,
        body: {
          name: 'bmc-a',
          type: 'redfish',
          settings: {
            url: sim.url,
            username: sim.username,
            thumbprint: sim.thumbprint,
            pollSeconds: 1,
          },
          secret: sim.password,
        },
      }),
      201,
    );
    hostAId = await until('ha-a linked to its machine', async () => {
      const host = await get('/hosts/ha-a');
      return typeof host.computed['machine.id'] === 'string' ? (host.id as string) : undefined;
    });
    const created = await s.waitForTask(
      admin,
      ok(
        await s.request('POST', '/vms', {
          token: admin,
          body: {
            name: 'web',
            hostId: 'ha-a',
            cpus: 1,
            memoryBytes: 96 * 2 ** 20,
            diskBytes: 8 * 2 ** 20,
            options: { kernel: image.kernel, initrd: image.initrd, cmdline: GUEST_KERNEL_APPEND },
          },
        }),
        202,
      ).id,
      60_000,
    );
    assert.equal(created.state, 'succeeded', JSON.stringify(created.error));
    vmId = created.result.vmId as string;
    const started = await s.waitForTask(
      admin,
      ok(await s.request('POST', `/vms/${vmId}/start`, { token: admin }), 202).id,
      60_000,
    );
    assert.equal(started.state, 'succeeded', JSON.stringify(started.error));
    ok(
      await s.request('POST', '/policies', {
        token: admin,
        body: {
          name: 'ha-everywhere',
          scope: { kind: 'global' },
          settings: {
            ha: { enabled: true, failureDetectionSeconds: 3, selfFenceSeconds: 3 },
          },
        },
      }),
      201,
    );
    await until(
      'web protected (described)',
      async () => ((await get(`/ha/vms/${vmId}`)).state === 'protected' ? true : undefined),
      30_000,
      250,
    );
    ok(
      await s.request('POST', '/users', {
        token: admin,
        body: { name: 'vera', role: 'viewer', password: 'vera-password-123' },
      }),
      201,
    );
    browser = await launchBrowser();
  });
  after(async () => {
    try {
      await browser?.close();
      await sim?.close();
      for (const machine of Object.values(machines)) await machine.stop();
      await s?.close();
    } finally {
      await lab?.close();
      rmSync(baseDir, { recursive: true, force: true });
    }
  });

  const logIn = async (username = 'admin', password = 'admin-password-for-tests') => {
    const watched = await browser.newPage();
    const { page } = watched;
    await page.setViewportSize({ width: 1280, height: 900 });
    await page.goto(s.baseUrl);
    await page.getByLabel('User name').fill(username);
    await page.getByLabel(/^Password/).fill(password);
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.getByRole('heading', { name: 'Virtual machines' }).first().waitFor(seen);
    return watched;
  };
  /** No serious axe violation and no sideways scrolling at the widths operators use. */
  const audit = async (watched: WatchedPage, name: string) => {
    const { page } = watched;
    for (const width of [1280, 1440, 2560]) {
      await page.setViewportSize({ width, height: 900 });
      const overflow = await page.evaluate(() => {
        const doc = (globalThis as unknown as { document: { documentElement: ApiAnswer } }).document
          .documentElement;
        return doc.scrollWidth - doc.clientWidth;
      });
      assert.ok(overflow <= 0, `${name} at ${width}px scrolls sideways by ${overflow}px`);
      assert.deepEqual(await seriousViolations(page), [], `${name} at ${width}px`);
      if (width === 1440) await watched.screenshot(`ha-${name}`);
    }
    await page.setViewportSize({ width: 1280, height: 900 });
  };
  const hostRow = (watched: WatchedPage, name: string) =>
    watched.page
      .getByRole('table', { name: 'Hosts HA watches' })
      .getByRole('row', { name: new RegExp(`^${name}\\b`) });

  test('host A crashes while the HA page is open: A turns failed (fenced through its BMC), and the failover lists the VM running on B, without a reload', async (t) => {
    const watched = await logIn();
    const { page } = watched;
    await page.getByRole('link', { name: 'High availability' }).click();
    await page.getByRole('heading', { name: 'High availability' }).waitFor(seen);
    await hostRow(watched, 'ha-a').getByText('healthy', { exact: true }).waitFor(seen);
    await hostRow(watched, 'ha-a').getByText('fencing BMC').waitFor(seen);
    await hostRow(watched, 'ha-b').getByText('healthy', { exact: true }).waitFor(seen);
    await page.getByText('No failover yet.').waitFor(seen);
    const vmRow = page.getByRole('table', { name: 'VM protection' }).getByRole('row', {
      name: /^web\b/,
    });
    await vmRow.getByText('protected', { exact: true }).waitFor(seen);
    await vmRow.getByText('ha-a').waitFor(seen);
    await page.evaluate(() => ((globalThis as Record<string, unknown>).notReloaded = true));

    // The crash: everything in A's namespaces dies at once (the BMC still reads it on).
    const crashedAt = Date.now();
    await machines['ha-a']!.stop();
    const failover = await until(
      'the failover of ha-a to finish',
      async () => {
        const items = (await get('/ha/failovers')).items as ApiAnswer[];
        const latest = items.find((f) => f.hostName === 'ha-a');
        return latest?.state === 'done' ? latest : undefined;
      },
      90_000,
      200,
    );
    const doneAt = Date.now();
    assert.equal(failover.fenceMethod, 'bmc');
    assert.deepEqual(
      (failover.restarts as ApiAnswer[]).map((r) => [r.vmName, r.state, r.toHostName]),
      [['web', 'running', 'ha-b']],
    );

    await hostRow(watched, 'ha-a').getByText('failed', { exact: true }).waitFor(seen);
    await hostRow(watched, 'ha-a').getByText('fencing BMC').waitFor(seen);
    await hostRow(watched, 'ha-b').getByText('healthy', { exact: true }).waitFor(seen);
    const shownAt = Date.now();
    const item = page.locator(`[data-failover="${failover.id}"]`);
    await item.getByRole('button', { name: /ha-a.*done.*fencing BMC.*1\/1 running/ }).waitFor(seen);
    const restart = item
      .getByRole('table', { name: "Restarts of ha-a's VMs" })
      .getByRole('row', { name: /web/ });
    await restart.getByText('running', { exact: true }).waitFor(seen);
    await restart.getByRole('link', { name: 'ha-b' }).waitFor(seen);
    await item
      .getByRole('table', { name: 'Fencing of ha-a' })
      .getByRole('row', { name: /Fenced.*BMC/ })
      .waitFor(seen);
    await vmRow.getByText('ha-b').waitFor(seen);
    assert.equal(
      await page.evaluate(() => (globalThis as Record<string, unknown>).notReloaded),
      true,
      'followed live, not reloaded',
    );
    t.diagnostic(
      `failover done ${doneAt - crashedAt} ms after the crash (API); the page showed it by ${shownAt - crashedAt} ms`,
    );
    await audit(watched, 'page');
    assert.deepEqual(watched.errors(), []);
    await page.close();
  });

  test('the VM page shows the VM protected and marks its interval on B as a failover from A', async () => {
    await until(
      'web protected again on ha-b',
      async () => ((await get(`/ha/vms/${vmId}`)).state === 'protected' ? true : undefined),
      30_000,
      250,
    );
    const watched = await logIn();
    const { page } = watched;
    await page.goto(`${s.baseUrl}/#/vms/${vmId}`);
    await page.getByRole('heading', { name: 'web', exact: true }).waitFor(seen);
    const protection = page.getByRole('group', { name: 'High availability' });
    await protection.getByText('protected', { exact: true }).waitFor(seen);
    await protection.getByText(/priority medium · order group 1/).waitFor(seen);
    const history = page.getByRole('list', { name: 'Location history' });
    const latest = history.getByRole('listitem').first();
    await latest.getByText(/ha-b · running/).waitFor(seen);
    await latest.getByText('failover', { exact: true }).waitFor(seen);
    await latest
      .getByText(/Restarted here by high availability after ha-a failed; down \d/)
      .waitFor(seen);
    await latest.getByTestId('failover-mark').hover();
    await page
      .getByRole('tooltip')
      .getByText(/ha-a failed at .*; down \d/)
      .waitFor(seen);
    // Away again: a tooltip fading out is half transparent, which the contrast audit would catch.
    await page.mouse.move(0, 0);
    await page.getByRole('tooltip').waitFor({ state: 'detached', ...seen });
    // The interval before it, on A, is not a failover.
    const previous = history.getByRole('listitem').nth(1);
    await previous.getByText(/ha-a · /).waitFor(seen);
    assert.equal(await previous.getByTestId('failover-mark').count(), 0);
    await audit(watched, 'vm');
    assert.deepEqual(watched.errors(), []);
    await page.close();
  });

  test("A's host page carries its HA state and fencing; a viewer reads the HA page", async () => {
    const watched = await logIn();
    await watched.page.goto(`${s.baseUrl}/#/hosts/${hostAId}`);
    await watched.page.getByRole('heading', { name: 'ha-a', exact: true }).waitFor(seen);
    const badges = watched.page.getByRole('group', { name: 'High availability' });
    await badges.getByText('HA failed').waitFor(seen);
    await badges.getByText('fencing BMC').waitFor(seen);
    await audit(watched, 'host');
    assert.deepEqual(watched.errors(), []);
    await watched.page.close();

    const viewer = await logIn('vera', 'vera-password-123');
    await viewer.page.getByRole('link', { name: 'High availability' }).click();
    await hostRow(viewer, 'ha-a').getByText('failed', { exact: true }).waitFor(seen);
    await viewer.page.getByRole('table', { name: "Restarts of ha-a's VMs" }).waitFor(seen);
    assert.equal(
      await viewer.page
        .getByRole('main')
        .getByRole('button', { name: /^(Start|Stop|Delete)/ })
        .count(),
      0,
    );
    assert.deepEqual(viewer.errors(), []);
    await viewer.page.close();
  });
});
