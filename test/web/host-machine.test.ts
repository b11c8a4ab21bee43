/**
 * The host page's Machine section in Chromium, against a real Zenith with a BMC connection to the
 * Redfish service simulator (two machines, polled every second) and a local QEMU host sharing a
 * NIC MAC with the first machine, so that one machine runs a hypervisor host and the other is
 * bare metal: the hardware and sensors shown are the simulator's, the sensor history (sampled every
 * 300 ms) is charted with the watts the simulator reported and the energy they make, an operator
 * powers a machine off through the confirmation and the page follows it, turns the identify light
 * on and off (the badge follows the simulator's light), inserts and ejects a virtual CD image, an
 * admin unlinks and links machines by hand, a viewer is offered no action, and the pages and
 * dialogs pass the accessibility audit.
 */
import assert from 'node:assert/strict';
import { networkInterfaces } from 'node:os';
import { after, afterEach, before, describe, test } from 'node:test';
import { seriousViolations } from '../../src/testing/accessibility.js';
import { launchBrowser, type TestBrowser, type WatchedPage } from '../../src/testing/browser.js';
import {
  startTestServer,
  type ApiAnswer,
  type TestServer,
} from '../../src/testing/control-plane.js';
import {
  startRedfishSimulator,
  type RedfishSimulator,
} from '../../src/testing/redfish-simulator.js';
import { until } from '../../src/testing/wait.js';

const seen = { timeout: 30_000 };
const sampleEveryMs = 300;
/** What the bare-metal machine draws until it is powered off: every sample of it reads this. */
const bareWatts = 312;

/** A MAC address of this machine's network namespace, as its QEMU host reports it. */
function ownMac(): string {
  for (const addresses of Object.values(networkInterfaces()))
    for (const address of addresses ?? [])
      if (!address.internal && address.mac !== '00:00:00:00:00:00') return address.mac;
  throw new Error('this machine has no network interface with a MAC address');
}

describe('the host page shows and drives the physical machine (Redfish simulator, Chromium)', () => {
  let sim: RedfishSimulator;
  let s: TestServer;
  let token: string;
  let browser: TestBrowser;
  /** System1, linked to the QEMU host hv-1 by a shared NIC MAC. */
  let linked: ApiAnswer;
  /** System2, bare metal. */
  let bare: ApiAnswer;
  let hypervisor: ApiAnswer;

  before(async () => {
    sim = await startRedfishSimulator({ machines: 2 });
    sim.machine('System1').macs = [ownMac(), '52:54:00:5b:00:00'];
    sim.machine('System2').sensors.watts = bareWatts;
    s = await startTestServer({ machines: { sensorSampleEveryMs: sampleEveryMs } });
    token = await s.login();
    const request = async (method: string, path: string, body: unknown, status: number) => {
      const answer = await s.request(method, path, { token, body });
      assert.equal(answer.status, status, `${path}: ${JSON.stringify(answer.body)}`);
      return answer.body;
    };
    await request(
      'POST',
      '/connections',
      { name: 'local', type: 'qemu', settings: { accelerator: 'tcg', hostName: 'hv-1' } },
      201,
    );
    const bmc = await request(
      'POST',
      '/connections',
      {
        name: 'bmc-rack1',
        type: 'redfish',
        settings: {
          url: sim.url,
          username: sim.username,
          thumbprint: sim.thumbprint,
          pollSeconds: 1,
        },
        secret: sim.password,
      },
      201,
    );
    assert.equal(bmc.state, 'connected', bmc.lastError);
    for (const [name, role] of [
      ['olga', 'operator'],
      ['vera', 'viewer'],
    ])
      await request('POST', '/users', { name, role, password: `${name}-password-123` }, 201);
    const hosts = (await s.request('GET', '/hosts?limit=100', { token })).body.items;
    linked = hosts.find((h: ApiAnswer) => h.externalId === '/redfish/v1/Systems/System1');
    bare = hosts.find((h: ApiAnswer) => h.externalId === '/redfish/v1/Systems/System2');
    hypervisor = hosts.find((h: ApiAnswer) => h.name === 'hv-1');
    assert.ok(linked && bare && hypervisor, JSON.stringify(hosts.map((h: ApiAnswer) => h.name)));
    const view = (await s.request('GET', `/hosts/${linked.id}/machine`, { token })).body;
    assert.equal(view.hostId, hypervisor.id, 'System1 runs hv-1');
    browser = await launchBrowser();
    // The first page of a fresh browser compiles the whole bundle: on a loaded machine that alone
    // took most of a test's 30 s once. Loaded here, the tests time what they are about.
    const warm = await browser.newPage();
    await warm.page.goto(s.baseUrl);
    await warm.page.getByLabel('User name').waitFor({ timeout: 90_000 });
    await warm.page.close();
  });
  after(async () => {
    await browser?.close();
    await s?.close();
    await sim?.close();
  });

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
    await page.getByLabel('User name').fill(username);
    await page.getByLabel(/^Password/).fill(password);
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.getByRole('heading', { name: 'Virtual machines' }).waitFor(seen);
    return watched;
  };
  const openHost = async (watched: WatchedPage, host: ApiAnswer) => {
    const { page } = watched;
    await page.goto(`${s.baseUrl}/#/hosts/${host.id}`);
    await page.getByRole('heading', { name: host.name, exact: true }).waitFor(seen);
    const section = page.getByRole('region', { name: 'Machine' });
    await section.getByRole('table', { name: 'Hardware' }).waitFor(seen);
    return section;
  };
  const hardwareRow = (section: ReturnType<WatchedPage['page']['locator']>, label: string) =>
    section.getByRole('table', { name: 'Hardware' }).getByRole('row', { name: new RegExp(label) });

  test("a machine's page shows the simulator's hardware and sensors and the hypervisor host on it; that host's page links back", async () => {
    const machine = sim.machine('System1');
    machine.sensors.watts = 237;
    const watched = await logIn();
    const { page } = watched;
    const section = await openHost(watched, linked);
    await hardwareRow(section, 'Serial number').getByText(machine.serial).waitFor(seen);
    await hardwareRow(section, 'SMBIOS UUID').getByText(machine.uuid.toLowerCase()).waitFor(seen);
    await hardwareRow(section, 'NIC MACs').getByText(machine.macs[0]!.toLowerCase()).waitFor(seen);
    await section.getByTestId('machine-power').getByText('power on').waitFor(seen);
    await section.getByText('BMC: redfish at').waitFor(seen);
    const sensors = section.getByRole('table', { name: 'Sensor readings' });
    await sensors
      .getByRole('row', { name: /Power draw/ })
      .getByText('237 W')
      .waitFor(seen);
    await sensors
      .getByRole('row', { name: /Temperature/ })
      .first()
      .waitFor(seen);
    await sensors.getByRole('row', { name: /Fan/ }).first().waitFor(seen);
    // The sensors are read again on demand: a new reading shows without a reload.
    machine.sensors.watts = 251;
    await section.getByRole('button', { name: 'Refresh sensors' }).click();
    await sensors.getByText('251 W').waitFor(seen);
    const link = section.getByTestId('machine-link');
    await link.getByText(/Runs hypervisor host/).waitFor(seen);
    await link.getByText(/a NIC MAC address they share, found by Zenith/).waitFor(seen);
    await watched.screenshot('host-machine-linked');
    await link.getByRole('link', { name: 'hv-1' }).click();
    const onHypervisor = page.getByRole('region', { name: 'Machine' });
    await page.getByRole('heading', { name: 'hv-1', exact: true }).waitFor(seen);
    await onHypervisor
      .getByTestId('machine-link')
      .getByText(/Runs on machine/)
      .waitFor(seen);
    await hardwareRow(onHypervisor, 'Serial number').getByText(machine.serial).waitFor(seen);
    await onHypervisor.getByRole('link', { name: linked.name }).click();
    await page.getByRole('heading', { name: linked.name, exact: true }).waitFor(seen);
    assert.deepEqual(watched.errors(), []);
  });

  test("a machine's page charts the sensor history the simulator reported, with the energy it makes; a period before any sample says so", async () => {
    const machine = sim.machine('System2');
    await until('a few samples of the bare-metal machine', async () =>
      (await s.plane.sensorHistory.samples(bare.id, 0, Date.now() + 60_000)).length >= 4
        ? true
        : undefined,
    );
    const watched = await logIn();
    const { page } = watched;
    const section = await openHost(watched, bare);
    const history = section.getByRole('region', { name: 'Sensor history' });
    // Each chart says in words what it draws: every sample read the simulator's figures.
    const power = history.getByRole('figure', { name: 'Power draw chart' });
    await power
      .getByText(`Latest ${bareWatts} W, lowest ${bareWatts} W, highest ${bareWatts} W;`)
      .waitFor(seen);
    const { temperatureC, fanRpm } = machine.sensors;
    await history
      .getByRole('figure', { name: 'Highest temperature chart' })
      .getByText(`Latest ${temperatureC} °C, lowest ${temperatureC} °C`)
      .waitFor(seen);
    await history
      .getByRole('figure', { name: 'Fan speed chart' })
      .getByText(`Latest ${fanRpm} RPM, lowest ${fanRpm} RPM`)
      .waitFor(seen);
    assert.ok((await power.locator('.recharts-line-dots circle').count()) > 0, 'watts drawn');
    // The energy beside them: the average is the simulator's watts, and kWh is that over the
    // covered time (shown to the second, kWh to three figures).
    const energy = history.getByRole('region', { name: 'Energy' });
    await energy.getByText(`on average ${bareWatts} W`).waitFor(seen);
    const kWh = Number((await energy.getByTestId('machine-energy-kwh').innerText()).split(' ')[0]);
    const covered = (await energy.getByTestId('machine-energy-covered').innerText()).match(
      /Samples cover (?:(\d+) min ?)?(?:(\d+) s)? of it/,
    );
    assert.ok(covered, 'the covered time is shown');
    const coveredSeconds = Number(covered[1] ?? 0) * 60 + Number(covered[2] ?? 0);
    assert.ok(coveredSeconds >= 1, `covered ${coveredSeconds} s`);
    const wattSeconds = kWh * 3_600_000;
    assert.ok(
      Math.abs(wattSeconds / bareWatts - coveredSeconds) <= 0.6 + 0.01 * coveredSeconds,
      `${kWh} kWh at ${bareWatts} W over ${coveredSeconds} s`,
    );
    await watched.screenshot('host-machine-sensor-history');
    // An hour that ended before Zenith first sampled the machine (this tab's clock set back two
    // hours): a plain line, no error.
    await page.addInitScript(() => {
      const realNow = Date.now.bind(Date);
      Date.now = () => realNow() - 2 * 3_600_000;
    });
    await page.reload();
    await history.getByText('No samples yet in the last hour.').waitFor(seen);
    assert.equal(await history.getByRole('alert').count(), 0);
    assert.deepEqual(watched.errors(), []);
  });

  test('an operator powers a bare-metal machine off after a confirmation naming it; the simulator and the page show it off', async () => {
    const machine = sim.machine('System2');
    assert.equal(machine.power, 'On');
    const watched = await logIn('olga', 'olga-password-123');
    const { page } = watched;
    // The list of hosts outside datacenters marks it bare metal, with its power.
    const listed = page
      .getByRole('navigation', { name: 'Hosts outside datacenters' })
      .locator(`li[data-host-name="${bare.name}"]`);
    await listed.getByText('bare-metal', { exact: true }).waitFor(seen);
    await listed.getByText('power on', { exact: true }).waitFor(seen);
    await listed.getByRole('link', { name: bare.name }).click();
    const section = page.getByRole('region', { name: 'Machine' });
    await section
      .getByTestId('machine-link')
      .getByText(/Bare metal/)
      .waitFor(seen);
    await page
      .getByRole('heading', { name: bare.name, exact: true })
      .locator('..')
      .getByText('bare-metal', { exact: true })
      .waitFor(seen);
    const actions = section.getByRole('group', { name: `Machine actions on ${bare.name}` });
    await actions.getByRole('button', { name: 'Power off…' }).click();
    const dialog = page.getByRole('dialog', { name: `Power off ${bare.name}?` });
    await dialog.getByText(/loses power at once/).waitFor(seen);
    await watched.screenshot('host-machine-confirm');
    // The dialog asks first: nothing is done before the confirmation.
    assert.equal(machine.power, 'On');
    await dialog.getByRole('button', { name: 'Power off', exact: true }).click();
    await section.getByText('Power off done.').waitFor(seen);
    assert.equal(machine.power, 'Off', "the simulator's machine is off");
    await section.getByTestId('machine-power').getByText('power off').waitFor(seen);
    // The list follows the BMC's poll too.
    await page.goto(`${s.baseUrl}/#/vms`);
    await listed.getByText('power off', { exact: true }).waitFor(seen);
    assert.deepEqual(watched.errors(), []);
  });

  test("an operator turns the identify light on and off: the badge and the one button offered follow the simulator's light", async () => {
    const light = sim.machine('System1');
    assert.equal(light.indicatorLed, 'Off');
    const watched = await logIn('olga', 'olga-password-123');
    const section = await openHost(watched, linked);
    const badge = section.getByTestId('machine-identify');
    const actions = section.getByRole('group', { name: `Machine actions on ${linked.name}` });
    await badge.getByText('identify off').waitFor(seen);
    await actions.getByRole('button', { name: 'Identify light on' }).waitFor(seen);
    assert.equal(await actions.getByRole('button', { name: 'Identify light off' }).count(), 0);
    await actions.getByRole('button', { name: 'Identify light on' }).click();
    await section.getByText('Identify light on done.').waitFor(seen);
    assert.equal(light.indicatorLed, 'Lit', "the simulator's light is lit");
    await badge.getByText('identify on').waitFor(seen);
    await actions.getByRole('button', { name: 'Identify light off' }).waitFor(seen);
    assert.equal(await actions.getByRole('button', { name: 'Identify light on' }).count(), 0);
    await watched.screenshot('host-machine-identify-on');
    // Someone at the machine makes it blink: the poll brings it to the page.
    light.indicatorLed = 'Blinking';
    await badge.getByText('identify blinking').waitFor(seen);
    await actions.getByRole('button', { name: 'Identify light off' }).click();
    await section.getByText('Identify light off done.').waitFor(seen);
    assert.equal(light.indicatorLed, 'Off');
    await badge.getByText('identify off').waitFor(seen);
    await actions.getByRole('button', { name: 'Identify light on' }).waitFor(seen);
    assert.deepEqual(watched.errors(), []);
  });

  test('an operator inserts an image by URL (a wrong one is explained first) and ejects it after a confirmation; the page and the simulator follow; linking is not offered', async () => {
    const cd = sim.machine('System2');
    const image = 'https://images.example/debian-12-netinst.iso';
    const watched = await logIn('olga', 'olga-password-123');
    const { page } = watched;
    const section = await openHost(watched, bare);
    const media = section.getByTestId('machine-media');
    await media.getByText('Virtual CD: empty').waitFor(seen);
    await section.getByRole('button', { name: 'Insert image…' }).click();
    const dialog = page.getByRole('dialog', {
      name: `Insert an image into the virtual CD of ${bare.name}`,
    });
    const url = dialog.getByRole('textbox', { name: 'Image URL' });
    await url.fill('ftp://images.example/debian.iso');
    await dialog.getByRole('button', { name: 'Insert', exact: true }).click();
    await dialog
      .getByText('The URL must start with http://, https://, nfs:// or cifs://', { exact: false })
      .waitFor(seen);
    assert.equal(cd.media.inserted, false, 'nothing was asked of the BMC');
    await url.fill(image);
    await dialog.getByRole('button', { name: 'Insert', exact: true }).click();
    await section.getByText('Insert image done.').waitFor(seen);
    // The dialog closes when its task has been accepted; the task's end may be shown first.
    await dialog.waitFor({ state: 'detached', timeout: seen.timeout });
    assert.deepEqual(cd.media, { inserted: true, image }, "the simulator's virtual CD holds it");
    await media.getByText(image).waitFor(seen);
    await watched.screenshot('host-machine-media-inserted');
    assert.equal(await section.getByRole('button', { name: 'Insert image…' }).count(), 0);
    // An operator (host.power, no host.link) is offered no linking.
    assert.equal(
      await section.getByRole('button', { name: 'Link to hypervisor host…' }).count(),
      0,
    );
    await section.getByRole('button', { name: 'Eject…' }).click();
    const confirm = page.getByRole('dialog', { name: `Eject the virtual CD of ${bare.name}?` });
    await confirm.getByText(`The image ${image} is disconnected`).waitFor(seen);
    assert.equal(cd.media.inserted, true, 'nothing is done before the confirmation');
    await confirm.getByRole('button', { name: 'Eject', exact: true }).click();
    await section.getByText('Eject done.').waitFor(seen);
    assert.deepEqual(cd.media, { inserted: false });
    await media.getByText('Virtual CD: empty').waitFor(seen);
    assert.deepEqual(watched.errors(), []);
  });

  test('an admin unlinks a machine from its hypervisor host, links the bare-metal one by hand (a conflict shown in the dialog), and unlinks it; the page and the API agree', async () => {
    const watched = await logIn();
    const { page } = watched;
    // Provoked here: the conflicting link, and hv-1's page asking for its machine once it has none.
    watched.allowHttpStatus(409);
    const viewOf = async (id: string) =>
      (await s.request('GET', `/hosts/${id}/machine`, { token })).body;
    const api = async (method: string, path: string, body?: unknown) => {
      const answer = await s.request(method, path, { token, ...(body ? { body } : {}) });
      assert.equal(answer.status, 200, `${method} ${path}: ${JSON.stringify(answer.body)}`);
    };
    // From the hypervisor host's page: the confirmation says the unlink is remembered.
    await page.goto(`${s.baseUrl}/#/hosts/${hypervisor.id}`);
    const onHypervisor = page.getByRole('region', { name: 'Machine' });
    await onHypervisor
      .getByTestId('machine-link')
      .getByText(/Runs on machine/)
      .waitFor(seen);
    await onHypervisor.getByRole('button', { name: 'Unlink…' }).click();
    const unlinkDialog = page.getByRole('dialog', { name: `Unlink ${linked.name} from hv-1?` });
    await unlinkDialog
      .getByText(/will not link them again by itself, even though they share a NIC MAC address/)
      .waitFor(seen);
    assert.equal(
      (await viewOf(linked.id)).hostId,
      hypervisor.id,
      'nothing before the confirmation',
    );
    await unlinkDialog.getByRole('button', { name: 'Unlink', exact: true }).click();
    // hv-1 has no machine now: its page says nothing of one.
    await page.getByText(/Runs on machine/).waitFor({ state: 'detached', ...seen });
    const unlinked = await viewOf(linked.id);
    assert.deepEqual([unlinked.hostId, unlinked.link.how], [null, 'manual']);

    // The bare-metal machine's page: hv-1 is offered, machines are not.
    const section = await openHost(watched, bare);
    const open = async () => {
      await section.getByRole('button', { name: 'Link to hypervisor host…' }).click();
      const dialog = page.getByRole('dialog', { name: `Link ${bare.name} to a hypervisor host` });
      await dialog.getByRole('combobox', { name: 'Hypervisor host' }).waitFor(seen);
      return dialog;
    };
    let dialog = await open();
    const offered = await dialog.getByRole('option').allInnerTexts();
    assert.deepEqual(offered, ['Choose a host', 'hv-1']);
    await dialog.getByRole('combobox', { name: 'Hypervisor host' }).selectOption({ label: 'hv-1' });
    // Meanwhile someone links the other machine to hv-1: the API's refusal stays in the dialog.
    await api('PUT', `/hosts/${linked.id}/machine-link`, { hostId: hypervisor.id });
    await dialog.getByRole('button', { name: 'Link', exact: true }).click();
    await dialog
      .getByRole('alert')
      .getByText(/ZEN_CONFLICT: hv-1 is linked to another machine already/)
      .waitFor(seen);
    assert.equal((await viewOf(bare.id)).hostId, null);
    await dialog.getByRole('button', { name: 'Cancel' }).click();
    await api('DELETE', `/hosts/${linked.id}/machine-link`);

    dialog = await open();
    await dialog.getByRole('combobox', { name: 'Hypervisor host' }).selectOption({ label: 'hv-1' });
    await dialog.getByRole('button', { name: 'Link', exact: true }).click();
    const link = section.getByTestId('machine-link');
    await link.getByText(/Runs hypervisor host/).waitFor(seen);
    await link.getByText(/linked by hand, by /).waitFor(seen);
    await link.getByRole('link', { name: 'hv-1' }).waitFor(seen);
    const linkedByHand = await viewOf(bare.id);
    assert.deepEqual([linkedByHand.hostId, linkedByHand.link.how], [hypervisor.id, 'manual']);
    await page
      .getByRole('heading', { name: bare.name, exact: true })
      .locator('..')
      .getByText('bare-metal', { exact: true })
      .waitFor({ state: 'detached', ...seen });
    await watched.screenshot('host-machine-linked-by-hand');

    // And unlinked again from the machine's page.
    await section.getByRole('button', { name: 'Unlink…' }).click();
    const again = page.getByRole('dialog', { name: `Unlink ${bare.name} from hv-1?` });
    await again.getByText(/will not link them again by itself\. Link them again/).waitFor(seen);
    await again.getByRole('button', { name: 'Unlink', exact: true }).click();
    await link.getByText(/Bare metal/).waitFor(seen);
    assert.equal((await viewOf(bare.id)).hostId, null);
    assert.deepEqual(watched.errors(), []);
    // As the other tests found it: System1 runs hv-1.
    await api('PUT', `/hosts/${linked.id}/machine-link`, { hostId: hypervisor.id });
  });

  test('a viewer sees the machine and its sensors but is offered no action', async () => {
    const watched = await logIn('vera', 'vera-password-123');
    const { page } = watched;
    // The page asks what the identity may do on the host; the buttons are decided by the answer.
    const asked = page.waitForResponse(
      (response) =>
        response.url().includes('/auth/me/permissions?objects=') &&
        response.url().includes(encodeURIComponent(bare.id)),
    );
    const section = await openHost(watched, bare);
    await section.getByRole('table', { name: 'Sensor readings' }).waitFor(seen);
    await asked;
    await page.evaluate(
      () => new Promise((done) => (globalThis as any).requestAnimationFrame(() => done(null))),
    );
    // The identify light and the virtual CD are shown; nothing is offered to change them.
    await section.getByTestId('machine-identify').getByText('identify off').waitFor(seen);
    await section.getByTestId('machine-media').getByText('Virtual CD: empty').waitFor(seen);
    for (const name of [
      'Power on',
      'Shut down…',
      'Power off…',
      'Reset…',
      'Fence…',
      'Identify light on',
      'Identify light off',
      'Insert image…',
      'Eject…',
      'Link to hypervisor host…',
      'Unlink…',
    ])
      assert.equal(await page.getByRole('button', { name }).count(), 0, `${name} is not offered`);
    assert.equal(await page.getByRole('group', { name: /^Machine actions on/ }).count(), 0);
    assert.deepEqual(watched.errors(), []);
  });

  test('the machine page, its confirmation dialog and the host list pass the accessibility audit', async () => {
    const watched = await logIn();
    const { page } = watched;
    const found: string[] = [];
    const audit = async (name: string) => {
      for (const v of await seriousViolations(page))
        found.push(`${name}: ${v.impact} ${v.id} (${v.help}) at ${v.targets.join(' | ')}`);
    };
    await page
      .getByRole('navigation', { name: 'Hosts outside datacenters' })
      .getByRole('link', { name: bare.name })
      .waitFor(seen);
    await audit('inventory');
    const section = await openHost(watched, linked);
    await section.getByRole('table', { name: 'Sensor readings' }).waitFor(seen);
    await section.getByRole('figure', { name: 'Power draw chart' }).waitFor(seen);
    await audit('machine page');
    await section.getByRole('button', { name: 'Fence…' }).click();
    await page.getByRole('dialog', { name: `Fence ${linked.name}?` }).waitFor(seen);
    // Audited once it has faded in (half-transparent, its text would not contrast).
    await page.waitForFunction(
      () =>
        (globalThis as any).getComputedStyle(
          (globalThis as any).document.querySelector('[role="dialog"]'),
        ).opacity === '1',
    );
    await audit('fence confirmation');
    await page.getByRole('button', { name: 'Cancel', exact: true }).click();
    const faded = () =>
      page.waitForFunction(
        () =>
          (globalThis as any).getComputedStyle(
            (globalThis as any).document.querySelector('[role="dialog"]'),
          ).opacity === '1',
      );
    // The image dialog with a refused URL explained, and the unlink confirmation.
    await section.getByRole('button', { name: 'Insert image…' }).click();
    const insert = page.getByRole('dialog', { name: /^Insert an image/ });
    await insert.getByRole('textbox', { name: 'Image URL' }).fill('images.example/x.iso');
    await insert.getByRole('button', { name: 'Insert', exact: true }).click();
    await insert.getByText(/The URL must start with/).waitFor(seen);
    await faded();
    await audit('insert image dialog');
    await insert.getByRole('button', { name: 'Cancel', exact: true }).click();
    await insert.waitFor({ state: 'detached', ...seen });
    await section.getByRole('button', { name: 'Unlink…' }).click();
    await page.getByRole('dialog', { name: /^Unlink / }).waitFor(seen);
    await faded();
    await audit('unlink confirmation');
    await page.getByRole('button', { name: 'Cancel', exact: true }).click();
    const overflow = await page.evaluate(() => {
      const doc = (globalThis as any).document.documentElement;
      return doc.scrollWidth - doc.clientWidth;
    });
    assert.ok(overflow <= 0, `the machine page scrolls sideways by ${overflow}px`);
    assert.deepEqual(found, []);
    assert.deepEqual(watched.errors(), []);
  });
});
