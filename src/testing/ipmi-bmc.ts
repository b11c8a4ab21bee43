/**
 * A BMC for the IPMI tests: OpenIPMI's ipmi_sim (Debian openipmi), a real
 * IPMI 2.0 LAN peer, on 127.0.0.1 and a free UDP port, with one admin user,
 * FRU data (vendor, model, serial), a system GUID, and three sensors (a
 * temperature, a fan and the power draw) whose values ipmi_sim reads each
 * second from files the test writes (setSensors).
 *
 * Its chassis control script powers a "machine": power-on starts
 * `machineCommand` in its own session and process group, power-off kills that
 * whole group with SIGKILL, so a test sees power by the process being there or
 * gone. Any long-running command works; a physical host is a zenith agent in
 * its own PID and network namespace (./physical-hosts.ts gives the command:
 * ip netns exec NS unshare --pid --fork --kill-child --mount-proc node … agent;
 * without --kill-child, killing unshare leaves the namespace's processes
 * alive). In 'liar' mode the script accepts power-off and keeps
 * the machine running, as a broken BMC might.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { processAlive } from '../core/process.js';
import { freeUdpPort } from './ports.js';

export interface IpmiBmcOptions {
  username?: string;
  password?: string;
  /** Default: a process that sleeps forever. */
  machineCommand?: string[];
  /** Start with the machine on (default true). */
  poweredOn?: boolean;
  sensors?: Partial<SensorValues>;
  fru?: { vendor: string; model: string; serial: string };
}

export interface SensorValues {
  temperatureC: number;
  /** Whole multiples of 2 (the SDR's M is 2). */
  watts: number;
  /** Whole multiples of 100 (the SDR's M is 100). */
  fanRpm: number;
}

export interface IpmiBmc {
  host: string;
  port: number;
  username: string;
  password: string;
  /** The system GUID the BMC reports (lower case, dashed). */
  guid: string;
  fru: { vendor: string; model: string; serial: string };
  /** The machine's process id while it runs (its process group id too). */
  machinePid(): Promise<number | undefined>;
  /**
   * The boot device last set through the BMC in ipmi_sim's words (pxe, default for the hard
   * disk, cdrom, bios), or 'none'.
   */
  bootDevice(): Promise<string>;
  /** Every chassis control call, in order ('set power 0', 'get power', …). */
  chassisCalls(): Promise<string[]>;
  setSensors(values: Partial<SensorValues>): Promise<void>;
  setLiar(liar: boolean): Promise<void>;
  stop(): Promise<void>;
}

const chassisScript = `#!/bin/sh
# Chassis control of a test BMC (src/testing/ipmi-bmc.ts); ipmi_sim runs it.
D="$(dirname "$0")"
echo "$*" >> "$D/calls.log"
# Alive: exists and is not a zombie (a killed machine waits for whoever adopted it to reap it).
alive() { kill -0 "$1" 2>/dev/null && [ "$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -c1)" != Z ]; }
running() { [ -f "$D/machine.pid" ] && alive "$(cat "$D/machine.pid")"; }
start() {
  running && return 0
  setsid "$D/machine" </dev/null >>"$D/machine.log" 2>&1 &
  echo $! > "$D/machine.pid"
}
stop() {
  [ -f "$D/liar" ] && return 0
  if running; then
    pid="$(cat "$D/machine.pid")"
    kill -9 -- "-$pid" 2>/dev/null || kill -9 "$pid" 2>/dev/null
    n=0; while alive "$pid" && [ $n -lt 50 ]; do sleep 0.02; n=$((n+1)); done
  fi
  rm -f "$D/machine.pid"
}
op="$1"; shift
while [ $# -gt 0 ]; do
  item="$1"; shift
  if [ "$op" = get ]; then
    case "$item" in
      power) if running; then echo "power:1"; else echo "power:0"; fi ;;
      boot) echo "boot:$(cat "$D/boot" 2>/dev/null || echo none)" ;;
    esac
  else
    value="$1"; shift
    case "$item" in
      power) if [ "$value" = 1 ]; then start; else stop; fi ;;
      shutdown) stop ;;
      reset) stop; start ;;
      boot) echo "$value" > "$D/boot" ;;
      identify) echo "$value $*" > "$D/identify"; shift $# ;;
    esac
  fi
done
exit 0
`;

/** A full sensor record (SDR type 01h) with a linear reading of M × raw (IPMI 2.0 §43.1). */
function fullSensorRecord(
  recordId: number,
  sensor: { number: number; entity: number; type: number; unit: number; m: number; name: string },
): number[] {
  const name = [...Buffer.from(sensor.name, 'ascii')];
  // prettier-ignore
  const body = [
    0x20, 0x00, sensor.number, // owner (the BMC), LUN, sensor number
    sensor.entity, 0x01, // entity id and instance
    0x7f, 0x40, // initialisation: scanning and events on; capabilities: auto re-arm, no thresholds
    sensor.type, 0x01, // sensor type; event/reading type: threshold
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // event masks
    0x00, sensor.unit, 0x00, // unsigned readings; base unit; no modifier unit
    0x00, // linear
    sensor.m & 0xff, (sensor.m >> 8) & 0x03, // M (10 bits), tolerance
    0x00, 0x00, 0x00, // B = 0, accuracy
    0x00, // R and B exponents 0
    0x00, 0x00, 0xff, 0x00, 0xff, 0x00, // flags, nominal, normal max/min, sensor max/min
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // thresholds (none)
    0x00, 0x00, 0x00, 0x00, 0x00, // hysteresis, reserved, OEM
    0xc0 | name.length, ...name,
  ];

  return [recordId & 0xff, recordId >> 8, 0x51, 0x01, body.length, ...body];
}

/** FRU data with one product info area (IPMI Platform Management FRU Information Storage Definition). */
function fruData(fru: { vendor: string; model: string; serial: string }): number[] {
  const field = (text: string) => {
    const bytes = [...Buffer.from(text, 'latin1')].slice(0, 63);
    return [0xc0 | bytes.length, ...bytes];
  };
  const fields = [
    ...field(fru.vendor),
    ...field(fru.model),
    ...field(`${fru.model}-PN`), // part number
    ...field('1.0'), // version
    ...field(fru.serial),
    ...field(''), // asset tag
    ...field(''), // FRU file id
    0xc1,
  ];
  const area = [0x01, 0x00, 0x00, ...fields];
  while ((area.length + 1) % 8 !== 0) area.push(0x00);
  area[1] = (area.length + 1) / 8;
  area.push(checksum(area));
  const header = [0x01, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00];
  header.push(checksum(header));
  return [...header, ...area];
}

function checksum(bytes: number[]): number {
  return (0x100 - (bytes.reduce((sum, b) => sum + b, 0) & 0xff)) & 0xff;
}

const hex = (bytes: number[]) => bytes.map((b) => `0x${b.toString(16).padStart(2, '0')}`).join(' ');

export async function startIpmiBmc(options: IpmiBmcOptions = {}): Promise<IpmiBmc> {
  const dir = await mkdtemp(join(tmpdir(), 'zenith-ipmi-bmc-'));
  const username = options.username ?? 'admin';
  const password = options.password ?? 'bmc-password';
  const guid = randomUUID();
  const fru = options.fru ?? {
    vendor: 'Zenith Simulated Hardware',
    model: 'ZS-2000',
    serial: `ZI${guid.slice(0, 8).toUpperCase()}`,
  };
  const sensors: SensorValues = { temperatureC: 38, watts: 200, fanRpm: 4800, ...options.sensors };
  const machine = options.machineCommand ?? ['sleep', 'infinity'];
  const quote = (arg: string) => `'${arg.replaceAll("'", `'\\''`)}'`;
  await writeFile(join(dir, 'chassis'), chassisScript);
  await writeFile(join(dir, 'machine'), `#!/bin/sh\nexec ${machine.map(quote).join(' ')}\n`);
  await chmod(join(dir, 'chassis'), 0o755);
  await chmod(join(dir, 'machine'), 0o755);
  const writeSensors = async (values: Partial<SensorValues>) => {
    Object.assign(sensors, values);
    await writeFile(join(dir, 'temperature'), `${Math.round(sensors.temperatureC)}\n`);
    await writeFile(join(dir, 'watts'), `${Math.round(sensors.watts)}\n`);
    await writeFile(join(dir, 'fan'), `${Math.round(sensors.fanRpm)}\n`);
  };
  await writeSensors({});
  const sensorLines = [
    {
      number: 1,
      entity: 0x03,
      type: 0x01,
      unit: 1,
      m: 1,
      name: 'CPU Temp',
      file: 'temperature',
      div: 1,
    },
    {
      number: 2,
      entity: 0x15,
      type: 0x03,
      unit: 6,
      m: 2,
      name: 'Pwr Consumption',
      file: 'watts',
      div: 2,
    },
    { number: 3, entity: 0x1d, type: 0x04, unit: 18, m: 100, name: 'Fan1', file: 'fan', div: 100 },
  ].flatMap((s) => [
    `sensor_add 0x20 0 ${s.number} 0x${s.type.toString(16)} 0x01 poll 1000 file "${join(dir, s.file)}"${s.div > 1 ? ` div=${s.div}` : ''}`,
    `main_sdr_add 0x20 ${hex(fullSensorRecord(s.number, s))}`,
    `sensor_set_event_support 0x20 0 ${s.number} enable scanning per-state 000000000000000 000000000000000 000000000000000 000000000000000`,
  ]);
  const fruBytes = fruData(fru);
  await writeFile(
    join(dir, 'bmc.emu'),
    [
      'mc_setbmc 0x20',
      'mc_add 0x20 0 no-device-sdrs 0x23 0x02 0x31 0x9f 0x1291 0xf02 persist_sdr',
      'sel_enable 0x20 1000 0x0a',
      `mc_add_fru_data 0x20 0 0x${fruBytes.length.toString(16)} data ${hex(fruBytes)}`,
      ...sensorLines,
      'mc_enable 0x20',
      '',
    ].join('\n'),
  );
  const port = await freeUdpPort();
  const auths = 'none md2 md5 straight';
  await writeFile(
    join(dir, 'lan.conf'),
    [
      'name "zenith-test-bmc"',
      'set_working_mc 0x20',
      '  startlan 1',
      `    addr 127.0.0.1 ${port}`,
      '    priv_limit admin',
      ...['callback', 'user', 'operator', 'admin'].map((p) => `    allowed_auths_${p} ${auths}`),
      // IPMI sends the GUID with its 16 bytes reversed (IPMI 2.0 §20.8); ipmitool turns it back.
      `    guid ${Buffer.from(guid.replaceAll('-', ''), 'hex').reverse().toString('hex')}`,
      '  endlan',
      `  chassis_control "${join(dir, 'chassis')}"`,
      `  user 2 true "${username}" "${password}" admin 10 ${auths}`,
      '',
    ].join('\n'),
  );
  await mkdir(join(dir, 'state'));
  if (options.poweredOn !== false) await runChassis(dir, ['set', 'power', '1']);

  // ipmi_sim runs under a keeper shell that ends it, and powers its machine off, when its stdin
  // closes: when stop() closes it, and when the test process dies without stopping it.
  await writeFile(
    join(dir, 'keeper'),
    [
      '#!/bin/sh',
      'exec 3<&0',
      'ipmi_sim "$@" </dev/null &',
      'sim=$!',
      // Its own messages must not kill it once the test process (and so the pipe) is gone.
      "trap '' PIPE HUP",
      'exec 2>/dev/null',
      '{ read -r _ <&3; kill -9 "$sim" 2>/dev/null; } &',
      'wait "$sim"',
      'status=$?',
      `"${join(dir, 'chassis')}" set power 0`,
      'exit $status',
      '',
    ].join('\n'),
  );
  await chmod(join(dir, 'keeper'), 0o755);
  const child: ChildProcess = spawn(
    join(dir, 'keeper'),
    ['-c', join(dir, 'lan.conf'), '-f', join(dir, 'bmc.emu'), '-s', join(dir, 'state'), '-n'],
    { stdio: ['pipe', 'ignore', 'pipe'] },
  );
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  await new Promise<void>((resolve, reject) => {
    child.once('error', (error) =>
      reject(new Error(`the ipmi_sim keeper did not start: ${error.message}`)),
    );
    child.once('spawn', () => resolve());
  });
  await waitForUdpListener(port, child, () => stderr);

  const machinePid = async () => {
    try {
      const pid = Number((await readFile(join(dir, 'machine.pid'), 'utf8')).trim());
      return pid > 0 && processAlive(pid) ? pid : undefined;
    } catch {
      return undefined;
    }
  };
  return {
    host: '127.0.0.1',
    port,
    username,
    password,
    guid,
    fru,
    machinePid,
    bootDevice: async () => {
      try {
        return (await readFile(join(dir, 'boot'), 'utf8')).trim();
      } catch {
        return 'none';
      }
    },
    chassisCalls: async () => {
      try {
        return (await readFile(join(dir, 'calls.log'), 'utf8')).split('\n').filter(Boolean);
      } catch {
        return [];
      }
    },
    setSensors: writeSensors,
    setLiar: async (liar) => {
      if (liar) await writeFile(join(dir, 'liar'), '');
      else await rm(join(dir, 'liar'), { force: true });
    },
    stop: async () => {
      await rm(join(dir, 'liar'), { force: true });
      if (child.exitCode === null && child.signalCode === null) {
        child.stdin?.end(); // the keeper kills ipmi_sim and powers the machine off
        await exited;
      } else await runChassis(dir, ['set', 'power', '0']);
      await rm(dir, { recursive: true, force: true });
    },
  };
}

function runChassis(dir: string, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(join(dir, 'chassis'), args, { stdio: 'ignore' });
    child.once('error', reject);
    child.once('exit', () => resolve());
  });
}

/**
 * ipmi_sim binds its UDP port after reading its files. The kernel's table of UDP sockets says when
 * it does: a probe that bound the port itself could take it in the very moment ipmi_sim asks for it.
 */
async function waitForUdpListener(
  port: number,
  child: ChildProcess,
  stderr: () => string,
): Promise<void> {
  const deadline = Date.now() + 10_000;
  const local = `:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null)
      throw new Error(`ipmi_sim exited at start: ${stderr()}`);
    const table = await readFile('/proc/net/udp', 'utf8');
    // Each line: "sl local_address rem_address st …", the address as hex IP:PORT.
    if (table.split('\n').some((line) => line.trim().split(/\s+/)[1]?.endsWith(local))) return;
    if (Date.now() > deadline) throw new Error(`ipmi_sim does not listen on ${port}: ${stderr()}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
