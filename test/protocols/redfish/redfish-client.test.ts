import assert from 'node:assert/strict';
import { createServer, type Server, type Socket } from 'node:net';
import { after, afterEach, before, describe, test } from 'node:test';
import { processAlive } from '../../../src/core/process.js';
import { RedfishClient } from '../../../src/protocols/redfish/redfish-client.js';
import { MachineProcess } from '../../../src/testing/machine-process.js';
import { freePort } from '../../../src/testing/ports.js';
import {
  startRedfishSimulator,
  type RedfishSimulator,
} from '../../../src/testing/redfish-simulator.js';

const connect = (
  sim: RedfishSimulator,
  overrides: { password?: string; timeoutMs?: number } = {},
) =>
  RedfishClient.connect({
    url: sim.url,
    username: sim.username,
    password: overrides.password ?? sim.password,
    tls: { thumbprint: sim.thumbprint },
    timeoutMs: overrides.timeoutMs ?? 2000,
  });

/** A simulator whose two systems are machine processes that its power actions start and kill. */
async function simulatorWithMachines(): Promise<{
  sim: RedfishSimulator;
  machines: Map<string, MachineProcess>;
}> {
  const machines = new Map<string, MachineProcess>();
  const sim = await startRedfishSimulator({
    machines: 2,
    hooks: {
      powerOn: (id) => machines.get(id)!.start(),
      powerOff: (id) => machines.get(id)!.stop(),
    },
  });
  for (const m of sim.machines) {
    const machine = new MachineProcess();
    await machine.start();
    machines.set(m.id, machine);
  }
  return { sim, machines };
}

describe('the Redfish client against the Redfish simulator', () => {
  let sim: RedfishSimulator;
  let machines: Map<string, MachineProcess>;
  let bmc: RedfishClient;
  before(async () => {
    ({ sim, machines } = await simulatorWithMachines());
    bmc = await connect(sim);
  });
  after(async () => {
    await bmc.close();
    await sim.close();
    await Promise.all([...machines.values()].map((m) => m.stop()));
  });

  test('logs in with a session, sends its token, and deletes the session on close', async () => {
    const other = await connect(sim);
    assert.equal(sim.sessions.size, 2);
    await other.close();
    assert.equal(sim.sessions.size, 1);
    assert.ok(!sim.requests.some((r) => r.authorization), 'no Basic credentials were sent');
  });

  test('reads a system: vendor, model, serial, UUID, BIOS, processors, memory, NICs, disks, power and health', async () => {
    const systems = await bmc.systems();
    assert.deepEqual(
      systems.map((s) => s.id),
      ['System1', 'System2'],
    );
    const state = sim.machine('System1');
    const inventory = await bmc.inventory(systems[0]!.uri);
    assert.equal(inventory.vendor, 'Zenith Simulated Hardware');
    assert.equal(inventory.model, 'ZS-1000');
    assert.equal(inventory.serial, state.serial);
    assert.equal(inventory.uuid, state.uuid);
    assert.equal(inventory.biosVersion, 'ZS-BIOS 2.4.1');
    assert.equal(inventory.powerState, 'On');
    assert.equal(inventory.health, 'OK');
    assert.equal(inventory.processorCount, 2);
    assert.deepEqual(
      inventory.processors.map((p) => p.cores),
      [16, 16],
    );
    assert.equal(inventory.memoryGiB, 64);
    assert.equal(
      inventory.memoryModules.reduce((sum, m) => sum + (m.capacityMiB ?? 0), 0),
      65536,
    );
    assert.deepEqual(
      inventory.nics.map((n) => n.mac),
      state.macs,
    );
    assert.deepEqual(
      inventory.disks.map((d) => [d.name, d.capacityBytes]),
      [
        ['Boot SSD', 960_197_124_096],
        ['Data SSD', 960_197_124_096],
      ],
    );
  });

  test('reads the managers (firmware, virtual media) and the chassis sensors', async () => {
    const [manager] = await bmc.managers();
    assert.equal(manager?.firmwareVersion, '3.1.7');
    sim.machine('System1').sensors = { temperatureC: 63, fanRpm: 7100, watts: 245 };
    const readings = await bmc.sensors();
    assert.deepEqual(
      readings.slice(0, 3).map((r) => [r.kind, r.value, r.unit]),
      [
        ['temperature', 63, 'Cel'],
        ['fan', 7100, 'RPM'],
        ['power', 245, 'W'],
      ],
    );
  });

  test('a chassis with the newer Sensors collection is read through it', async () => {
    const withSensors = await startRedfishSimulator({ sensorResources: true });
    try {
      withSensors.machine('System1').sensors = { temperatureC: 52, fanRpm: 3900, watts: 410 };
      const client = await connect(withSensors);
      assert.deepEqual(
        (await client.sensors()).map((r) => [r.name, r.kind, r.value, r.unit]),
        [
          ['CPU1 Temp', 'temperature', 52, 'Cel'],
          ['Fan 1', 'fan', 3900, 'RPM'],
          ['Total Power', 'power', 410, 'W'],
        ],
      );
      assert.ok(!withSensors.requests.some((r) => r.path.endsWith('/Thermal')));
      await client.close();
    } finally {
      await withSensors.close();
    }
  });

  test('ForceOff kills the machine and reads Off; On starts it again', async () => {
    const [system] = await bmc.systems();
    const machine = machines.get('System1')!;
    const pid = machine.pid!;
    await bmc.reset(system!.uri, 'ForceOff');
    assert.equal(processAlive(pid), false);
    assert.equal(await bmc.powerState(system!.uri), 'Off');
    await bmc.reset(system!.uri, 'On');
    assert.ok(machine.running && machine.pid !== pid);
    assert.equal(await bmc.powerState(system!.uri), 'On');
    await assert.rejects(bmc.reset(system!.uri, 'PushPowerButton'), {
      code: 'REDFISH_NOT_SUPPORTED',
    });
  });

  test('boot override once, identify light and virtual media change what the BMC holds', async () => {
    const [system] = await bmc.systems();
    await bmc.bootOnce(system!.uri, 'Pxe');
    assert.deepEqual(sim.machine('System1').boot, { enabled: 'Once', target: 'Pxe' });
    await bmc.identify(system!.uri, true);
    assert.equal(sim.machine('System1').indicatorLed, 'Lit');
    assert.equal((await bmc.system(system!.uri)).indicator.locationActive, true);
    await bmc.identify(system!.uri, false);
    assert.equal(sim.machine('System1').indicatorLed, 'Off');
    const [manager] = await bmc.managers();
    const [cd] = await bmc.virtualMedia(manager!);
    await bmc.insertMedia(cd!, 'https://images.example/rescue.iso');
    const [inserted] = await bmc.virtualMedia(manager!);
    assert.equal(inserted?.inserted, true);
    assert.equal(inserted?.image, 'https://images.example/rescue.iso');
    await bmc.ejectMedia(cd!);
    assert.equal((await bmc.virtualMedia(manager!))[0]?.inserted, false);
  });

  test('a session the BMC forgot is replaced by a new login', async () => {
    sim.sessions.clear();
    assert.equal((await bmc.systems()).length, 2);
    assert.equal(sim.sessions.size, 1);
  });

  test('fencing powers the system off and confirms it; against a liar it fails with BMC_FENCE_UNCONFIRMED', async () => {
    const [, system] = await bmc.systems();
    const machine = machines.get('System2')!;
    const pid = machine.pid!;
    const result = await bmc.fence(system!.uri, { deadlineMs: 5000, pollIntervalMs: 100 });
    assert.equal(processAlive(pid), false);
    assert.equal(result.offRequests, 1);
    await bmc.reset(system!.uri, 'On');
    sim.liar = true;
    try {
      await assert.rejects(
        bmc.fence(system!.uri, { deadlineMs: 1500, pollIntervalMs: 100 }),
        (error) => {
          const e = error as { code: string; details: Record<string, unknown> };
          assert.equal(e.code, 'BMC_FENCE_UNCONFIRMED');
          assert.equal(e.details.lastState, 'on');
          return true;
        },
      );
      assert.ok(machine.running, 'the liar left the machine on');
    } finally {
      sim.liar = false;
    }
  });
});

describe('TLS: the certificate is checked before credentials are sent', () => {
  let sim: RedfishSimulator;
  before(async () => {
    sim = await startRedfishSimulator();
  });
  after(async () => {
    await sim.close();
  });

  test('an unknown certificate is REDFISH_CERTIFICATE_REJECTED with its thumbprint, and nothing was sent', async () => {
    for (const tls of [{}, { thumbprint: 'AB'.repeat(32) }]) {
      await assert.rejects(
        RedfishClient.connect({ url: sim.url, username: 'admin', password: sim.password, tls }),
        (error) => {
          const e = error as { code: string; details: Record<string, unknown> };
          assert.equal(e.code, 'REDFISH_CERTIFICATE_REJECTED');
          assert.equal(e.details.thumbprint, sim.thumbprint);
          return true;
        },
      );
    }
    assert.deepEqual(sim.requests, []);
  });

  test('a configured CA or a pin without colons is trusted', async () => {
    for (const tls of [
      { ca: sim.certificatePem },
      { thumbprint: sim.thumbprint.replaceAll(':', '').toLowerCase() },
    ]) {
      const client = await RedfishClient.connect({
        url: sim.url,
        username: 'admin',
        password: sim.password,
        tls,
      });
      assert.equal(client.serviceRoot.RedfishVersion, '1.11.0');
      await client.close();
    }
  });
});

describe('bad BMCs give coded errors, never a hang', () => {
  let sim: RedfishSimulator;
  let bmc: RedfishClient;
  let silent: Server;
  const held: Socket[] = [];
  before(async () => {
    sim = await startRedfishSimulator();
    bmc = await connect(sim, { timeoutMs: 700 });
    silent = createServer((socket) => held.push(socket)); // accepts and never says a word
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', () => resolve()));
  });
  afterEach(() => sim.fault(undefined));
  after(async () => {
    await bmc.close();
    await sim.close();
    for (const socket of held) socket.destroy();
    await new Promise<void>((resolve) => silent.close(() => resolve()));
  });

  const stillWorks = async () => assert.equal((await bmc.systems()).length, 1);

  test('a wrong password is REDFISH_AUTH_FAILED and no error carries the password', async () => {
    await assert.rejects(connect(sim, { password: 'Wr0ng-horse-battery' }), (error) => {
      assert.equal((error as { code: string }).code, 'REDFISH_AUTH_FAILED');
      assert.ok(!JSON.stringify({ error, text: String(error) }).includes('Wr0ng-horse-battery'));
      return true;
    });
  });

  test('garbage and truncated JSON are REDFISH_PROTOCOL_ERROR, and the next request works', async () => {
    sim.fault({ kind: 'garbage' }, /Systems$/);
    await assert.rejects(bmc.systems(), { code: 'REDFISH_PROTOCOL_ERROR' });
    sim.fault({ kind: 'truncated' }, /Systems$/);
    await assert.rejects(bmc.systems(), { code: 'REDFISH_PROTOCOL_ERROR' });
    sim.fault(undefined);
    await stillWorks();
  });

  test('a BMC that never answers, or answers after the deadline, is REDFISH_TIMEOUT at the deadline', async () => {
    for (const fault of [{ kind: 'hang' as const }, { kind: 'delay' as const, ms: 1500 }]) {
      sim.fault(fault, /Systems$/);
      const started = Date.now();
      await assert.rejects(bmc.systems(), { code: 'REDFISH_TIMEOUT' });
      const took = Date.now() - started;
      assert.ok(took >= 650 && took < 1500, `took ${took} ms`);
    }
    sim.fault(undefined);
    await stillWorks();
  });

  test('a peer that accepts TCP and never speaks TLS is REDFISH_TIMEOUT; a closed port REDFISH_CONNECT_FAILED', async () => {
    const port = (silent.address() as { port: number }).port;
    await assert.rejects(
      RedfishClient.connect({
        url: `https://127.0.0.1:${port}`,
        username: 'a',
        password: 'b',
        timeoutMs: 500,
      }),
      { code: 'REDFISH_TIMEOUT' },
    );
    await assert.rejects(
      RedfishClient.connect({
        url: `https://127.0.0.1:${await freePort()}`,
        username: 'a',
        password: 'b',
      }),
      { code: 'REDFISH_CONNECT_FAILED' },
    );
  });

  test('fencing a BMC that went away fails with BMC_FENCE_UNCONFIRMED', async () => {
    const [system] = await bmc.systems();
    sim.fault({ kind: 'hang' });
    await assert.rejects(
      bmc.fence(system!.uri, { deadlineMs: 1500, pollIntervalMs: 100 }),
      (error) => {
        const e = error as { code: string; details: Record<string, unknown> };
        assert.equal(e.code, 'BMC_FENCE_UNCONFIRMED');
        assert.equal(e.details.offAccepted, false);
        assert.equal((e.details.lastError as { code: string }).code, 'REDFISH_TIMEOUT');
        return true;
      },
    );
    assert.equal(sim.machine('System1').power, 'On');
  });
});
