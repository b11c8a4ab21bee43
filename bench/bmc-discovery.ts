/**
 * 50 BMCs at once: how long Zenith takes to discover every machine behind them, and what one
 * round of sensor sampling costs (wall time per round and per BMC, CPU of the control plane).
 * The BMCs are Redfish service simulators (one BMC, one system each) spread over child
 * processes, so that serving them does not count in the control plane's CPU, plus a few
 * ipmi_sim BMCs (OpenIPMI; one ipmitool process per IPMI call).
 *
 *   node --import tsx bench/bmc-discovery.ts [--redfish 50] [--ipmi 3] [--processes 5] [--rounds 10]
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { startIpmiBmc, type IpmiBmc } from '../src/testing/ipmi-bmc.js';
import { startRedfishSimulator } from '../src/testing/redfish-simulator.js';
import { startTestPlane } from '../src/testing/control-plane.js';

const { values } = parseArgs({
  options: {
    redfish: { type: 'string', default: '50' },
    ipmi: { type: 'string', default: '3' },
    processes: { type: 'string', default: '5' },
    rounds: { type: 'string', default: '10' },
    // Internal: this file started as one of the simulator processes, serving that many BMCs.
    farm: { type: 'string' },
  },
});

interface SimulatorAddress {
  url: string;
  username: string;
  password: string;
  thumbprint: string;
}

if (values.farm !== undefined) {
  // A simulator process: start the BMCs, print one JSON line each, serve until stdin closes.
  const sims = await Promise.all(
    Array.from({ length: Number(values.farm) }, () => startRedfishSimulator()),
  );
  for (const sim of sims)
    process.stdout.write(
      `${JSON.stringify({ url: sim.url, username: sim.username, password: sim.password, thumbprint: sim.thumbprint })}\n`,
    );
  process.stdin.resume();
  await once(process.stdin, 'end');
  await Promise.all(sims.map((sim) => sim.close()));
  process.exit(0);
}

const redfishCount = Number(values.redfish);
const ipmiCount = Number(values.ipmi);
const processCount = Math.min(Number(values.processes), redfishCount);
const rounds = Number(values.rounds);

async function startFarm(
  count: number,
): Promise<{ child: ChildProcess; sims: SimulatorAddress[] }> {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', import.meta.filename, '--farm', String(count)],
    { stdio: ['pipe', 'pipe', 'inherit'] },
  );
  const sims: SimulatorAddress[] = [];
  const lines = createInterface({ input: child.stdout });
  for await (const line of lines) {
    sims.push(JSON.parse(line) as SimulatorAddress);
    if (sims.length === count) break;
  }
  return { child, sims };
}

const startedAt = performance.now();
const farms = await Promise.all(
  Array.from({ length: processCount }, (_, i) =>
    startFarm(Math.floor(redfishCount / processCount) + (i < redfishCount % processCount ? 1 : 0)),
  ),
);
const ipmiBmcs: IpmiBmc[] = await Promise.all(
  Array.from({ length: ipmiCount }, () => startIpmiBmc()),
);
console.log(
  `started ${redfishCount} Redfish BMCs in ${processCount} processes and ${ipmiCount} ipmi_sim in ${((performance.now() - startedAt) / 1000).toFixed(1)} s`,
);

// The sampler's own loop sleeps an hour: the rounds below are taken by hand and timed.
const test = await startTestPlane({ machines: { sensorSampleEveryMs: 3_600_000 } });
try {
  const { connections, inventory, sensorSampler } = test.plane;
  const redfishSims = farms.flatMap((farm) => farm.sims);
  const discoveryStart = performance.now();
  const cpuStart = process.cpuUsage();
  await Promise.all([
    ...redfishSims.map((sim, i) =>
      connections.add(
        {
          name: `bmc-redfish-${i}`,
          type: 'redfish',
          settings: { url: sim.url, username: sim.username, thumbprint: sim.thumbprint },
          secret: sim.password,
        },
        { waitForSync: true },
      ),
    ),
    ...ipmiBmcs.map((bmc, i) =>
      connections.add(
        {
          name: `bmc-ipmi-${i}`,
          type: 'ipmi',
          settings: { host: bmc.host, port: bmc.port, username: bmc.username },
          secret: bmc.password,
        },
        { waitForSync: true },
      ),
    ),
  ]);
  const machines = inventory.index
    .ofKind('host')
    .filter((host) => typeof host.facts['bmc.protocol'] === 'string' && host.status === 'present');
  const discoveryMs = performance.now() - discoveryStart;
  const discoveryCpu = process.cpuUsage(cpuStart);
  console.log(
    `discovery: ${machines.length} machines from ${redfishCount + ipmiCount} BMCs (added at once, each synced) in ${(discoveryMs / 1000).toFixed(2)} s; control-plane CPU ${((discoveryCpu.user + discoveryCpu.system) / 1000).toFixed(0)} ms`,
  );
  if (machines.length !== redfishCount + ipmiCount)
    throw new Error(`expected ${redfishCount + ipmiCount} machines, found ${machines.length}`);

  // Sensor rounds: every machine read (8 BMCs at once), the samples written in one batch.
  await sensorSampler.sampleOnce(); // warm up (Redfish sessions, connections)
  const walls: number[] = [];
  const cpus: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const cpu = process.cpuUsage();
    const start = performance.now();
    const round = await sensorSampler.sampleOnce(120_000);
    walls.push(performance.now() - start);
    const used = process.cpuUsage(cpu);
    cpus.push((used.user + used.system) / 1000);
    if (round.written !== machines.length || round.failed > 0)
      throw new Error(`round ${r}: ${JSON.stringify(round)}`);
  }
  const mean = (list: number[]) => list.reduce((a, b) => a + b, 0) / list.length;
  const sorted = [...walls].sort((a, b) => a - b);
  console.log(
    `sensor round (${machines.length} machines, 8 at once, ${rounds} rounds): wall mean ${mean(walls).toFixed(0)} ms, p50 ${sorted[Math.floor(sorted.length / 2)]!.toFixed(0)}, max ${sorted.at(-1)!.toFixed(0)}; control-plane CPU ${mean(cpus).toFixed(0)} ms per round`,
  );
  console.log(
    `per BMC: ${(mean(walls) / machines.length).toFixed(1)} ms of a round's wall time, ${(mean(cpus) / machines.length).toFixed(2)} ms CPU in the control plane (ipmitool's processes not counted)`,
  );
} finally {
  await test.close();
  for (const farm of farms) farm.child.stdin!.end();
  await Promise.all(farms.map((farm) => once(farm.child, 'exit')));
  await Promise.all(ipmiBmcs.map((bmc) => bmc.stop()));
}
