/**
 * vSphere clusters are protected by vSphere HA, not by Zenith: an operator turns vSphere HA on and
 * off through the vSphere API (ReconfigureComputeResource_Task, as the vSphere client does), and
 * Zenith shows it — cluster facts, each host's state as vSphere HA reports it, events, GET /ha and
 * `zenith ha status`, the web console's HA page (Chromium) — while its own HA (watch, what-if,
 * admission control) leaves those hosts alone even with a global Zenith HA policy.
 *
 * The simulator is govmomi's, which ignores a cluster's dasConfig and sets no host state; ours
 * adds vCenter's behaviour for both (src/testing/vsphere-simulator/das.go).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { seriousViolations } from '../../src/testing/accessibility.js';
import { launchBrowser, type TestBrowser } from '../../src/testing/browser.js';
import {
  adminPassword,
  startTestServer,
  type ApiAnswer,
  type TestServer,
} from '../../src/testing/control-plane.js';
import type { VimArgObject } from '../../src/protocols/vim/vim-values.js';
import { cliRunner } from '../../src/testing/server-process.js';
import { VsphereOperator } from '../../src/testing/vsphere-operator.js';
import {
  startVsphereSimulator,
  type VsphereSimulator,
} from '../../src/testing/vsphere-simulator.js';
import { until } from '../../src/testing/wait.js';

describe('a vSphere cluster protected by vSphere HA', () => {
  let sim: VsphereSimulator;
  let s: TestServer;
  let token: string;
  let operator: VsphereOperator;
  let zenith: ReturnType<typeof cliRunner>;
  let browser: TestBrowser | undefined;

  const call = (method: string, path: string, body?: unknown) =>
    s.request(method, path, { token, ...(body === undefined ? {} : { body }) });
  const ok = (answer: { status: number; body: ApiAnswer }, status = 200) => {
    assert.equal(answer.status, status, JSON.stringify(answer.body));
    return answer.body;
  };
  const cluster = async () => ok(await call('GET', '/clusters')).items[0];
  const clusterHosts = async () =>
    (ok(await call('GET', '/hosts?limit=100')).items as ApiAnswer[])
      .filter((h) => h.name.startsWith('DC0_C0_'))
      .sort((a, b) => a.name.localeCompare(b.name));
  const vm = async (name: string) => ok(await call('GET', `/vms/${name}`));
  const haStatus = async (): Promise<ApiAnswer> => ok(await call('GET', '/ha'));
  const hostStateEvents = async () =>
    ok(await call('GET', '/events?type=ha.vsphereHostState&limit=100')).items as ApiAnswer[];
  /** Reconfigures the cluster's vSphere HA as the vSphere client does. */
  const reconfigureHa = async (dasConfig: VimArgObject, extra: VimArgObject = {}) => {
    const clusters = await operator.named('ClusterComputeResource');
    await operator.task('ReconfigureComputeResource_Task', clusters.get('DC0_C0')!, {
      spec: { $type: 'ClusterConfigSpecEx', dasConfig, ...extra },
      modify: true,
    });
  };

  before(async () => {
    sim = await startVsphereSimulator({
      clustersPerDatacenter: 1,
      hostsPerCluster: 3,
      standaloneHostsPerDatacenter: 1,
      vmsPerPool: 2,
    });
    s = await startTestServer();
    token = await s.login();
    operator = await VsphereOperator.connect(sim);
    const added = ok(
      await call('POST', '/connections', {
        name: 'vc',
        type: 'vsphere',
        settings: { url: sim.url, username: sim.username, thumbprint: sim.thumbprint },
        secret: sim.password,
      }),
      201,
    );
    assert.equal(added.state, 'connected', added.lastError);
    // Zenith's own HA on everywhere, with admission control: it must still leave vSphere alone.
    ok(
      await call('POST', '/policies', {
        name: 'ha-everywhere',
        scope: { kind: 'global' },
        settings: { ha: { enabled: true, hostFailuresToTolerate: 1 } },
      }),
      201,
    );
    zenith = cliRunner(s.baseUrl);
    const login = await zenith(['login', '--user', 'admin'], { input: `${adminPassword}\n` });
    assert.equal(login.code, 0, login.stderr);
  });
  after(async () => {
    await browser?.close();
    await operator.close();
    await s.close();
    await sim.stop();
  });

  test('before vSphere HA is turned on, the cluster says it is off and its hosts report no HA state', async () => {
    const facts = (await cluster()).facts;
    assert.equal(facts['ha.vsphere.enabled'], false);
    for (const host of await clusterHosts())
      assert.equal(host.facts['ha.vsphere.hostState'], undefined, host.name);
    const status = await haStatus();
    assert.deepEqual(
      status.vsphereClusters.map((c: ApiAnswer) => [c.name, c.enabled]),
      [['DC0_C0', false]],
    );
    const host = status.hosts.find((h: ApiAnswer) => h.name === 'DC0_C0_H0');
    assert.equal(host.state, 'unprotected');
    assert.match(host.reason, /vSphere HA is off in cluster DC0_C0/);
  });

  test('turned on through the vSphere API: the cluster facts, every host master or connected to it, a VM’s own priority, events, GET /ha and `zenith ha status`', async () => {
    const vms = await operator.named('VirtualMachine');
    await reconfigureHa(
      {
        enabled: true,
        vmMonitoring: 'vmMonitoringOnly',
        hostMonitoring: 'enabled',
        admissionControlPolicy: {
          $type: 'ClusterFailoverLevelAdmissionControlPolicy',
          failoverLevel: 1,
        },
        admissionControlEnabled: true,
        defaultVmSettings: { restartPriority: 'high', isolationResponse: 'powerOff' },
      },
      {
        dasVmConfigSpec: [
          {
            operation: 'add',
            info: { key: vms.get('DC0_C0_RP0_VM0')!, dasSettings: { restartPriority: 'highest' } },
          },
        ],
      },
    );

    const facts = await until('the cluster shows vSphere HA on', async () => {
      const current = (await cluster()).facts;
      return current['ha.vsphere.enabled'] === true ? current : undefined;
    });
    assert.equal(facts['ha.vsphere.hostMonitoring'], 'enabled');
    assert.equal(facts['ha.vsphere.vmMonitoring'], 'vmMonitoringOnly');
    assert.equal(facts['ha.vsphere.admissionControl'], true);
    assert.equal(facts['ha.vsphere.admissionControlPolicy'], 'hostFailures');
    assert.equal(facts['ha.vsphere.hostFailuresToTolerate'], 1);
    assert.equal(facts['ha.vsphere.restartPriority'], 'high');
    assert.equal(facts['ha.vsphere.isolationResponse'], 'powerOff');

    const states = await until('every host of the cluster reports its HA state', async () => {
      const found = (await clusterHosts()).map((h) => h.facts['ha.vsphere.hostState']);
      return found.every((state) => typeof state === 'string') ? found : undefined;
    });
    assert.deepEqual(states.toSorted(), ['connectedToMaster', 'connectedToMaster', 'master']);
    const vm0 = await until('the VM’s own restart priority', async () => {
      const found = await vm('DC0_C0_RP0_VM0');
      return found.facts['ha.vsphere.restartPriority'] ? found : undefined;
    });
    assert.equal(vm0.facts['ha.vsphere.restartPriority'], 'highest');
    assert.equal((await vm('DC0_C0_RP0_VM1')).facts['ha.vsphere.restartPriority'], undefined);

    const events = await until('an event per host', async () => {
      const found = await hostStateEvents();
      return found.length === 3 ? found : undefined;
    });
    assert.deepEqual(
      events.map((e) => [e.data.name, e.data.previous, e.data.state]).sort(),
      (await clusterHosts()).map((h) => [h.name, null, h.facts['ha.vsphere.hostState']]),
    );
    const clusterId = (await cluster()).id;
    for (const event of events) assert.equal(event.data.clusterId, clusterId);

    const status = await haStatus();
    const [shown] = status.vsphereClusters;
    assert.equal(shown.enabled, true);
    assert.deepEqual(shown.admissionControl, {
      enabled: true,
      policy: 'hostFailures',
      hostFailuresToTolerate: 1,
      cpuFailoverPercent: null,
      memoryFailoverPercent: null,
      failoverHosts: [],
    });
    assert.deepEqual(shown.hosts.map((h: ApiAnswer) => h.state).sort(), [
      'connectedToMaster',
      'connectedToMaster',
      'master',
    ]);
    for (const host of status.hosts.filter((h: ApiAnswer) => h.name.startsWith('DC0_C0_'))) {
      assert.equal(host.state, 'vsphere-ha', host.name);
      assert.equal(host.fencing, 'vsphere-ha', "vSphere HA's own fencing, not 'none'");
      assert.match(host.reason, /protected by vSphere HA \(cluster DC0_C0/);
    }
    const standalone = status.hosts.find((h: ApiAnswer) => h.name === 'DC0_H0');
    assert.equal(standalone.state, 'unprotected');
    assert.match(standalone.reason, /standalone vSphere host/);
    // The cluster's two VMs are vSphere HA's; the standalone host's are nobody's.
    assert.equal(status.vms.vsphereHa, 2);
    assert.equal(status.vms.protected, 0);
    const vmView = ok(await call('GET', '/ha/vms/DC0_C0_RP0_VM0'));
    assert.equal(vmView.state, 'vsphere-ha');
    assert.equal(vmView.priority, 'highest');
    assert.equal(ok(await call('GET', '/ha/vms/DC0_C0_RP0_VM1')).priority, 'high');

    const cli = await zenith(['ha', 'status']);
    assert.equal(cli.code, 0, cli.stderr);
    assert.match(cli.stdout, /2 protected by vSphere HA/);
    const line = cli.stdout.split('\n').find((l) => /^\W*DC0_C0\s/.test(l));
    assert.ok(line, cli.stdout);
    assert.match(line, /\bon\b/);
    assert.match(line, /tolerate 1 host failure\(s\)/);
    assert.match(line, /DC0_C0_H\d: master/);
  });

  test('the web console’s HA page shows the cluster’s vSphere HA read-only: on, its admission control, each host’s state', async () => {
    browser = await launchBrowser();
    const watched = await browser.newPage();
    const { page } = watched;
    const seen = { timeout: 30_000 };
    await page.setViewportSize({ width: 1280, height: 900 });
    await page.goto(s.baseUrl);
    await page.getByLabel('User name').fill('admin');
    await page.getByLabel(/^Password/).fill(adminPassword);
    await page.getByRole('button', { name: 'Log in' }).click();
    await watched.explain('vsphere-ha-page', async () => {
      await page.getByRole('link', { name: 'High availability' }).click();
      const section = page.getByRole('region', { name: 'vSphere clusters' });
      const row = section.getByRole('row', { name: /^DC0_C0\b/ });
      await row.getByTestId('vsphere-ha-enabled').getByText('on', { exact: true }).waitFor(seen);
      await row.getByText('tolerate 1 host failure(s)').waitFor(seen);
      await row.getByText('vmMonitoringOnly').waitFor(seen);
      const master = (await clusterHosts()).find(
        (h) => h.facts['ha.vsphere.hostState'] === 'master',
      );
      await row.getByText(`${master.name}: master`).waitFor(seen);
      assert.equal(await row.getByText(/: connectedToMaster$/).count(), 2);
      // Read-only: nothing in the section acts.
      assert.equal(await section.getByRole('button').count(), 0);
      const hostRow = page
        .getByRole('table', { name: 'Hosts HA watches' })
        .getByRole('row', { name: new RegExp(`^${master.name}\\b`) });
      await hostRow.getByText('vsphere-ha', { exact: true }).waitFor(seen);
      await page.getByTestId('ha-count-vsphere-ha').getByText('2').waitFor(seen);
      const overflow = await page.evaluate(() => {
        const doc = (globalThis as unknown as { document: { documentElement: ApiAnswer } }).document
          .documentElement;
        return doc.scrollWidth - doc.clientWidth;
      });
      assert.ok(overflow <= 0, `the HA page scrolls sideways by ${overflow}px`);
    });
    assert.deepEqual(await seriousViolations(page), []);
    assert.deepEqual(watched.errors(), []);
    await page.close();
  });

  test('Zenith’s own HA leaves the vSphere hosts to vSphere: no what-if restarts, no failover, no admission refusal', async () => {
    const [host] = await clusterHosts();
    const report = ok(await call('POST', '/ha/what-if', { hosts: [host.name] }));
    assert.deepEqual(report.restarts, []);
    assert.equal(report.unrecoverable, 0);
    assert.equal(report.failedHosts[0].hostFailuresToTolerate, 0);
    // A VM created there under "tolerate 1" is not refused by Zenith's rules (vSphere's apply).
    const created = ok(
      await call('POST', '/vms', {
        name: 'new-vm',
        hostId: host.id,
        cpus: 1,
        memoryBytes: 64 * 1024 ** 2,
        diskBytes: 0,
      }),
      202,
    );
    assert.equal((await s.waitForTask(token, created.id)).state, 'succeeded');
    assert.deepEqual(ok(await call('GET', '/ha/failovers')).items, []);
  });

  test('turned off: the cluster says so, the hosts report no state, and each host’s change is an event', async () => {
    await reconfigureHa({ enabled: false });
    await until('the cluster shows vSphere HA off', async () =>
      (await cluster()).facts['ha.vsphere.enabled'] === false ? true : undefined,
    );
    await until('no host reports an HA state', async () =>
      (await clusterHosts()).every((h) => h.facts['ha.vsphere.hostState'] === undefined)
        ? true
        : undefined,
    );
    const events = await until('an event per host', async () => {
      const found = await hostStateEvents();
      return found.length === 6 ? found : undefined;
    });
    for (const event of events.slice(3)) assert.equal(event.data.state, null);
    const status = await haStatus();
    assert.equal(status.vsphereClusters[0].enabled, false);
    assert.equal(status.vms.vsphereHa, 0);
    const cli = await zenith(['ha', 'status']);
    assert.equal(cli.code, 0, cli.stderr);
    const line = cli.stdout.split('\n').find((l) => /^\W*DC0_C0\s/.test(l));
    assert.ok(line, cli.stdout);
    assert.match(line, /\boff\b/);
  });
});
