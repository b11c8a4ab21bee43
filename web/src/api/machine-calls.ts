/**
 * The machine calls of the public API (src/api/machines.ts): a host's machine, its sensors now and
 * their history, the energy it drew, the BMC actions (each answering a task), and linking a machine
 * to the hypervisor host on it by hand. A host id may name the machine or the hypervisor host
 * linked to it; the console passes the id of the page it is on.
 */
import type { Static } from 'typebox';
import type {
  machineBootDevices,
  MachineEnergyView,
  MediaImageScheme,
  MachineSensor as MachineSensorSchema,
  MachinePowerAction,
  MachineView,
  SensorHistoryView,
  SensorPoint,
} from '../../../src/api/machines.ts';
import { historyOf, type ApiClient, type HistoryRange } from './client.ts';
import type { ManagedObject, Page } from './types.ts';
import type { TaskDetail } from './vm-types.ts';

export type { MachineEnergyView, MachinePowerAction, MachineView, SensorHistoryView, SensorPoint };
export type MachineSensor = Static<typeof MachineSensorSchema>;
export type MachineBootDevice = (typeof machineBootDevices)[number];

/** The schemes the API takes for an image URL: a record, so a scheme the contract adds is missed here. */
const imageSchemeSet: Record<MediaImageScheme, true> = {
  http: true,
  https: true,
  nfs: true,
  cifs: true,
};
const imageSchemes = Object.keys(imageSchemeSet);
/** As long as the API takes (src/api/machines.ts mediaImageMaxLength). */
const imageMaxLength = 2048;

/**
 * Why an image URL would be refused, in words, or null when the API takes it: it starts with one
 * of the schemes the BMC fetches from, names a server, and is not too long.
 */
export function imageUrlProblem(text: string): string | null {
  const prefixes = imageSchemes.map((scheme) => `${scheme}://`);
  const schemes = `${prefixes.slice(0, -1).join(', ')} or ${prefixes.at(-1)}`;
  const example = 'e.g. https://images.example/installer.iso';
  if (text.trim() === '') return `Enter the URL the BMC fetches the image from (${example}).`;
  if (text !== text.trim()) return 'The URL has spaces before or after it.';
  if (text.length > imageMaxLength) return `The URL is longer than ${imageMaxLength} characters.`;
  const scheme = /^([a-z]+):\/\//.exec(text)?.[1];
  if (!scheme || !imageSchemes.includes(scheme))
    return `The URL must start with ${schemes} (${example}).`;
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return `This is not a URL (${example}).`;
  }
  if (url.hostname === '') return `The URL names no server (${example}).`;
  return null;
}

const hostPath = (id: string) => `/hosts/${encodeURIComponent(id)}`;

export function machineOf(
  client: ApiClient,
  hostId: string,
  signal?: AbortSignal,
): Promise<MachineView> {
  return client.call('GET', `${hostPath(hostId)}/machine`, undefined, signal);
}

export async function sensorsOf(
  client: ApiClient,
  hostId: string,
  signal?: AbortSignal,
): Promise<MachineSensor[]> {
  const answer = await client.call<{ machineId: string; sensors: MachineSensor[] }>(
    'GET',
    `${hostPath(hostId)}/sensors`,
    undefined,
    signal,
  );
  return answer.sensors;
}

/** Chart points of `stepSeconds` over [from, to): average watts, highest °C, average RPM. */
export function sensorHistoryOf(
  client: ApiClient,
  hostId: string,
  range: HistoryRange,
  signal?: AbortSignal,
): Promise<SensorHistoryView> {
  return historyOf(client, `${hostPath(hostId)}/sensors/history`, range, signal);
}

/** The energy drawn over [from, to) and how much of it the samples cover. */
export function energyOf(
  client: ApiClient,
  hostId: string,
  range: { from: number; to: number },
  signal?: AbortSignal,
): Promise<MachineEnergyView> {
  const params = new URLSearchParams({ from: String(range.from), to: String(range.to) });
  return client.call('GET', `${hostPath(hostId)}/energy?${params.toString()}`, undefined, signal);
}

export function powerMachine(
  client: ApiClient,
  hostId: string,
  action: MachinePowerAction,
): Promise<TaskDetail> {
  return client.call('POST', `${hostPath(hostId)}/power`, { action });
}

export function bootMachineOnce(
  client: ApiClient,
  hostId: string,
  device: MachineBootDevice,
): Promise<TaskDetail> {
  return client.call('POST', `${hostPath(hostId)}/boot`, { device });
}

export function identifyMachine(
  client: ApiClient,
  hostId: string,
  on: boolean,
): Promise<TaskDetail> {
  return client.call('POST', `${hostPath(hostId)}/identify`, { on });
}

export function fenceMachine(client: ApiClient, hostId: string): Promise<TaskDetail> {
  return client.call('POST', `${hostPath(hostId)}/fence`);
}

/** Inserts the image (a URL the BMC fetches) into the machine's virtual CD. */
export function insertMachineMedia(
  client: ApiClient,
  hostId: string,
  image: string,
): Promise<TaskDetail> {
  return client.call('POST', `${hostPath(hostId)}/media`, { image });
}

export function ejectMachineMedia(client: ApiClient, hostId: string): Promise<TaskDetail> {
  return client.call('DELETE', `${hostPath(hostId)}/media`);
}

/** Links the machine to the hypervisor host running on it (by hand). */
export function linkMachine(
  client: ApiClient,
  machineId: string,
  hostId: string,
): Promise<MachineView> {
  return client.call('PUT', `${hostPath(machineId)}/machine-link`, { hostId });
}

/** Unlinks the machine from its hypervisor host (either id); Zenith will not link them again. */
export function unlinkMachine(client: ApiClient, hostId: string): Promise<MachineView> {
  return client.call('DELETE', `${hostPath(hostId)}/machine-link`);
}

/** How many hosts the link dialog offers at most (more are named in a note, not listed). */
export const linkableLimit = 500;

/**
 * The hosts a machine may be linked to: present hypervisor hosts, neither a machine (a host a BMC
 * connection discovered) nor linked to one already.
 */
export async function linkableHosts(
  client: ApiClient,
  signal?: AbortSignal,
): Promise<{ hosts: ManagedObject[]; more: boolean }> {
  const page = await client.call<Page<ManagedObject>>(
    'GET',
    `/hosts?limit=${linkableLimit}&sort=name&filter=status=present`,
    undefined,
    signal,
  );
  return {
    hosts: page.items.filter(
      (host) =>
        host.facts['bmc.protocol'] === undefined && typeof host.computed['machine.id'] !== 'string',
    ),
    more: page.nextCursor !== null,
  };
}
