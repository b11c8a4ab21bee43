/**
 * Sensor history and energy of physical machines, end to end: Zenith samples the sensors of a
 * Redfish machine (Zenith's Redfish service simulator) and an IPMI machine (OpenIPMI's ipmi_sim)
 * every 400 ms; the test changes their power draw at known times and checks the chart points and
 * the kWh against what was drawn, within what the sample times Zenith recorded allow; a BMC that
 * hangs does not stop the others' samples; a rate card with a kWh price gives the host linked to
 * the machine its energy cost in a report, shared by its running VMs by vCPUs.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  ok,
  startTestServer,
  type ApiAnswer,
  type TestServer,
} from '../../src/testing/control-plane.js';
import { startIpmiBmc, type IpmiBmc } from '../../src/testing/ipmi-bmc.js';
import {
  startRedfishSimulator,
  type RedfishSimulator,
} from '../../src/testing/redfish-simulator.js';
import { parseCsv } from '../../src/testing/csv-reader.js';
import { until } from '../../src/testing/wait.js';

const sampleEveryMs = 400;
const wattMsPerKWh = 3_600_000_000;

describe('sensor history and energy of physical machines', () => {
  let simA: RedfishSimulator;
  let simB: RedfishSimulator;
  let bmc: IpmiBmc;
  let s: TestServer;
  let admin: string;
  let machineA: ApiAnswer;
  let machineB: ApiAnswer;
  let machineI: ApiAnswer;

  const addBmc = async (name: string, type: string, settings: unknown, secret: string) => {
    const connection = ok(
      await s.request('POST', '/connections', {
        token: admin,
        body: { name, type, settings, secret },
      }),
      201,
    );
    assert.equal(connection.state, 'connected', connection.lastError);
    const hosts = ok(await s.request('GET', '/hosts?limit=100', { token: admin })).items;
    const machine = hosts.find((h: ApiAnswer) => h.connectionId === connection.id);
    assert.ok(machine, JSON.stringify(hosts));
    return machine;
  };
  const recorded = (machineId: string, from = 0, to = Date.now() + 60_000) =>
    s.plane.sensorHistory.samples(machineId, from, to);

  before(async () => {
    simA = await startRedfishSimulator();
    simB = await startRedfishSimulator();
    bmc = await startIpmiBmc({ sensors: { temperatureC: 44, watts: 250, fanRpm: 4800 } });
    simA.machine('System1').sensors.watts = 200;
    s = await startTestServer({ machines: { sensorSampleEveryMs: sampleEveryMs } });
    admin = await s.login();
    const redfish = (sim: RedfishSimulator, extra: Record<string, unknown> = {}) => ({
      url: sim.url,
      username: sim.username,
      thumbprint: sim.thumbprint,
      ...extra,
    });
    machineA = await addBmc('bmc-a', 'redfish', redfish(simA), simA.password);
    machineB = await addBmc(
      'bmc-b',
      'redfish',
      redfish(simB, { timeoutSeconds: 2 }),
      simB.password,
    );
    machineI = await addBmc(
      'bmc-i',
      'ipmi',
      { host: bmc.host, port: bmc.port, username: bmc.username },
      bmc.password,
    );
  });
  after(async () => {
    await s?.close();
    await simA?.close();
    await simB?.close();
    await bmc?.stop();
  });

  test('a Redfish machine: chart points and kWh follow the watts set, within what the sample times allow', async () => {
    // 200 W, then 400 W from `switchAt`: about 3 s each.
    await until('samples at 200 W', async () =>
      (await recorded(machineA.id)).filter((x) => x.watts === 200).length >= 3 ? true : undefined,
    );
    await sleep(2500);
    const switchAt = Date.now();
    simA.machine('System1').sensors.watts = 400;
    await sleep(3000);
    await until('samples at 400 W', async () =>
      (await recorded(machineA.id)).filter((x) => x.watts === 400).length >= 5 ? true : undefined,
    );
    const samples = await recorded(machineA.id);
    // What Zenith recorded: 200 W up to the switch, 400 W after, never anything else.
    const firstAt400 = samples.findIndex((x) => x.watts === 400);
    assert.ok(firstAt400 > 0);
    assert.ok(samples.slice(0, firstAt400).every((x) => x.watts === 200));
    assert.ok(samples.slice(firstAt400).every((x) => x.watts === 400));
    assert.ok(samples.every((x) => x.temperatureC === 41 && x.fanRpm === 5400));
    // A reading answered before the switch cannot hold 400 W.
    assert.ok(samples[firstAt400]!.at >= switchAt);
    const gaps = samples.slice(1).map((x, i) => x.at - samples[i]!.at);
    assert.ok(
      Math.max(...gaps) < 3 * sampleEveryMs,
      `sampled every ~${sampleEveryMs} ms: ${gaps.join(' ')}`,
    );

    // The period: from the second sample to the last one, all covered.
    const from = samples[1]!.at;
    const to = samples[samples.length - 1]!.at;
    const energy = ok(
      await s.request('GET', `/hosts/${machineA.id}/energy?from=${from}&to=${to}`, {
        token: admin,
      }),
    );
    assert.equal(energy.machineId, machineA.id);
    assert.equal(energy.coveredMs, to - from);
    // What the machine drew: 200 W until the switch, 400 W after. Zenith sees the step only as
    // a line between the last reading before and the first after it: the error is at most the
    // 200 W difference over that one gap (the readings were taken up to a request's time before
    // they were recorded: 50 ms allowed for that).
    const truthWattMs = 200 * (switchAt - from) + 400 * (to - switchAt);
    const switchGap = samples[firstAt400]!.at - samples[firstAt400 - 1]!.at;
    const toleranceWattMs = 200 * (switchGap + 50);
    assert.ok(
      Math.abs(energy.kWh * wattMsPerKWh - truthWattMs) <= toleranceWattMs,
      `${energy.kWh * wattMsPerKWh} W·ms vs ${truthWattMs} ± ${toleranceWattMs}`,
    );
    assert.ok(Math.abs(energy.averageWatts - (energy.kWh * wattMsPerKWh) / (to - from)) < 1e-6);

    // Chart points of 1 s: 200 W in the seconds wholly before the switch, 400 W in those starting
    // a second after it (a reading is answered within a second), the highest temperature, fans.
    const history = ok(
      await s.request('GET', `/hosts/${machineA.id}/sensors/history?from=${from}&to=${to}&step=1`, {
        token: admin,
      }),
    );
    assert.equal(history.stepSeconds, 1);
    assert.ok(history.points.length >= 5);
    // A step holds a reading unless it is the last (it ends after the last sample).
    const read = history.points.filter((p: ApiAnswer) => p.watts !== null);
    assert.ok(read.length >= history.points.length - 1, JSON.stringify(history.points));
    for (const point of read) {
      if (point.at + 1000 <= switchAt) assert.equal(point.watts, 200, JSON.stringify(point));
      if (point.at >= switchAt + 1000) assert.equal(point.watts, 400, JSON.stringify(point));
      assert.ok(point.watts >= 200 && point.watts <= 400);
      assert.equal(point.temperatureC, 41);
      assert.equal(point.fanRpm, 5400);
    }
  });

  test('an IPMI machine: the power sensor ipmi_sim reads is sampled; a constant draw integrates exactly', async () => {
    await until('samples at 250 W', async () =>
      (await recorded(machineI.id)).filter((x) => x.watts === 250).length >= 4 ? true : undefined,
    );
    const at250 = (await recorded(machineI.id)).filter((x) => x.watts === 250);
    assert.ok(at250.every((x) => x.temperatureC === 44 && x.fanRpm === 4800));
    const from = at250[0]!.at;
    const to = at250[at250.length - 1]!.at;
    const energy = ok(
      await s.request('GET', `/hosts/${machineI.id}/energy?from=${from}&to=${to}`, {
        token: admin,
      }),
    );
    assert.equal(energy.averageWatts, 250);
    assert.equal(energy.coveredMs, to - from);
    assert.ok(Math.abs(energy.kWh - (250 * (to - from)) / wattMsPerKWh) < 1e-12);
    await bmc.setSensors({ watts: 350 });
    await until(
      'a sample at 350 W',
      async () => ((await recorded(machineI.id)).some((x) => x.watts === 350) ? true : undefined),
      15_000,
    );
  });

  test('a BMC that hangs does not stop the others being sampled, and is sampled again once it answers', async () => {
    await until('machine B sampled', async () =>
      (await recorded(machineB.id)).length > 0 ? true : undefined,
    );
    simB.fault({ kind: 'hang' }, /\/Chassis\//);
    const hangFrom = Date.now();
    await sleep(3000);
    const during = Date.now();
    const aDuring = await recorded(machineA.id, hangFrom + 500, during);
    const iDuring = await recorded(machineI.id, hangFrom + 500, during);
    const bDuring = await recorded(machineB.id, hangFrom + 500, during);
    // About 6 rounds in 2.5 s: each of the others in most of them.
    assert.ok(aDuring.length >= 3, `machine A: ${aDuring.length} samples while B hung`);
    assert.ok(iDuring.length >= 2, `machine I: ${iDuring.length} samples while B hung`);
    assert.equal(bDuring.length, 0);
    // Its gap is left out of its energy: nothing covered while it hung.
    const energy = ok(
      await s.request('GET', `/hosts/${machineB.id}/energy?from=${hangFrom + 500}&to=${during}`, {
        token: admin,
      }),
    );
    assert.equal(energy.coveredMs, 0);
    assert.equal(energy.averageWatts, null);
    simB.fault(undefined);
    await until(
      'machine B sampled again',
      async () => ((await recorded(machineB.id, during)).length > 0 ? true : undefined),
      15_000,
    );
  });

  test('bad requests get coded 4xx answers', async () => {
    const bad = async (path: string, status: number, code: string) => {
      const answer = await s.request('GET', path, { token: admin });
      assert.equal(answer.status, status, JSON.stringify(answer.body));
      assert.equal(answer.body.error.code, code);
    };
    const now = Date.now();
    await bad(`/hosts/${machineA.id}/energy?from=${now}&to=${now - 1000}`, 400, 'ZEN_BAD_REQUEST');
    await bad(`/hosts/${machineA.id}/energy?from=abc&to=1`, 400, 'ZEN_BAD_REQUEST');
    await bad(
      `/hosts/${machineA.id}/sensors/history?from=0&to=${now}&step=1`,
      400,
      'ZEN_BAD_REQUEST',
    );
    await bad(`/hosts/no-such-host/energy?from=0&to=1`, 404, 'ZEN_NOT_FOUND');
  });

  test("a kWh price: the report shows the host's energy and its cost, and each running VM's share by vCPUs", async () => {
    // A hypervisor host (a simulated one) linked to machine A by hand; three VMs on it.
    await s.addSimulatedFleet(admin, {
      timeScale: 0,
      clustersPerDatacenter: 1,
      hostsPerCluster: 1,
      vmsPerHost: 3,
    });
    const hosts = ok(await s.request('GET', '/hosts?limit=100', { token: admin })).items;
    const host = hosts.find((h: ApiAnswer) => h.facts['hypervisor.type'] === 'simulated');
    assert.ok(host, JSON.stringify(hosts.map((h: ApiAnswer) => h.name)));
    ok(
      await s.request('PUT', `/hosts/${machineA.id}/machine-link`, {
        token: admin,
        body: { hostId: host.id },
      }),
    );
    const vms = ok(await s.request('GET', '/vms?limit=100', { token: admin })).items;
    const running = vms.filter((vm: ApiAnswer) => vm.facts['power.state'] === 'running');
    assert.ok(running.length >= 1, JSON.stringify(vms.map((vm: ApiAnswer) => vm.facts)));
    // Energy bought at 100000 per kWh on this host (by its name), and free elsewhere.
    ok(
      await s.request('POST', '/accounting/rate-cards', {
        token: admin,
        body: {
          effectiveFrom: Date.now() - 3_600_000,
          currency: 'EUR',
          timeZone: 'UTC',
          windows: [
            {
              name: 'always',
              days: ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'],
              hours: [0, 24],
            },
          ],
          rates: [
            { match: { host: host.name }, window: 'always', kWh: '100000', vcpuHour: '0.01' },
            { kWh: '0', vcpuHour: '0.01' },
          ],
        },
      }),
      201,
    );
    const from = Date.now();
    await sleep(3000);
    const to = Date.now();
    // Both reads below must see the same samples: the one after `to` (which closes the last
    // trapezoid) is recorded before either reads.
    await sleep(1000);
    const energy = ok(
      await s.request('GET', `/hosts/${host.id}/energy?from=${from}&to=${to}`, { token: admin }),
    );
    assert.equal(energy.machineId, machineA.id, 'the hypervisor host names its machine');
    assert.ok(energy.kWh > 0);

    const query = `from=${from}&to=${to}&granularity=hourly`;
    const byHost = ok(
      await s.request('GET', `/accounting/report?${query}&groupBy=host`, { token: admin }),
    );
    const hostEnergy = byHost.energy.find((e: ApiAnswer) => e.hostId === host.id);
    assert.ok(hostEnergy, JSON.stringify(byHost.energy));
    assert.equal(hostEnergy.machineId, machineA.id);
    // The report integrates the same samples as the energy operation (milliwatt-hours per slice).
    assert.ok(Math.abs(hostEnergy.kWh - energy.kWh) <= 2e-6, `${hostEnergy.kWh} vs ${energy.kWh}`);
    assert.equal(hostEnergy.coveredMs, energy.coveredMs);
    const expectedCost = Math.round(energy.kWh * 100000 * 100);
    assert.ok(
      Math.abs(hostEnergy.cost - expectedCost) <= 1,
      `${hostEnergy.cost} vs ${expectedCost} cents`,
    );

    const byVm = ok(
      await s.request('GET', `/accounting/report?${query}&groupBy=vm`, { token: admin }),
    );
    const share = new Map<string, number>();
    for (const row of byVm.rows) share.set(row.key, (share.get(row.key) ?? 0) + row.cost.energy);
    const cpus = (vm: ApiAnswer) => vm.facts['cpu.count'] as number;
    const totalCpus = running.reduce((a: number, vm: ApiAnswer) => a + cpus(vm), 0);
    for (const vm of vms) {
      const expected =
        vm.facts['power.state'] === 'running'
          ? ((hostEnergy.cost - hostEnergy.unsharedCost) * cpus(vm)) / totalCpus
          : 0;
      // Each VM's share is rounded once per hourly bucket (the period spans at most two).
      assert.ok(
        Math.abs((share.get(vm.id) ?? 0) - expected) <= 2,
        `${vm.name}: ${share.get(vm.id)} vs ${expected}`,
      );
    }
    // The VMs' shares and the unshared part add up to the host's cost.
    const shared = [...share.values()].reduce((a, b) => a + b, 0);
    assert.ok(Math.abs(shared + hostEnergy.unsharedCost - hostEnergy.cost) <= 2 * running.length);
    assert.equal(byVm.totals.energy, shared);

    // The CSV carries the same shares.
    const csv = await s.request('GET', `/accounting/report?${query}&groupBy=vm&format=csv`, {
      token: admin,
    });
    assert.equal(csv.status, 200);
    const records = parseCsv(String(csv.body));
    const header = records[0]!;
    const costColumn = header.indexOf('energy_cost');
    assert.ok(costColumn > 0, header.join(','));
    const csvShared = records
      .slice(1)
      .reduce((a, r) => a + Math.round(Number(r[costColumn]) * 100), 0);
    assert.equal(csvShared, shared);
  });
});
