// The Redfish simulator is our own: real Redfish clients from Debian must read and power its
// systems, so it is not tuned to Zenith's client only. python3-sushy is the library OpenStack
// Ironic drives BMCs with; redfishtool is DMTF's command-line client.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { processAlive } from '../../src/core/process.js';
import { MachineProcess } from '../../src/testing/machine-process.js';
import {
  startRedfishSimulator,
  type RedfishSimulator,
} from '../../src/testing/redfish-simulator.js';

const run = promisify(execFile);

// Prints one JSON line per step, so the test can check what sushy saw at each point.
const sushyScript = `
import json, sys, sushy
url, ca, user, password = sys.argv[1:5]
bmc = sushy.Sushy(url + '/redfish/v1', verify=ca, auth=sushy.auth.SessionAuth(user, password))
def say(**kw): print(json.dumps(kw), flush=True)
system = bmc.get_system(bmc.get_system_collection().members_identities[1])
say(step='read', power=system.power_state.value, uuid=system.uuid, serial=system.serial_number,
    vendor=system.manufacturer, bios=system.bios_version,
    resets=sorted(v.value for v in system.get_allowed_reset_system_values()),
    macs=[n.mac_address for n in system.ethernet_interfaces.get_members()])
system.reset_system(sushy.ResetType.FORCE_OFF)
system.refresh()
say(step='off', power=system.power_state.value)
system.reset_system(sushy.ResetType.ON)
system.refresh()
say(step='on', power=system.power_state.value)
system.set_system_boot_options(sushy.BootSource.PXE, enabled=sushy.BootSourceOverrideEnabled.ONCE)
system.refresh()
say(step='boot', target=system.boot.target.value, enabled=system.boot.enabled.value)
chassis = bmc.get_chassis(system.json['Links']['Chassis'][0]['@odata.id'])
say(step='thermal', temperatures=[t.reading_celsius for t in chassis.thermal.temperatures])
manager = bmc.get_manager(system.json['Links']['ManagedBy'][0]['@odata.id'])
say(step='manager', firmware=manager.firmware_version,
    media=[m.identity for m in manager.virtual_media.get_members()])
events = bmc.get_event_service()
events.subscriptions.create({'Destination': 'https://zenith.example/redfish-events',
                             'EventTypes': ['StatusChange'], 'Protocol': 'Redfish'})
events.subscriptions.refresh()
say(step='events', enabled=events.service_enabled,
    subscriptions=[s.destination for s in events.subscriptions.get_members()])
`;

describe('real Redfish clients against the Redfish simulator', () => {
  let sim: RedfishSimulator;
  let dir: string;
  const machines = new Map<string, MachineProcess>();
  before(async () => {
    sim = await startRedfishSimulator({
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
    dir = await mkdtemp(join(tmpdir(), 'zenith-redfish-clients-'));
    await writeFile(join(dir, 'ca.pem'), sim.certificatePem);
  });
  after(async () => {
    await sim.close();
    await Promise.all([...machines.values()].map((m) => m.stop()));
    await rm(dir, { recursive: true, force: true });
  });

  test('python3-sushy logs in, reads a system, powers it off and on, and sets a one-time PXE boot', async () => {
    const machine = machines.get('System2')!;
    const firstPid = machine.pid!;
    // Debian's Python with its modules; requests would let REQUESTS_CA_BUNDLE override our CA.
    const env = { ...process.env };
    delete env.REQUESTS_CA_BUNDLE;
    delete env.CURL_CA_BUNDLE;
    const { stdout } = await run(
      '/usr/bin/python3',
      ['-c', sushyScript, sim.url, join(dir, 'ca.pem'), sim.username, sim.password],
      { env, timeout: 60_000 },
    );
    const steps = Object.fromEntries(
      stdout
        .trim()
        .split('\n')
        .map((line) => JSON.parse(line) as Record<string, unknown>)
        .map((step) => [step.step, step]),
    );
    const state = sim.machine('System2');
    assert.deepEqual(steps.read, {
      step: 'read',
      power: 'On',
      uuid: state.uuid,
      serial: state.serial,
      vendor: 'Zenith Simulated Hardware',
      bios: 'ZS-BIOS 2.4.1',
      resets: [
        'ForceOff',
        'ForceRestart',
        'GracefulRestart',
        'GracefulShutdown',
        'Nmi',
        'On',
        'PowerCycle',
      ],
      macs: state.macs,
    });
    assert.equal(steps.off?.power, 'Off');
    assert.equal(steps.on?.power, 'On');
    assert.equal(processAlive(firstPid), false, "sushy's ForceOff killed the machine");
    assert.ok(machine.running && machine.pid !== firstPid, "sushy's On started a new one");
    assert.deepEqual(steps.boot, { step: 'boot', target: 'Pxe', enabled: 'Once' });
    assert.deepEqual(state.boot, { enabled: 'Once', target: 'Pxe' });
    assert.deepEqual(steps.thermal?.temperatures, [state.sensors.temperatureC]);
    assert.deepEqual(steps.manager, { step: 'manager', firmware: '3.1.7', media: ['Cd'] });
    assert.deepEqual(steps.events, {
      step: 'events',
      enabled: true,
      subscriptions: ['https://zenith.example/redfish-events'],
    });
    assert.ok(
      sim.requests.some(
        (r) => r.method === 'POST' && r.path === '/redfish/v1/SessionService/Sessions',
      ),
      'sushy used a session',
    );
  });

  test('redfishtool reads the power state, powers a system off and on, and sets a boot override', async () => {
    const rhost = new URL(sim.url).host;
    const tool = async (...args: string[]) =>
      (
        await run(
          'redfishtool',
          [
            '-r',
            rhost,
            '-u',
            sim.username,
            '-p',
            sim.password,
            '-S',
            'Always',
            '-A',
            'Session',
            ...args,
          ],
          { timeout: 60_000 },
        )
      ).stdout;
    const power = async () =>
      (
        JSON.parse(await tool('Systems', '-I', 'System1', 'get', '-P', 'PowerState')) as {
          PowerState: string;
        }
      ).PowerState;
    const machine = machines.get('System1')!;
    const firstPid = machine.pid!;
    assert.equal(await power(), 'On');
    await tool('Systems', '-I', 'System1', 'reset', 'ForceOff');
    assert.equal(processAlive(firstPid), false);
    assert.equal(await power(), 'Off');
    await tool('Systems', '-I', 'System1', 'reset', 'On');
    assert.ok(machine.running);
    assert.equal(await power(), 'On');
    await tool('Systems', '-I', 'System1', 'setBootOverride', 'Once', 'Hdd');
    assert.deepEqual(sim.machine('System1').boot, { enabled: 'Once', target: 'Hdd' });
    const processors = JSON.parse(await tool('Systems', '-I', 'System1', 'Processors')) as {
      Members: unknown[];
    };
    assert.equal(processors.Members.length, 2);
    const thermal = JSON.parse(await tool('Chassis', '-I', 'System1', 'Thermal')) as {
      Temperatures: { ReadingCelsius: number }[];
    };
    assert.equal(
      thermal.Temperatures[0]?.ReadingCelsius,
      sim.machine('System1').sensors.temperatureC,
    );
  });
});
