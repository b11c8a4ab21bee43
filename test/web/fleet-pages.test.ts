/**
 * The fleet-wide pages of the web console in Chromium, against a real Zenith on a simulated fleet
 * (1 datacenter, 2 clusters, 3 hosts each, 4 VMs per host): the inventory tree and filters, live
 * VMs appearing and leaving, the host page with an evacuation, tasks and events, audit, accounting
 * and policies; what a custom role scoped to one cluster is offered; accessibility and widths.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { launchBrowser, type TestBrowser, type WatchedPage } from '../../src/testing/browser.js';
import {
  startTestServer,
  type ApiAnswer,
  type TestServer,
} from '../../src/testing/control-plane.js';

const seen = { timeout: 60_000 };
const GiB = 1024 ** 3;

describe('the fleet pages of the web console in Chromium, on a simulated fleet', () => {
  let s: TestServer;
  let token: string;
  let browser: TestBrowser;
  let clusters: ApiAnswer[];

  before(async () => {
    s = await startTestServer();
    token = await s.login();
    const added = await s.request('POST', '/connections', {
      token,
      body: { name: 'lab', type: 'simulated', settings: { timeScale: 0.01 } },
    });
    assert.equal(added.status, 201, JSON.stringify(added.body));
    clusters = (await s.request('GET', '/clusters', { token })).body.items;
    browser = await launchBrowser();
  });
  after(async () => {
    await browser?.close();
    await s?.close();
  });

  const logIn = async (username = 'admin', password = 'admin-password-for-tests') => {
    const watched = await browser.newPage();
    const { page } = watched;
    await page.setViewportSize({ width: 1280, height: 900 });
    await page.goto(s.baseUrl);
    await page.getByLabel('User name').fill(username);
    await page.getByLabel(/^Password/).fill(password);
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.getByRole('heading', { name: 'Virtual machines' }).waitFor(seen);
    await page.getByText('live', { exact: true }).waitFor(seen);
    return watched;
  };
  const vmTable = (watched: WatchedPage) =>
    watched.page.getByRole('table', { name: 'Virtual machines' });
  const treeItem = (watched: WatchedPage, name: string) =>
    watched.page
      .getByRole('tree')
      .getByRole('treeitem')
      .filter({ has: watched.page.getByText(name, { exact: true }) })
      .last();

  test('the tree opens level by level with the keyboard, and a cluster in it narrows the table', async () => {
    const watched = await logIn();
    const { page } = watched;
    const [first] = clusters as [ApiAnswer];
    await treeItem(watched, 'sim-dc1').waitFor(seen);
    await treeItem(watched, 'sim-dc1').focus();
    await page.keyboard.press('ArrowRight');
    await treeItem(watched, first.name).waitFor(seen);
    await page.keyboard.press('ArrowDown');
    await page.keyboard.press('ArrowRight');
    const firstHost = (
      await s.request('GET', `/objects/${first.id}/children`, { token })
    ).body.items.find((o: ApiAnswer) => o.kind === 'host');
    await treeItem(watched, firstHost.name).waitFor(seen);
    // Enter on the cluster: the table holds only its VMs.
    await page.keyboard.press('Enter');
    await page.getByText(`In cluster`).waitFor(seen);
    const inCluster = (
      await s.request(
        'GET',
        `/vms?limit=100&filter=${encodeURIComponent(`location.clusterId=${first.id}`)}`,
        { token },
      )
    ).body.items as ApiAnswer[];
    await vmTable(watched).getByRole('link', { name: inCluster[0]!.name }).waitFor(seen);
    await waitForRowCount(watched, inCluster.length + 1);
    await watched.screenshot('inventory-tree');
    await page.getByRole('button', { name: /Show VMs everywhere/ }).click();
    await waitForRowCount(watched, 24 + 1);
    assert.deepEqual(watched.errors(), []);
  });

  test('the filter bar filters by tags and facts on the server, and a bad term shows its code', async () => {
    const watched = await logIn();
    const { page } = watched;
    const expected = (
      await s.request(
        'GET',
        `/vms?limit=100&tag=env:prod&filter=power.state=running&filter=cpu.count>=2`,
        { token },
      )
    ).body.items as ApiAnswer[];
    assert.ok(expected.length > 0 && expected.length < 24, `${expected.length} VMs match`);
    await page.getByLabel('Search by name, tag or fact').fill('tag:env:prod power=running cpus>=2');
    await waitForRowCount(watched, expected.length + 1);
    for (const vm of expected)
      await vmTable(watched).getByRole('link', { name: vm.name }).waitFor(seen);
    await watched.screenshot('inventory-filtered');
    watched.allowHttpStatus(400);
    await page.getByLabel('Search by name, tag or fact').fill('cpus>=many');
    await page
      .getByRole('alert')
      .getByText(/ZEN_BAD_FILTER/)
      .waitFor(seen);
    assert.deepEqual(watched.errors(), []);
  });

  test('a VM created or deleted elsewhere appears on and leaves the current page without a reload', async () => {
    const watched = await logIn();
    const { page } = watched;
    await page.getByLabel('Search by name, tag or fact').fill('zz-live');
    await page.getByText('No virtual machines match.').waitFor(seen);
    await page.evaluate(() => ((globalThis as any).notReloaded = true));
    const host = (await s.request('GET', '/hosts?limit=1', { token })).body.items[0];
    const created = await s.waitForTask(
      token,
      (
        await s.request('POST', '/vms', {
          token,
          body: { name: 'zz-live-1', hostId: host.id, cpus: 1, memoryBytes: GiB, diskBytes: 0 },
        })
      ).body.id,
    );
    assert.equal(created.state, 'succeeded', JSON.stringify(created.error));
    await vmTable(watched).getByRole('link', { name: 'zz-live-1' }).waitFor(seen);
    const deleted = await s.waitForTask(
      token,
      (await s.request('DELETE', `/vms/${created.result.vmId}`, { token })).body.id,
    );
    assert.equal(deleted.state, 'succeeded', JSON.stringify(deleted.error));
    await vmTable(watched)
      .getByRole('link', { name: 'zz-live-1' })
      .waitFor({
        ...seen,
        state: 'detached',
      });
    assert.equal(await page.evaluate(() => (globalThis as any).notReloaded), true);
    assert.deepEqual(watched.errors(), []);
  });

  test('the host page shows facts, VMs and load, and evacuates with the plan and its progress live', async () => {
    const [host] = (await s.request('GET', '/hosts?limit=1', { token })).body.items as [ApiAnswer];
    const onHost = (
      await s.request(
        'GET',
        `/vms?limit=100&filter=${encodeURIComponent(`location.hostId=${host.id}`)}`,
        { token },
      )
    ).body.items as ApiAnswer[];
    const watched = await logIn();
    const { page } = watched;
    await page.goto(`${s.baseUrl}/#/hosts/${host.id}`);
    await page.getByRole('heading', { name: host.name }).waitFor(seen);
    const vms = page.getByRole('table', { name: 'VMs on this host' });
    for (const vm of onHost) await vms.getByRole('link', { name: vm.name }).waitFor(seen);
    await page.getByRole('table', { name: 'Host facts' }).getByText('cpu.cores').waitFor(seen);
    await page.getByRole('progressbar', { name: 'vCPUs allocated (all VMs)' }).waitFor(seen);
    await watched.screenshot('host-page');

    await page.getByRole('button', { name: 'Enter maintenance (evacuate)' }).click();
    const plan = page.getByRole('table', { name: 'Migration plan' });
    for (const vm of onHost.filter((v) => v.status === 'present'))
      await plan.getByRole('row', { name: new RegExp(vm.name) }).waitFor(seen);
    await page.getByTestId('host-mode').getByText('maintenance', { exact: true }).waitFor(seen);
    await page.getByText('No VMs on this host.').waitFor(seen);
    await page.getByText(/Evacuation succeeded/).waitFor(seen);
    assert.equal(await plan.getByText('waiting').count(), 0, 'every move is done');
    await watched.screenshot('host-page-maintenance');

    await page.getByRole('button', { name: 'Exit maintenance' }).click();
    await page.getByTestId('host-mode').getByText('normal', { exact: true }).waitFor(seen);
    assert.deepEqual(watched.errors(), []);
  });

  const waitForRowCount = async (watched: WatchedPage, rows: number) => {
    await watched.page.waitForFunction(
      (expected) =>
        (globalThis as any).document.querySelectorAll('table[aria-label="Virtual machines"] tr')
          .length === expected,
      rows,
      seen,
    );
  };
});
