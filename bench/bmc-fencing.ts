/**
 * BMCs: what one call costs and how long fencing takes, for both protocols.
 * - IPMI: ipmitool against ipmi_sim (a process and an RMCP+ session per call);
 * - Redfish: RedfishClient against the Redfish simulator (one HTTPS session,
 *   kept-alive connections), and a fresh client per call (login included);
 * - fencing: power-off request → power state read back as off, each BMC
 *   powering a real process (killed with its process group on power-off).
 *
 *   node --import tsx bench/bmc-fencing.ts [--calls 30] [--fences 10]
 */
import { parseArgs } from 'node:util';
import { IpmiClient } from '../src/protocols/ipmi/ipmi-client.js';
import { RedfishClient } from '../src/protocols/redfish/redfish-client.js';
import { startIpmiBmc } from '../src/testing/ipmi-bmc.js';
import { MachineProcess } from '../src/testing/machine-process.js';
import { startRedfishSimulator } from '../src/testing/redfish-simulator.js';

const { values } = parseArgs({
  options: {
    calls: { type: 'string', default: '30' },
    fences: { type: 'string', default: '10' },
  },
});
const calls = Number(values.calls);
const fences = Number(values.fences);

const quantile = (sorted: number[], q: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN;
const summary = (samples: number[], digits = 1) => {
  const sorted = [...samples].sort((a, b) => a - b);
  const mean = samples.reduce((a, b) => a + b, 0) / samples.length;
  const f = (n: number) => n.toFixed(digits);
  return `mean ${f(mean)} ms, p50 ${f(quantile(sorted, 0.5))}, p95 ${f(quantile(sorted, 0.95))}, max ${f(sorted.at(-1) ?? NaN)} (n=${samples.length})`;
};
const timed = async (work: () => Promise<unknown>) => {
  const start = process.hrtime.bigint();
  await work();
  return Number(process.hrtime.bigint() - start) / 1e6;
};
const repeat = async (n: number, work: () => Promise<unknown>) => {
  const samples: number[] = [];
  for (let i = 0; i < n; i++) samples.push(await timed(work));
  return samples;
};

async function ipmi(): Promise<void> {
  const bmc = await startIpmiBmc();
  try {
    const client = new IpmiClient({
      host: bmc.host,
      port: bmc.port,
      username: bmc.username,
      password: bmc.password,
    });
    await client.powerState();
    console.log(
      `IPMI  power status (ipmitool, one process per call): ${summary(await repeat(calls, () => client.powerState()))}`,
    );
    console.log(
      `IPMI  sdr elist full (3 sensors): ${summary(await repeat(Math.ceil(calls / 3), () => client.sensors()))}`,
    );
    const fenceTimes: number[] = [];
    for (let i = 0; i < fences; i++) {
      await client.powerOn();
      const result = await client.fence({ pollIntervalMs: 100 });
      fenceTimes.push(result.elapsedMs);
    }
    console.log(
      `IPMI  fence (off request → read back off, poll 100 ms): ${summary(fenceTimes, 0)}`,
    );
  } finally {
    await bmc.stop();
  }
}

async function redfish(): Promise<void> {
  const machine = new MachineProcess();
  await machine.start();
  const sim = await startRedfishSimulator({
    hooks: { powerOn: () => machine.start(), powerOff: () => machine.stop() },
  });
  try {
    const options = {
      url: sim.url,
      username: sim.username,
      password: sim.password,
      tls: { thumbprint: sim.thumbprint },
    };
    const client = await RedfishClient.connect(options);
    const [system] = await client.systems();
    const uri = system!.uri;
    await repeat(20, () => client.powerState(uri)); // warm up
    console.log(
      `Redfish GET system (one session, kept-alive HTTPS): ${summary(await repeat(calls * 10, () => client.powerState(uri)), 2)}`,
    );
    console.log(
      `Redfish connect + login + GET system + logout (a fresh client per call): ${summary(
        await repeat(calls, async () => {
          const fresh = await RedfishClient.connect(options);
          await fresh.powerState(uri);
          await fresh.close();
        }),
        2,
      )}`,
    );
    console.log(
      `Redfish sensors (chassis, Thermal, Power): ${summary(await repeat(calls, () => client.sensors()), 2)}`,
    );
    const fenceTimes: number[] = [];
    for (let i = 0; i < fences; i++) {
      await client.reset(uri, 'On');
      const result = await client.fence(uri, { pollIntervalMs: 100 });
      fenceTimes.push(result.elapsedMs);
    }
    console.log(`Redfish fence (ForceOff → read back Off, poll 100 ms): ${summary(fenceTimes, 1)}`);
    await client.close();
  } finally {
    await sim.close();
    await machine.stop();
  }
}

await ipmi();
await redfish();
