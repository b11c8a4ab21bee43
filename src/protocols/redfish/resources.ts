/**
 * Redfish resources read into plain values (DMTF schemas ComputerSystem,
 * Processor, Memory, EthernetInterface, Storage/Drive, Manager, VirtualMedia,
 * Thermal, Power). Pure: the client fetches the documents, these functions
 * check the fields they use and refuse a document that lacks a required one
 * with REDFISH_PROTOCOL_ERROR. Optional fields stay undefined when absent —
 * BMCs differ in what they fill in.
 */
import { ZenithError } from '../../core/errors.js';

export type JsonObject = Record<string, unknown>;

export type PowerState = 'On' | 'Off' | 'PoweringOn' | 'PoweringOff' | 'Paused';
export type Health = 'OK' | 'Warning' | 'Critical';
export type ResetType =
  | 'On'
  | 'ForceOff'
  | 'GracefulShutdown'
  | 'GracefulRestart'
  | 'ForceRestart'
  | 'Nmi'
  | 'ForceOn'
  | 'PushPowerButton'
  | 'PowerCycle';
/** Redfish BootSourceOverrideTarget values Zenith uses. */
export type BootTarget = 'Pxe' | 'Hdd' | 'Cd' | 'BiosSetup';

export interface SystemSummary {
  uri: string;
  id: string;
  /** The host name the system's operating system reported, where the BMC knows it. */
  hostName?: string;
  vendor?: string;
  model?: string;
  serial?: string;
  /** The SMBIOS UUID, lower case. */
  uuid?: string;
  biosVersion?: string;
  powerState?: PowerState;
  health?: Health;
  processorCount?: number;
  processorModel?: string;
  memoryGiB?: number;
  boot: { enabled?: string; target?: string; allowedTargets: string[] };
  resetTypes: ResetType[];
  resetTarget?: string;
  indicator: { led?: string; locationActive?: boolean };
  /** The chassis it is in and the managers (BMCs) that manage it (Links), where the BMC says. */
  chassisUris: string[];
  managerUris: string[];
}

export interface ProcessorInfo {
  id: string;
  model?: string;
  cores?: number;
  threads?: number;
}
export interface MemoryModule {
  id: string;
  capacityMiB?: number;
  type?: string;
}
export interface NicInfo {
  id: string;
  mac?: string;
  speedMbps?: number;
  linkUp?: boolean;
}
export interface DiskInfo {
  id: string;
  name?: string;
  model?: string;
  serial?: string;
  capacityBytes?: number;
  media?: string;
}

export interface ManagerSummary {
  uri: string;
  id: string;
  firmwareVersion?: string;
  model?: string;
  virtualMediaUri?: string;
}

export interface VirtualMediaInfo {
  uri: string;
  id: string;
  mediaTypes: string[];
  inserted: boolean;
  image?: string;
  insertTarget?: string;
  ejectTarget?: string;
}

export interface SensorReading {
  name: string;
  kind: 'temperature' | 'fan' | 'power';
  value: number;
  /** Cel, RPM or W. */
  unit: string;
}

export function asObject(value: unknown, where: string): JsonObject {
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw invalid(where, 'is not a JSON object');
  return value as JsonObject;
}

export function requiredString(doc: JsonObject, key: string, where: string): string {
  const value = doc[key];
  if (typeof value !== 'string') throw invalid(where, `lacks the string ${key}`);
  return value;
}

function optionalString(doc: JsonObject | undefined, key: string): string | undefined {
  const value = doc?.[key];
  return typeof value === 'string' && value.trim() !== '' ? value.trim() : undefined;
}

function optionalNumber(doc: JsonObject | undefined, key: string): number | undefined {
  const value = doc?.[key];
  return typeof value === 'number' && Number.isFinite(value) ? value : undefined;
}

function optionalObject(doc: JsonObject | undefined, key: string): JsonObject | undefined {
  const value = doc?.[key];
  return typeof value === 'object' && value !== null && !Array.isArray(value)
    ? (value as JsonObject)
    : undefined;
}

/** The @odata.id of a link object ({ "@odata.id": "/redfish/v1/…" }), if there is one. */
export function linkOf(doc: JsonObject | undefined, key: string): string | undefined {
  return optionalString(optionalObject(doc, key), '@odata.id');
}

/** The member URIs of a collection. */
/** The @odata.id of each entry of an array of links (missing or malformed entries left out). */
export function linkList(doc: JsonObject | undefined, key: string): string[] {
  const value = doc?.[key];
  if (!Array.isArray(value)) return [];
  return value
    .map((entry) => (entry as Record<string, unknown> | null)?.['@odata.id'])
    .filter((id): id is string => typeof id === 'string');
}

export function collectionMembers(value: unknown, where: string): string[] {
  const doc = asObject(value, where);
  const members = doc.Members;
  if (!Array.isArray(members)) throw invalid(where, 'is not a collection (no Members array)');
  return members.map((member, index) =>
    requiredString(asObject(member, `${where} member ${index}`), '@odata.id', where),
  );
}

export function readSystem(value: unknown, uri: string): SystemSummary {
  const doc = asObject(value, uri);
  const id = requiredString(doc, 'Id', uri);
  const processors = optionalObject(doc, 'ProcessorSummary');
  const memory = optionalObject(doc, 'MemorySummary');
  const boot = optionalObject(doc, 'Boot');
  const reset = optionalObject(optionalObject(doc, 'Actions'), '#ComputerSystem.Reset');
  const allowedResets = reset?.['ResetType@Redfish.AllowableValues'];
  const allowedTargets = boot?.['BootSourceOverrideTarget@Redfish.AllowableValues'];
  const powerState = optionalString(doc, 'PowerState');
  const health = optionalString(optionalObject(doc, 'Status'), 'Health');
  const memoryGiB = optionalNumber(memory, 'TotalSystemMemoryGiB');
  const locationActive = doc.LocationIndicatorActive;
  const summary: SystemSummary = {
    uri,
    id,
    boot: {
      allowedTargets: Array.isArray(allowedTargets)
        ? allowedTargets.filter((t): t is string => typeof t === 'string')
        : [],
    },
    resetTypes: Array.isArray(allowedResets)
      ? allowedResets.filter((t): t is ResetType => typeof t === 'string')
      : [],
    indicator: {},
    chassisUris: linkList(optionalObject(doc, 'Links'), 'Chassis'),
    managerUris: linkList(optionalObject(doc, 'Links'), 'ManagedBy'),
  };
  assign(summary, 'hostName', optionalString(doc, 'HostName') || undefined);
  assign(summary, 'vendor', optionalString(doc, 'Manufacturer'));
  assign(summary, 'model', optionalString(doc, 'Model'));
  assign(summary, 'serial', optionalString(doc, 'SerialNumber'));
  assign(summary, 'uuid', optionalString(doc, 'UUID')?.toLowerCase());
  assign(summary, 'biosVersion', optionalString(doc, 'BiosVersion'));
  if (powerState && ['On', 'Off', 'PoweringOn', 'PoweringOff', 'Paused'].includes(powerState))
    summary.powerState = powerState as PowerState;
  if (health && ['OK', 'Warning', 'Critical'].includes(health)) summary.health = health as Health;
  assign(summary, 'processorCount', optionalNumber(processors, 'Count'));
  assign(summary, 'processorModel', optionalString(processors, 'Model'));
  assign(summary, 'memoryGiB', memoryGiB);
  assign(summary.boot, 'enabled', optionalString(boot, 'BootSourceOverrideEnabled'));
  assign(summary.boot, 'target', optionalString(boot, 'BootSourceOverrideTarget'));
  assign(summary, 'resetTarget', optionalString(reset, 'target'));
  assign(summary.indicator, 'led', optionalString(doc, 'IndicatorLED'));
  if (typeof locationActive === 'boolean') summary.indicator.locationActive = locationActive;
  return summary;
}

export function readProcessor(value: unknown, uri: string): ProcessorInfo {
  const doc = asObject(value, uri);
  const info: ProcessorInfo = { id: requiredString(doc, 'Id', uri) };
  assign(info, 'model', optionalString(doc, 'Model'));
  assign(info, 'cores', optionalNumber(doc, 'TotalCores'));
  assign(info, 'threads', optionalNumber(doc, 'TotalThreads'));
  return info;
}

export function readMemory(value: unknown, uri: string): MemoryModule {
  const doc = asObject(value, uri);
  const info: MemoryModule = { id: requiredString(doc, 'Id', uri) };
  assign(info, 'capacityMiB', optionalNumber(doc, 'CapacityMiB'));
  assign(info, 'type', optionalString(doc, 'MemoryDeviceType'));
  return info;
}

export function readNic(value: unknown, uri: string): NicInfo {
  const doc = asObject(value, uri);
  const info: NicInfo = { id: requiredString(doc, 'Id', uri) };
  const mac = optionalString(doc, 'MACAddress') ?? optionalString(doc, 'PermanentMACAddress');
  assign(info, 'mac', mac?.toLowerCase());
  assign(info, 'speedMbps', optionalNumber(doc, 'SpeedMbps'));
  const link = optionalString(doc, 'LinkStatus');
  if (link) info.linkUp = link === 'LinkUp';
  return info;
}

export function readDrive(value: unknown, uri: string): DiskInfo {
  const doc = asObject(value, uri);
  const info: DiskInfo = { id: requiredString(doc, 'Id', uri) };
  assign(info, 'name', optionalString(doc, 'Name'));
  assign(info, 'model', optionalString(doc, 'Model'));
  assign(info, 'serial', optionalString(doc, 'SerialNumber'));
  assign(info, 'capacityBytes', optionalNumber(doc, 'CapacityBytes'));
  assign(info, 'media', optionalString(doc, 'MediaType'));
  return info;
}

export function readManager(value: unknown, uri: string): ManagerSummary {
  const doc = asObject(value, uri);
  const info: ManagerSummary = { uri, id: requiredString(doc, 'Id', uri) };
  assign(info, 'firmwareVersion', optionalString(doc, 'FirmwareVersion'));
  assign(info, 'model', optionalString(doc, 'Model'));
  assign(info, 'virtualMediaUri', linkOf(doc, 'VirtualMedia'));
  return info;
}

export function readVirtualMedia(value: unknown, uri: string): VirtualMediaInfo {
  const doc = asObject(value, uri);
  const actions = optionalObject(doc, 'Actions');
  const types = doc.MediaTypes;
  const info: VirtualMediaInfo = {
    uri,
    id: requiredString(doc, 'Id', uri),
    mediaTypes: Array.isArray(types) ? types.filter((t): t is string => typeof t === 'string') : [],
    inserted: doc.Inserted === true,
  };
  assign(info, 'image', optionalString(doc, 'Image'));
  assign(
    info,
    'insertTarget',
    optionalString(optionalObject(actions, '#VirtualMedia.InsertMedia'), 'target'),
  );
  assign(
    info,
    'ejectTarget',
    optionalString(optionalObject(actions, '#VirtualMedia.EjectMedia'), 'target'),
  );
  return info;
}

/** Readings of a Thermal (Temperatures, Fans) or Power (PowerControl) resource. */
export function readThermalAndPower(thermal: unknown, power: unknown): SensorReading[] {
  const readings: SensorReading[] = [];
  const list = (doc: unknown, key: string): JsonObject[] => {
    if (doc === undefined) return [];
    const items = asObject(doc, key)[key];
    return Array.isArray(items)
      ? items.filter((i): i is JsonObject => typeof i === 'object' && i !== null)
      : [];
  };
  for (const t of list(thermal, 'Temperatures')) {
    const value = optionalNumber(t, 'ReadingCelsius');
    if (value !== undefined)
      readings.push({
        name: optionalString(t, 'Name') ?? 'temperature',
        kind: 'temperature',
        value,
        unit: 'Cel',
      });
  }
  for (const f of list(thermal, 'Fans')) {
    const value = optionalNumber(f, 'Reading');
    if (value !== undefined)
      readings.push({
        name: optionalString(f, 'Name') ?? optionalString(f, 'FanName') ?? 'fan',
        kind: 'fan',
        value,
        unit: optionalString(f, 'ReadingUnits') === 'Percent' ? '%' : 'RPM',
      });
  }
  for (const p of list(power, 'PowerControl')) {
    const value = optionalNumber(p, 'PowerConsumedWatts');
    if (value !== undefined)
      readings.push({
        name: optionalString(p, 'Name') ?? 'power',
        kind: 'power',
        value,
        unit: 'W',
      });
  }
  return readings;
}

/** Readings of the newer Sensors collection members (Sensor schema). */
export function readSensor(value: unknown, uri: string): SensorReading | undefined {
  const doc = asObject(value, uri);
  const reading = optionalNumber(doc, 'Reading');
  const type = optionalString(doc, 'ReadingType');
  if (reading === undefined) return undefined;
  const kind =
    type === 'Temperature'
      ? 'temperature'
      : type === 'Rotational'
        ? 'fan'
        : type === 'Power'
          ? 'power'
          : undefined;
  if (!kind) return undefined;
  return {
    name: optionalString(doc, 'Name') ?? requiredString(doc, 'Id', uri),
    kind,
    value: reading,
    unit: optionalString(doc, 'ReadingUnits') ?? '',
  };
}

function assign<T extends object, K extends keyof T>(target: T, key: K, value: T[K] | undefined) {
  if (value !== undefined) target[key] = value;
}

function invalid(where: string, why: string): ZenithError {
  return new ZenithError('REDFISH_PROTOCOL_ERROR', `${where} ${why}`, { path: where });
}
