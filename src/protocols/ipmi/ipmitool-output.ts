/**
 * Readers of ipmitool's text output (ipmitool 1.8.19, Debian 12). Pure: they
 * take what ipmitool printed and return plain values, or fail with
 * IPMI_OUTPUT_INVALID when the answer is not there.
 */
import { ZenithError } from '../../core/errors.js';

export type IpmiPower = 'on' | 'off';

export interface FruInfo {
  vendor?: string;
  model?: string;
  serial?: string;
  partNumber?: string;
}

export interface McInfo {
  firmwareVersion?: string;
  ipmiVersion?: string;
  manufacturerId?: number;
  manufacturerName?: string;
  productId?: number;
}

export interface IpmiSensor {
  name: string;
  /** The sensor number, e.g. 0x01 */
  number: number;
  status: string;
  kind: 'temperature' | 'fan' | 'power' | 'voltage' | 'current' | 'other';
  value: number;
  unit: string;
}

/** `chassis power status` → "Chassis Power is on". */
export function readPowerStatus(text: string): IpmiPower {
  const match = /Chassis Power is (on|off)/i.exec(text);
  if (!match) throw invalid('chassis power status', text);
  return match[1]!.toLowerCase() as IpmiPower;
}

/**
 * Get Chassis Status (IPMI 2.0 §28.2) as `raw 0x00 0x01` prints it (" 01 00 00 00": hex bytes
 * after the completion code). ipmitool's own `chassis status` does not show the identify state,
 * so the bytes are read: byte 1 bit 0 is the power; byte 3 bit 6 says whether the BMC reports
 * the identify state, bits 5–4 hold it (0 off, 1 timed on, 2 indefinite on).
 */
export interface ChassisStatus {
  power: IpmiPower;
  /** Absent where the BMC does not report it (bit 6 clear, as OpenIPMI's ipmi_sim answers). */
  identify?: 'off' | 'timed' | 'on';
}

export function readChassisStatus(text: string): ChassisStatus {
  const bytes = text
    .trim()
    .split(/\s+/)
    .map((cell) => (/^[0-9a-f]{2}$/i.test(cell) ? parseInt(cell, 16) : NaN));
  if (bytes.length < 3 || bytes.some(Number.isNaN)) throw invalid('raw 0x00 0x01', text);
  const [current, , misc] = bytes as [number, number, number];
  const status: ChassisStatus = { power: current & 0x01 ? 'on' : 'off' };
  if (misc & 0x40) {
    const state = (misc >> 4) & 0x03;
    if (state === 0) status.identify = 'off';
    else if (state === 1) status.identify = 'timed';
    else if (state === 2) status.identify = 'on';
  }
  return status;
}

/** `key : value` lines into a map (the first occurrence of a key wins). */
function fields(text: string): Map<string, string> {
  const map = new Map<string, string>();
  for (const line of text.split('\n')) {
    const index = line.indexOf(':');
    if (index < 0) continue;
    const key = line.slice(0, index).trim();
    const value = line.slice(index + 1).trim();
    if (key && value && !map.has(key)) map.set(key, value);
  }
  return map;
}

/** `fru print 0`: the product area, else the board area, else the chassis area. */
export function readFru(text: string): FruInfo {
  const f = fields(text);
  const pick = (...keys: string[]) => keys.map((k) => f.get(k)).find((v) => v !== undefined);
  const info: FruInfo = {};
  const vendor = pick('Product Manufacturer', 'Board Mfg');
  const model = pick('Product Name', 'Board Product');
  const serial = pick('Product Serial', 'Board Serial', 'Chassis Serial');
  const part = pick('Product Part Number', 'Board Part Number', 'Chassis Part Number');
  if (vendor) info.vendor = vendor;
  if (model) info.model = model;
  if (serial) info.serial = serial;
  if (part) info.partNumber = part;
  return info;
}

/** `mc info`. */
export function readMcInfo(text: string): McInfo {
  const f = fields(text);
  if (!f.has('Firmware Revision') && !f.has('IPMI Version')) throw invalid('mc info', text);
  const info: McInfo = {};
  const firmware = f.get('Firmware Revision');
  const version = f.get('IPMI Version');
  const manufacturerId = Number(f.get('Manufacturer ID'));
  const manufacturerName = f.get('Manufacturer Name');
  const productId = Number(/^(\d+)/.exec(f.get('Product ID') ?? '')?.[1] ?? NaN);
  if (firmware) info.firmwareVersion = firmware;
  if (version) info.ipmiVersion = version;
  if (Number.isFinite(manufacturerId)) info.manufacturerId = manufacturerId;
  if (manufacturerName && manufacturerName !== 'Unknown') info.manufacturerName = manufacturerName;
  if (Number.isFinite(productId)) info.productId = productId;
  return info;
}

/** `mc guid` → the system GUID, lower case. */
export function readGuid(text: string): string {
  const match = /System GUID\s*:\s*([0-9a-f-]{36})/i.exec(text);
  if (!match) throw invalid('mc guid', text);
  return match[1]!.toLowerCase();
}

/**
 * `sdr elist full`: "CPU Temp | 01h | ok | 3.1 | 47 degrees C". Sensors
 * without a reading ("no reading", "disabled") are left out.
 */
export function readSdr(text: string): IpmiSensor[] {
  const sensors: IpmiSensor[] = [];
  for (const line of text.split('\n')) {
    const cells = line.split('|').map((c) => c.trim());
    if (cells.length !== 5) continue;
    const [name, number, status, , reading] = cells as [string, string, string, string, string];
    const numberMatch = /^([0-9a-f]+)h$/i.exec(number);
    const readingMatch = /^(-?\d+(?:\.\d+)?)\s+(.+)$/.exec(reading);
    if (!numberMatch || !readingMatch) continue;
    const unit = readingMatch[2]!;
    sensors.push({
      name,
      number: parseInt(numberMatch[1]!, 16),
      status,
      kind: kindOf(unit),
      value: Number(readingMatch[1]),
      unit,
    });
  }
  return sensors;
}

function kindOf(unit: string): IpmiSensor['kind'] {
  const u = unit.toLowerCase();
  if (u.startsWith('degrees')) return 'temperature';
  if (u === 'rpm') return 'fan';
  if (u === 'watts') return 'power';
  if (u === 'volts') return 'voltage';
  if (u === 'amps') return 'current';
  return 'other';
}

function invalid(command: string, text: string): ZenithError {
  return new ZenithError(
    'IPMI_OUTPUT_INVALID',
    `ipmitool ${command} printed no answer it should have`,
    { command, output: text.slice(0, 300) },
  );
}
