/**
 * The machine calls of the public API (src/api/machines.ts): a host's machine, its sensors now and
 * their history, the energy it drew, and the BMC actions, each answering a task. A host id may name the machine or the hypervisor host
 * linked to it; the console passes the id of the page it is on.
 */
import type { Static } from 'typebox';
import type {
  machineBootDevices,
  MachineEnergyView,
  MachineSensor as MachineSensorSchema,
  MachinePowerAction,
  MachineView,
  SensorHistoryView,
  SensorPoint,
} from '../../../src/api/machines.ts';
import type { ApiClient } from './client.ts';
import type { TaskDetail } from './vm-types.ts';

export type { MachineEnergyView, MachinePowerAction, MachineView, SensorHistoryView, SensorPoint };
export type MachineSensor = Static<typeof MachineSensorSchema>;
export type MachineBootDevice = (typeof machineBootDevices)[number];

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
  range: { from: number; to: number; stepSeconds: number },
  signal?: AbortSignal,
): Promise<SensorHistoryView> {
  const params = new URLSearchParams({
    from: String(range.from),
    to: String(range.to),
    step: String(range.stepSeconds),
  });
  return client.call(
    'GET',
    `${hostPath(hostId)}/sensors/history?${params.toString()}`,
    undefined,
    signal,
  );
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
