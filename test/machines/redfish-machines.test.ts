/**
 * Physical machines over Redfish, end to end through the API: a BMC (Zenith's Redfish service
 * simulator, a simulator of our own checked against python3-sushy and redfishtool in
 * test/protocols/redfish) added as a connection; its systems become hosts with hardware facts; the
 * one whose NIC MAC this machine's QEMU host also reports is linked to that host by itself, the
 * other is bare metal and placement never puts a VM there; every power action ends with the state
 * read back; boot once, virtual media, identify light, sensors; fencing confirmed, and refused
 * when the BMC lies.
 */
import assert from 'node:assert/strict';
import { networkInterfaces } from 'node:os';
import { after, before, describe, test } from 'node:test';
import {
  ok,
  startTestServer,
  type ApiAnswer,
  type TestServer,
} from '../../src/testing/control-plane.js';
import {
  startRedfishSimulator,
  type RedfishSimulator,
} from '../../src/testing/redfish-simulator.js';
import { until } from '../../src/testing/wait.js';

/** A MAC address of this machine's network namespace, as its QEMU host reports it. */
function ownMac(): string {
  for (const addresses of Object.values(networkInterfaces()))
    for (const address of addresses ?? [])
      if (!address.internal && address.mac !== '00:00:00:00:00:00') return address.mac;
  throw new Error('this machine has no network interface with a MAC address');
}

describe('physical machines over Redfish', () => {
  let sim: RedfishSimulator;
  let s: TestServer;
  let admin: string;
  let machineA: ApiAnswer;
  let machineB: ApiAnswer;
  let qemuHost: ApiAnswer;

  before(async () => {
    sim = await startRedfishSimulator({ machines: 2 });
    // System1 is the machine this test runs on: it has one of its NICs.
    sim.machine('System1').macs = [ownMac(), '52:54:00:5b:00:00'];
    s = await startTestServer();
    admin = await s.login();
    ok(
      await s.request('POST', '/connections', {
        token: admin,
        body: { name: 'local', type: 'qemu', settings: { accelerator: 'tcg', hostName: 'hv-1' } },
      }),
      201,
    );
    const connection = ok(
      await s.request('POST', '/connections', {
        token: admin,
        body: {
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
      }),
      201,
    );
    assert.equal(connection.state, 'connected', connection.lastError);
    assert.ok(connection.capabilities.includes('machine.power'));
    assert.ok(connection.capabilities.includes('machine.media'));
    assert.equal(
      JSON.stringify(connection).includes(sim.password),
      false,
      'the password is sealed',
    );
    const hosts = ok(await s.request('GET', '/hosts?limit=100', { token: admin })).items;
    machineA = hosts.find((h: ApiAnswer) => h.externalId === '/redfish/v1/Systems/System1');
    machineB = hosts.find((h: ApiAnswer) => h.externalId === '/redfish/v1/Systems/System2');
    qemuHost = hosts.find((h: ApiAnswer) => h.name === 'hv-1');
    assert.ok(
      machineA && machineB && qemuHost,
      JSON.stringify(hosts.map((h: ApiAnswer) => h.name)),
    );
  });
  after(async () => {
    await s?.close();
    await sim?.close();
  });

  test('each system is a host with its hardware: vendor, serial, SMBIOS UUID, CPUs, memory, NICs, disks, firmware, power, health', () => {
    const facts = machineA.facts;
    assert.equal(facts['bmc.protocol'], 'redfish');
    assert.equal(facts['hardware.serial'], sim.machine('System1').serial);
    assert.equal(facts['hardware.smbiosUuid'], sim.machine('System1').uuid.toLowerCase());
    assert.equal(facts['hardware.vendor'], 'Zenith Simulated Hardware');
    assert.equal(facts['hardware.cpuSockets'], 2);
    assert.ok(facts['hardware.cpuCores'] > 0);
    assert.ok(facts['hardware.memoryBytes'] > 0);
    assert.ok(facts['hardware.memoryModules'].length > 0);
    assert.deepEqual(
      facts['hardware.nicMacs'],
      sim.machine('System1').macs.map((m) => m.toLowerCase()),
    );
    assert.ok(facts['hardware.disks'].length > 0);
    assert.ok(facts['hardware.bmcFirmware']);
    assert.ok(facts['hardware.biosVersion']);
    assert.equal(facts['hardware.power'], 'on');
    assert.equal(facts['hardware.health'], 'ok');
    // The identify light and the virtual CD, as the simulator starts them: off, empty.
    assert.equal(facts['bmc.identify'], 'off');
    assert.equal(facts['bmc.identifySource'], 'bmc');
    assert.equal(facts['bmc.media.inserted'], false);
    assert.equal(facts['bmc.media.image'], null);
  });

  test('the machine sharing a NIC with the QEMU host is linked to it by itself; one host object carries both views', async () => {
    const view = ok(await s.request('GET', `/hosts/${qemuHost.id}/machine`, { token: admin }));
    assert.equal(view.machine.id, machineA.id);
    assert.equal(view.hostId, qemuHost.id);
    assert.equal(view.link.how, 'mac');
    assert.equal(view.link.linkedBy, 'system');
    const host = ok(await s.request('GET', `/hosts/${qemuHost.id}`, { token: admin }));
    assert.equal(host.computed['machine.id'], machineA.id);
    assert.equal(host.computed['machine.hardware.serial'], sim.machine('System1').serial);
    assert.equal(host.computed['machine.hardware.power'], 'on');
    const machine = ok(await s.request('GET', `/hosts/${machineA.id}`, { token: admin }));
    assert.equal(machine.computed['machine.linkedHostId'], qemuHost.id);
    assert.equal(machine.computed['host.mode'], undefined);
  });

  test('the other machine is bare metal: placement never puts a VM there, and says why', async () => {
    const machine = ok(await s.request('GET', `/hosts/${machineB.id}`, { token: admin }));
    assert.equal(machine.computed['host.mode'], 'bare-metal');
    assert.equal(machine.computed['machine.linkedHostId'], null);
    const decision = ok(
      await s.request('POST', '/placement/preview', {
        token: admin,
        body: { vm: { name: 'probe', cpus: 1, memoryBytes: 64 * 2 ** 20 }, topCandidates: 10 },
      }),
    );
    const text = JSON.stringify(decision);
    assert.ok(!decision.candidates.some((c: ApiAnswer) => c.hostId === machineB.id), text);
    const rejection = decision.rejected.find((r: ApiAnswer) => r.hostId === machineB.id);
    assert.ok(rejection, text);
    assert.match(text, /bare-metal machine: no hypervisor Zenith manages runs on it/);
    const view = ok(await s.request('GET', `/hosts/${machineB.id}/machine`, { token: admin }));
    assert.equal(view.hostId, null);
    assert.deepEqual([...view.capabilities].sort(), [
      'machine.boot',
      'machine.fence',
      'machine.identify',
      'machine.media',
      'machine.power',
    ]);
  });

  const act = async (host: string, path: string, body?: unknown, method = 'POST') => {
    const task = ok(
      await s.request(method, `/hosts/${host}/${path}`, {
        token: admin,
        ...(body ? { body } : {}),
      }),
      202,
    );
    return s.waitForTask(admin, task.id, 30_000);
  };

  test('every power action through the hypervisor host ends with the power state read back from the BMC', async () => {
    const machine = sim.machine('System1');
    let task = await act(qemuHost.id, 'power', { action: 'off' });
    assert.equal(task.state, 'succeeded', JSON.stringify(task.error));
    assert.equal(task.result.power, 'off');
    assert.equal(machine.power, 'Off');
    // The inventory follows within a poll: the host shows the machine off.
    await until(
      'the host shows its machine off',
      async () => {
        const host = ok(await s.request('GET', `/hosts/${qemuHost.id}`, { token: admin }));
        return host.computed['machine.hardware.power'] === 'off' ? true : undefined;
      },
      10_000,
    );
    task = await act(qemuHost.id, 'power', { action: 'on' });
    assert.equal(task.state, 'succeeded', JSON.stringify(task.error));
    assert.equal(machine.power, 'On');
    for (const action of ['cycle', 'reset', 'shutdown']) {
      task = await act(machineA.id, 'power', { action });
      assert.equal(task.state, 'succeeded', `${action}: ${JSON.stringify(task.error)}`);
      assert.equal(task.result.power, action === 'shutdown' ? 'off' : 'on');
      assert.equal(machine.power, action === 'shutdown' ? 'Off' : 'On');
    }
    const resets = sim.requests
      .filter((r) => r.method === 'POST' && r.path.endsWith('ComputerSystem.Reset'))
      .map((r) => r.path);
    assert.ok(resets.length >= 5, JSON.stringify(resets));
  });

  test('boot once, virtual media in and out, identify light', async () => {
    const machine = sim.machine('System2');
    let task = await act(machineB.id, 'boot', { device: 'pxe' });
    assert.equal(task.state, 'succeeded', JSON.stringify(task.error));
    assert.deepEqual(machine.boot, { enabled: 'Once', target: 'Pxe' });
    task = await act(machineB.id, 'media', { image: 'http://images.example/installer.iso' });
    assert.equal(task.state, 'succeeded', JSON.stringify(task.error));
    assert.deepEqual(machine.media, {
      inserted: true,
      image: 'http://images.example/installer.iso',
    });
    task = await act(machineB.id, 'media', undefined, 'DELETE');
    assert.equal(task.state, 'succeeded', JSON.stringify(task.error));
    assert.equal(machine.media.inserted, false);
    task = await act(machineB.id, 'identify', { on: true });
    assert.equal(task.state, 'succeeded', JSON.stringify(task.error));
    assert.notEqual(machine.indicatorLed, 'Off');
    task = await act(machineB.id, 'identify', { on: false });
    assert.equal(task.state, 'succeeded', JSON.stringify(task.error));
    assert.equal(machine.indicatorLed, 'Off');
    const refused = await s.request('POST', `/hosts/${machineB.id}/boot`, {
      token: admin,
      body: { device: 'floppy' },
    });
    assert.equal(refused.status, 400);
  });

  test('the identify light and the virtual CD are facts that follow each action by the time its task ends, with the poll an hour away', async () => {
    const slowSim = await startRedfishSimulator({ machines: 1 });
    try {
      const connection = ok(
        await s.request('POST', '/connections', {
          token: admin,
          body: {
            name: 'bmc-slow-poll',
            type: 'redfish',
            settings: {
              url: slowSim.url,
              username: slowSim.username,
              thumbprint: slowSim.thumbprint,
              pollSeconds: 3600,
            },
            secret: slowSim.password,
          },
        }),
        201,
      );
      assert.equal(connection.state, 'connected', connection.lastError);
      const hosts = ok(await s.request('GET', '/hosts?limit=100', { token: admin })).items;
      const slow = hosts.find((h: ApiAnswer) => h.connectionId === connection.id);
      const simulated = slowSim.machine('System1');
      const facts = async () =>
        ok(await s.request('GET', `/hosts/${slow.id}`, { token: admin })).facts;
      const image = 'https://images.example/rescue.iso';

      let task = await act(slow.id, 'identify', { on: true });
      assert.equal(task.state, 'succeeded', JSON.stringify(task.error));
      assert.equal(simulated.indicatorLed, 'Lit');
      assert.equal((await facts())['bmc.identify'], 'on');
      task = await act(slow.id, 'media', { image });
      assert.equal(task.state, 'succeeded', JSON.stringify(task.error));
      assert.deepEqual(simulated.media, { inserted: true, image });
      let now = await facts();
      assert.deepEqual([now['bmc.media.inserted'], now['bmc.media.image']], [true, image]);
      task = await act(slow.id, 'media', undefined, 'DELETE');
      assert.equal(task.state, 'succeeded', JSON.stringify(task.error));
      now = await facts();
      assert.deepEqual([now['bmc.media.inserted'], now['bmc.media.image']], [false, null]);
      task = await act(slow.id, 'identify', { on: false });
      assert.equal(task.state, 'succeeded', JSON.stringify(task.error));
      assert.equal(simulated.indicatorLed, 'Off');
      assert.equal((await facts())['bmc.identify'], 'off');
      ok(await s.request('DELETE', `/connections/${connection.id}`, { token: admin }));
    } finally {
      await slowSim.close();
    }
  });

  test("a light lit at the machine (the simulator's IndicatorLED Blinking) is read by the poll; the linked host carries the light as machine.bmc.identify", async () => {
    const bare = sim.machine('System2');
    bare.indicatorLed = 'Blinking';
    const read = async (id: string) => ok(await s.request('GET', `/hosts/${id}`, { token: admin }));
    await until(
      'the poll reads the blinking light',
      async () =>
        (await read(machineB.id)).facts['bmc.identify'] === 'blinking' ? true : undefined,
      10_000,
    );
    bare.indicatorLed = 'Off';
    const task = await act(qemuHost.id, 'identify', { on: true });
    assert.equal(task.state, 'succeeded', JSON.stringify(task.error));
    assert.equal((await read(machineA.id)).facts['bmc.identify'], 'on');
    await until(
      'the hypervisor host shows its machine lit',
      async () =>
        (await read(qemuHost.id)).computed['machine.bmc.identify'] === 'on' ? true : undefined,
      10_000,
    );
    await act(qemuHost.id, 'identify', { on: false });
  });

  test('sensors: temperature, fan and power draw as the BMC reads them now', async () => {
    sim.machine('System2').sensors.watts = 212;
    const answer = ok(await s.request('GET', `/hosts/${machineB.id}/sensors`, { token: admin }));
    const watts = answer.sensors.find((r: ApiAnswer) => r.kind === 'power');
    assert.equal(watts?.value, 212);
    assert.equal(watts?.unit, 'W');
    assert.ok(answer.sensors.some((r: ApiAnswer) => r.kind === 'temperature'));
    assert.ok(answer.sensors.some((r: ApiAnswer) => r.kind === 'fan'));
  });

  test('fencing is confirmed by reading the power back; a BMC that lies fails it with BMC_FENCE_UNCONFIRMED', async () => {
    const on = await act(machineB.id, 'power', { action: 'on' });
    assert.equal(on.state, 'succeeded');
    const fenced = await act(machineB.id, 'fence');
    assert.equal(fenced.state, 'succeeded', JSON.stringify(fenced.error));
    assert.equal(fenced.result.power, 'off');
    assert.equal(sim.machine('System2').power, 'Off');
    await act(machineB.id, 'power', { action: 'on' });
    sim.liar = true;
    try {
      const started = Date.now();
      const result = await s.plane.machines.fence(machineB.id, 2500).then(
        () => 'confirmed',
        (error: { code?: string }) => error.code,
      );
      assert.equal(result, 'BMC_FENCE_UNCONFIRMED');
      assert.ok(Date.now() - started < 10_000);
      assert.equal(sim.machine('System2').power, 'On', 'the liar kept it on');
    } finally {
      sim.liar = false;
    }
  });

  test('links by hand: refused while linked elsewhere, unlinked stays bare metal, and needs host.link', async () => {
    const conflict = await s.request('PUT', `/hosts/${machineB.id}/machine-link`, {
      token: admin,
      body: { hostId: qemuHost.id },
    });
    assert.equal(conflict.status, 409);
    assert.equal(conflict.body.error.code, 'ZEN_CONFLICT');
    const unlinked = ok(
      await s.request('DELETE', `/hosts/${qemuHost.id}/machine-link`, { token: admin }),
    );
    assert.equal(unlinked.hostId, null);
    const host = ok(await s.request('GET', `/hosts/${qemuHost.id}`, { token: admin }));
    assert.equal(host.computed['machine.id'], undefined);
    const noBmc = await s.request('GET', `/hosts/${qemuHost.id}/machine`, { token: admin });
    assert.equal(noBmc.status, 409);
    assert.equal(noBmc.body.error.code, 'ZEN_NO_BMC');
    const linked = ok(
      await s.request('PUT', `/hosts/${machineB.id}/machine-link`, {
        token: admin,
        body: { hostId: 'hv-1' },
      }),
    );
    assert.equal(linked.hostId, qemuHost.id);
    assert.equal(linked.link.how, 'manual');
    // An operator (host.power, no host.link) may power machines but not link them.
    ok(
      await s.request('POST', '/users', {
        token: admin,
        body: { name: 'op', password: 'operator-password-1', role: 'operator' },
      }),
      201,
    );
    const op = await s.login('op', 'operator-password-1');
    const refused = await s.request('DELETE', `/hosts/${machineB.id}/machine-link`, { token: op });
    assert.equal(refused.status, 403);
    const audit = ok(await s.request('GET', '/audit?action=host.link', { token: admin }));
    assert.ok(audit.items.some((r: ApiAnswer) => r.targetId === machineB.id || r.params?.hostId));
  });

  test('a link by hand changes access data when a condition reads machine facts: it then needs identity.manage on both hosts', async () => {
    // A custom role that may link machines everywhere, but manages no access.
    ok(
      await s.request('POST', '/roles', {
        token: admin,
        body: { name: 'linker', permissions: ['inventory.read', 'host.link'] },
      }),
      201,
    );
    ok(
      await s.request('POST', '/users', {
        token: admin,
        body: { name: 'lin', password: 'linker-password-1', role: 'none' },
      }),
      201,
    );
    ok(
      await s.request('POST', '/role-bindings', {
        token: admin,
        body: { subject: 'lin', role: 'linker' },
      }),
      201,
    );
    const lin = await s.login('lin', 'linker-password-1');
    // Someone's reach depends on the vendor of the machine under a host.
    const reach = ok(
      await s.request('POST', '/role-bindings', {
        token: admin,
        body: {
          subject: 'lin',
          role: 'operator',
          condition: "object.machine.hardware.vendor == 'Contoso'",
        },
      }),
      201,
    );
    const refused = await s.request('DELETE', `/hosts/${machineB.id}/machine-link`, { token: lin });
    assert.equal(refused.status, 403, JSON.stringify(refused.body));
    assert.equal(refused.body.error.details.permission, 'identity.manage');
    assert.deepEqual(refused.body.error.details.facts, ['machine.hardware.vendor']);
    const still = ok(await s.request('GET', `/hosts/${machineB.id}/machine`, { token: admin }));
    assert.equal(still.hostId, qemuHost.id, 'nothing changed');
    // With no condition reading machine facts, host.link is enough.
    ok(await s.request('DELETE', `/role-bindings/${reach.id}`, { token: admin }));
    const unlinked = ok(
      await s.request('DELETE', `/hosts/${machineB.id}/machine-link`, { token: lin }),
    );
    assert.equal(unlinked.hostId, null);
    ok(
      await s.request('PUT', `/hosts/${machineB.id}/machine-link`, {
        token: lin,
        body: { hostId: qemuHost.id },
      }),
    );
  });
});
