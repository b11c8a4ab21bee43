/**
 * The fleet-wide pages of the web console in Chromium, against a real Zenith on a simulated fleet
 * (1 datacenter, 2 clusters, 3 hosts each, 4 VMs per host): the inventory tree and filters, live
 * VMs appearing and leaving, the host page with an evacuation, tasks and events, audit, accounting
 * and policies; what a custom role scoped to one cluster is offered; accessibility and widths.
 */
import assert from 'node:assert/strict';
import { after, afterEach, before, describe, test } from 'node:test';
import { readFileSync } from 'node:fs';
import { seriousViolations } from '../../src/testing/accessibility.js';
import { until } from '../../src/testing/wait.js';
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
    // Prices high enough that seconds of simulated use cost something.
    const card = await s.request('POST', '/accounting/rate-cards', {
      token,
      body: {
        effectiveFrom: Date.now() - 30 * 86_400_000,
        currency: 'EUR',
        timeZone: 'UTC',
        rates: [{ vcpuHour: '3600', memoryGiBHour: '360', diskGiBHour: '0' }],
      },
    });
    assert.equal(card.status, 201, JSON.stringify(card.body));
    const someVms = (await s.request('GET', '/vms?limit=3', { token })).body.items as ApiAnswer[];
    for (const vm of someVms) {
      const owned = await s.request('PUT', `/vms/${vm.id}/ownership`, {
        token,
        body: { owner: 'rita', group: 'research' },
      });
      assert.equal(owned.status, 200, JSON.stringify(owned.body));
    }
    browser = await launchBrowser();
  });
  after(async () => {
    await browser?.close();
    await s?.close();
  });

  // Each tab holds an event stream, and Chromium opens at most 6 connections per host: a test's
  // tabs are closed when it ends.
  const opened: WatchedPage[] = [];
  afterEach(async () => {
    for (const watched of opened.splice(0)) await watched.page.close();
  });

  const logIn = async (username = 'admin', password = 'admin-password-for-tests') => {
    const watched = await browser.newPage();
    opened.push(watched);
    const { page } = watched;
    await page.setViewportSize({ width: 1280, height: 900 });
    await page.goto(s.baseUrl);
    // The first page of a fresh browser under the suite's load may take longer than an action's
    // 30 s: the login form is awaited as long as any page of this file.
    await page.getByLabel('User name').waitFor(seen);
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

  test('a VM created or deleted elsewhere appears on and leaves the current page and the tree without a reload', async () => {
    const watched = await logIn();
    const { page } = watched;
    await page.getByLabel('Search by name, tag or fact').fill('zz-live');
    await page.getByText('No virtual machines match.').waitFor(seen);
    await page.evaluate(() => ((globalThis as any).notReloaded = true));
    const host = (await s.request('GET', '/hosts?limit=1', { token })).body.items[0];
    // The tree opened down to that host.
    const cluster = (await s.request('GET', `/objects/${host.parentId}`, { token })).body;
    const datacenter = (await s.request('GET', `/objects/${cluster.parentId}`, { token })).body;
    for (const level of [datacenter, cluster, host]) {
      await treeItem(watched, level.name).waitFor(seen);
      await treeItem(watched, level.name).focus();
      await page.keyboard.press('ArrowRight');
    }
    const alreadyOnHost = (
      await s.request('GET', `/objects/${host.id}/children`, { token })
    ).body.items.filter((o: ApiAnswer) => o.kind === 'vm') as ApiAnswer[];
    if (alreadyOnHost[0]) await treeItem(watched, alreadyOnHost[0].name).waitFor(seen);
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
    await treeItem(watched, 'zz-live-1').waitFor(seen);
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
    await page
      .getByRole('tree')
      .getByText('zz-live-1', { exact: true })
      .waitFor({ ...seen, state: 'detached' });
    for (const vm of alreadyOnHost) await treeItem(watched, vm.name).waitFor(seen);
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

  test('tasks and events follow the stream: a task started elsewhere appears and ends live', async () => {
    const watched = await logIn();
    const { page } = watched;
    await page.getByRole('link', { name: 'Tasks and events' }).click();
    await page.getByRole('heading', { name: 'Tasks and events' }).waitFor(seen);
    const vm = (
      await s.request('GET', '/vms?limit=1&filter=power.state=running&filter=status=present', {
        token,
      })
    ).body.items[0];
    const task = await s.request('POST', `/vms/${vm.id}/suspend`, { token });
    assert.equal(task.status, 202, JSON.stringify(task.body));
    const row = page
      .getByRole('table', { name: 'Recent tasks' })
      .locator(`tr[data-task-id="${task.body.id}"]`);
    await row.getByText('succeeded').waitFor(seen);
    await page
      .getByRole('table', { name: 'Recent events' })
      .getByText('task.succeeded')
      .first()
      .waitFor(seen);
    await watched.screenshot('tasks-and-events');
    await s.waitForTask(
      token,
      (await s.request('POST', `/vms/${vm.id}/resume`, { token })).body.id,
    );
    assert.deepEqual(watched.errors(), []);
  });

  test('the audit log filters by actor, action, object and period, and shows the chain intact', async () => {
    const watched = await logIn();
    const { page } = watched;
    await page.getByRole('link', { name: 'Audit' }).click();
    await page
      .getByRole('status', { name: 'Chain verification' })
      .getByText(/intact/)
      .waitFor(seen);
    const vm = (
      await s.request('GET', '/vms?limit=1&filter=power.state=running&filter=status=present', {
        token,
      })
    ).body.items[0];
    for (const action of ['suspend', 'resume'])
      await s.waitForTask(
        token,
        (await s.request('POST', `/vms/${vm.id}/${action}`, { token })).body.id,
      );
    await page.getByLabel('Actor (name or id)').fill('admin');
    await page.getByLabel('Action (prefix, e.g. vm.)').fill('vm.');
    await page.getByLabel('Object (name or id)').fill(vm.name);
    await page.getByLabel('From').fill('2020-01-01T00:00');
    await page.getByRole('button', { name: 'Filter' }).click();
    const records = page.getByRole('table', { name: 'Audit records' });
    await records.getByText('vm.suspend', { exact: true }).first().waitFor(seen);
    // The page lists every record before the filter's answer replaces them: wait for that answer
    // (the filtered table has no other action), then check it. A filter that did not apply still
    // fails here, when the wait ends.
    const actionCells = records.locator('tbody tr td:nth-child(4)');
    const actions = await until(
      'the filtered audit records',
      async () => {
        const texts = await actionCells.allInnerTexts();
        return texts.length > 0 && texts.every((a) => a.startsWith('vm.')) ? texts : undefined;
      },
      10_000,
    ).catch(async () => actionCells.allInnerTexts());
    assert.ok(actions.length > 0 && actions.every((a) => a.startsWith('vm.')), actions.join());
    const objects = await records.locator('tbody tr td:nth-child(5)').allInnerTexts();
    assert.ok(
      objects.every((o) => o === vm.id),
      objects.join(),
    );
    await watched.screenshot('audit');
    // A period with nothing in it.
    await page.getByLabel('From').fill('2001-01-01T00:00');
    await page.getByLabel('Until').fill('2001-01-02T00:00');
    await page.getByRole('button', { name: 'Filter' }).click();
    await page.getByText('No records match.').waitFor(seen);
    assert.deepEqual(watched.errors(), []);
  });

  test('accounting charts showback per group and downloads the report as CSV and JSON', async () => {
    const watched = await logIn();
    const { page } = watched;
    await page.getByRole('link', { name: 'Accounting' }).click();
    const chart = page.getByRole('img', { name: 'Cost per group' });
    await chart.locator('.recharts-bar-rectangle').first().waitFor(seen);
    await page
      .getByRole('region', { name: 'Showback per group' })
      .getByText(/Total .* EUR/)
      .waitFor(seen);
    await page.getByLabel('Group by').selectOption('group');
    await page.getByRole('button', { name: 'Show' }).click();
    const rows = page.getByRole('table', { name: 'Report rows' });
    await rows.getByText('research').first().waitFor(seen);
    await watched.screenshot('accounting');
    const [csv] = await Promise.all([
      page.waitForEvent('download'),
      page.getByRole('button', { name: 'Download CSV' }).click(),
    ]);
    const text = readFileSync(await csv.path(), 'utf8');
    assert.match(text.split('\n')[0]!, /bucket|period|from/i);
    assert.match(text, /research/);
    const [json] = await Promise.all([
      page.waitForEvent('download'),
      page.getByRole('button', { name: 'Download JSON' }).click(),
    ]);
    const report = JSON.parse(readFileSync(await json.path(), 'utf8'));
    assert.equal(report.groupBy, 'group');
    assert.ok(report.rows.some((r: ApiAnswer) => r.key === 'research'));
    assert.deepEqual(watched.errors(), []);
  });

  test('the policy editor tests a draft live, shows a syntax error with its position, and saves it', async () => {
    const watched = await logIn();
    const { page } = watched;
    watched.allowHttpStatus(400);
    await page.getByRole('link', { name: 'Policies' }).click();
    const editor = page.getByLabel('New policy (JSON)');
    await page.getByText(/Applies to \d+ VMs/).waitFor(seen);
    const draft = {
      name: 'big-hosts',
      scope: { kind: 'global' },
      when: "'env:prod' in vm.tags",
      constraints: [{ name: 'big', expression: 'host.cpu.cores >= (64' }],
    };
    await editor.fill(JSON.stringify(draft, null, 2));
    const refusal = page.getByRole('alert');
    await refusal.getByText('ZEN_POLICY_SYNTAX').waitFor(seen);
    await refusal.getByText(/At constraints\[0\]\.expression, line 1, column \d+/).waitFor(seen);
    draft.constraints[0]!.expression = 'host.cpu.cores >= 64';
    await editor.fill(JSON.stringify(draft, null, 2));
    const prod = (await s.request('GET', '/vms?limit=1000&tag=env:prod', { token })).body.items;
    await page.getByText(`Applies to ${prod.length} VMs`, { exact: false }).waitFor(seen);
    await page.getByRole('table', { name: 'Constraints against the inventory' }).waitFor(seen);
    await page.getByLabel('Try an expression across the fleet').fill('host.cpu.cores >= 64');
    await page
      .getByRole('region', { name: 'Expression test result' })
      .getByText(/Over \d+ (hosts|vms)/)
      .waitFor(seen);
    await watched.screenshot('policies');
    await page.getByRole('button', { name: 'Create policy' }).click();
    await page.getByText('Saved big-hosts.').waitFor(seen);
    await page
      .getByRole('navigation', { name: 'Saved policies' })
      .getByText('big-hosts')
      .waitFor(seen);
    assert.equal((await s.request('GET', '/policies/big-hosts', { token })).status, 200);
    await page.getByRole('button', { name: 'Delete policy' }).click();
    await page.getByText('Deleted big-hosts.').waitFor(seen);
    assert.deepEqual(watched.errors(), []);
  });

  test('a custom role bound on one cluster is offered maintenance there only, and no page it cannot read', async () => {
    const [mine, theirs] = clusters as [ApiAnswer, ApiAnswer];
    for (const [path, body] of [
      ['/users', { name: 'carl', role: 'viewer', password: 'carl-password-123' }],
      ['/roles', { name: 'host-keeper', permissions: ['inventory.read', 'host.maintenance'] }],
      ['/role-bindings', { subject: 'carl', role: 'host-keeper', scope: mine.id }],
    ] as const) {
      const answer = await s.request('POST', path, { token, body });
      assert.ok(answer.status < 300, `${path}: ${JSON.stringify(answer.body)}`);
    }
    const hostIn = async (cluster: ApiAnswer) =>
      (await s.request('GET', `/objects/${cluster.id}/children`, { token })).body.items.find(
        (o: ApiAnswer) => o.kind === 'host',
      );
    const watched = await logIn('carl', 'carl-password-123');
    const { page } = watched;
    await page.getByRole('link', { name: 'Policies' }).waitFor(seen);
    assert.equal(await page.getByRole('link', { name: 'Audit' }).count(), 0);
    assert.equal(await page.getByRole('link', { name: 'Accounting' }).count(), 0);
    const mineHost = await hostIn(mine);
    await page.goto(`${s.baseUrl}/#/hosts/${mineHost.id}`);
    await page.getByRole('button', { name: 'Enter maintenance (evacuate)' }).waitFor(seen);
    const theirHost = await hostIn(theirs);
    await page.goto(`${s.baseUrl}/#/hosts/${theirHost.id}`);
    await page.getByRole('heading', { name: theirHost.name }).waitFor(seen);
    await page.getByText('Mode:').waitFor(seen);
    assert.equal(
      await page.getByRole('button', { name: 'Enter maintenance (evacuate)' }).count(),
      0,
      'not offered outside the binding',
    );
    assert.deepEqual(watched.errors(), []);
  });

  test('a page whose code fails to load once is loaded again; one that keeps failing says so and the rest of the console still works', async () => {
    const watched = await logIn();
    const { page } = watched;
    // The HA page's chunk fails once at the network level, as when the connection drops: the
    // browser keeps that import failed, and the console imports it again under a new address.
    const chunk = /\/assets\/ha-page-[^/]*\.js/;
    let refused = 0;
    await page.route(chunk, async (route) => {
      refused += 1;
      if (refused === 1) await route.abort('connectionreset');
      else await route.continue();
    });
    await page.getByRole('link', { name: 'High availability' }).click();
    await page.getByRole('heading', { name: 'High availability', level: 2 }).waitFor(seen);
    assert.equal(refused, 2, 'the chunk was asked for again after it failed');
    await page.unroute(chunk);

    // The audit page's chunk never loads: the page says why and offers a reload; the header, its
    // links and the other pages still work.
    const second = await logIn();
    second.allowHttpStatus(503);
    const other = second.page;
    await other.route(/\/assets\/audit-page-[^/]*\.js/, (route) =>
      route.fulfill({ status: 503, body: 'unavailable' }),
    );
    await other.getByRole('link', { name: 'Audit' }).click();
    const failed = other.getByRole('alert').filter({ hasText: 'This page could not be shown' });
    await failed.waitFor(seen);
    await failed.getByRole('button', { name: 'Load the console again' }).waitFor(seen);
    assert.match((await failed.textContent()) ?? '', /audit-page-[^/]*\.js/);
    await other.getByRole('link', { name: 'Tasks and events' }).click();
    await other.getByRole('heading', { name: 'Tasks and events', level: 2 }).waitFor(seen);
    assert.equal(await other.getByText('This page could not be shown').count(), 0);
    // The browser logs the reset it met, and nothing else went wrong.
    assert.equal(watched.errors().length, 1, watched.errors().join('\n'));
    assert.match(watched.errors()[0]!, /ERR_CONNECTION_RESET.*ha-page/);
    // The failure is logged in the browser's console for whoever reports it; nothing else is.
    assert.ok(
      second.errors().every((line) => /page failed|audit-page|dynamically imported/i.test(line)),
      second.errors().join('\n'),
    );
  });

  test('simulated hosts and VMs are labelled in the table, the tree and on their pages', async () => {
    const watched = await logIn();
    const { page } = watched;
    const vm = (await s.request('GET', '/vms?limit=1&sort=name', { token })).body.items[0];
    const host = (await s.request('GET', `/hosts/${vm.computed['location.hostId']}`, { token }))
      .body;
    assert.equal(vm.simulated, true);
    const row = vmTable(watched).locator(`tr[data-vm-name="${vm.name}"]`);
    await row.getByText('simulated', { exact: true }).waitFor(seen);
    const cluster = clusters.find((c) => c.id === host.parentId)!;
    for (const level of ['sim-dc1', cluster.name]) {
      await treeItem(watched, level).waitFor(seen);
      await treeItem(watched, level).focus();
      await page.keyboard.press('ArrowRight');
    }
    await treeItem(watched, host.name).waitFor(seen);
    await treeItem(watched, host.name).getByText('simulated', { exact: true }).waitFor(seen);
    for (const [hash, name] of [
      [`#/vms/${vm.id}`, vm.name],
      [`#/hosts/${host.id}`, host.name],
    ]) {
      await page.goto(`${s.baseUrl}/${hash}`);
      const heading = page.getByRole('heading', { name, exact: true });
      await heading.waitFor(seen);
      await heading.locator('..').getByText('simulated', { exact: true }).waitFor(seen);
    }
    assert.deepEqual(watched.errors(), []);
  });

  test('every page passes an accessibility audit (axe-core) and fits at 1280, 1440 and 2560 pixels, nothing clipped', async () => {
    const watched = await logIn();
    const { page } = watched;
    const host = (await s.request('GET', '/hosts?limit=1', { token })).body.items[0];
    // Each page with what shows it has loaded (the event stream keeps the network busy).
    const pages: Array<[string, string, string, string]> = [
      ['inventory', '#/vms', 'Virtual machines', 'table[aria-label="Virtual machines"] tbody tr'],
      ['host', `#/hosts/${host.id}`, host.name, 'table[aria-label="Host facts"] tbody tr'],
      ['tasks', '#/tasks', 'Tasks and events', 'table[aria-label="Recent events"] tbody tr'],
      ['audit', '#/audit', 'Audit log', 'table[aria-label="Audit records"] tbody tr'],
      ['accounting', '#/accounting', 'Accounting', '.recharts-bar-rectangle'],
      ['policies', '#/policies', 'Policies', 'text=/Applies to \\d+ VMs/'],
    ];
    const found: string[] = [];
    for (const width of [1280, 1440, 2560]) {
      await page.setViewportSize({ width, height: width === 2560 ? 1440 : 800 });
      for (const [name, hash, heading, loaded] of pages) {
        await page.goto(`${s.baseUrl}/${hash}`);
        await page.getByRole('heading', { name: heading, exact: true }).waitFor(seen);
        await page.locator(loaded).first().waitFor(seen);
        for (const v of await seriousViolations(page))
          found.push(
            `${name}@${width}: ${v.impact} ${v.id} (${v.help}) at ${v.targets.join(' | ')}`,
          );
        const overflow = await page.evaluate(() => {
          const doc = (globalThis as any).document.documentElement;
          return doc.scrollWidth - doc.clientWidth;
        });
        assert.ok(overflow <= 0, `${name} at ${width}px scrolls sideways by ${overflow}px`);
        // Badges (task states, power states) show their whole word, not "SUCCEE…".
        const clipped = await page.evaluate(() =>
          [...(globalThis as any).document.querySelectorAll('.mantine-Badge-label')]
            .filter((label: any) => label.scrollWidth > label.clientWidth + 1)
            .map((label: any) => label.textContent as string),
        );
        assert.deepEqual(clipped, [], `${name} at ${width}px clips badges`);
        if (width === 2560) await watched.screenshot(`${name}-2560`);
      }
    }
    assert.deepEqual(found, []);
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
