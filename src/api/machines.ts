/**
 * Physical machines through their BMCs: a host's machine (hardware, BMC, link to the hypervisor
 * host on it), its sensors now, and power, boot device, virtual media, identify light and fencing
 * (each answers 202 with the task). A host id may name the machine itself (a host a redfish or
 * ipmi connection discovered) or the hypervisor host linked to it.
 */
import { Type, type Static } from 'typebox';
import { HistoryQuery, IdOrName, IdParams, StringEnum } from './common.js';
import { ManagedObjectView } from './inventory.js';
import { operation } from './operation.js';
import { TaskView } from './tasks.js';

export const machinePowerActions = ['on', 'shutdown', 'off', 'cycle', 'reset'] as const;
export type MachinePowerAction = (typeof machinePowerActions)[number];
export const machineBootDevices = ['pxe', 'disk', 'cdrom', 'bios'] as const;
/** The URL schemes of an image a BMC fetches into its virtual CD (Redfish TransferProtocolType). */
export const mediaImageSchemes = ['http', 'https', 'nfs', 'cifs'] as const;
export type MediaImageScheme = (typeof mediaImageSchemes)[number];
export const mediaImageMaxLength = 2048;

export const MachineLinkView = Type.Object({
  machineId: Type.String(),
  /** The hypervisor host on the machine; null: an operator said none (bare metal). */
  hostId: Type.Union([Type.String(), Type.Null()]),
  /** What linked them: smbiosUuid, serial or mac (found by Zenith), or manual. */
  how: StringEnum(['smbiosUuid', 'serial', 'mac', 'manual']),
  linkedBy: Type.String(),
  at: Type.Number(),
});

export const MachineView = Type.Object({
  /**
   * The machine as its BMC sees it: hardware.* facts, power, health, and the polled bmc.identify
   * (on, blinking, off; bmc.identifySource bmc or zenith), bmc.media.inserted and bmc.media.image.
   */
  machine: ManagedObjectView,
  /** The hypervisor host running on it; null while it is bare metal. */
  hostId: Type.Union([Type.String(), Type.Null()]),
  link: Type.Union([MachineLinkView, Type.Null()]),
  /** What its BMC can do: machine.power, machine.boot, machine.media, machine.identify, machine.fence. */
  capabilities: Type.Array(Type.String()),
});
export type MachineView = Static<typeof MachineView>;

export const MachineSensor = Type.Object({
  name: Type.String(),
  kind: StringEnum(['temperature', 'fan', 'power']),
  value: Type.Number(),
  /** Cel, RPM or W. */
  unit: Type.String(),
});

/** No BMC known for the host (409 ZEN_NO_BMC), the BMC cannot (422), the BMC failed (502, 504). */
const machineErrors = [404, 409, 422, 502, 504] as const;
const refusedBeforeQueued = [404, 409, 422] as const;

export const getMachine = operation({
  method: 'GET',
  path: '/hosts/:id/machine',
  auth: 'inventory.read',
  tag: 'machines',
  summary:
    "A host's physical machine: hardware, BMC, power, health, and the hypervisor host linked to it",
  params: IdParams,
  success: { 200: MachineView },
  errors: [404, 409],
});

export const machineSensors = operation({
  method: 'GET',
  path: '/hosts/:id/sensors',
  auth: 'inventory.read',
  tag: 'machines',
  summary: "The machine's temperatures, fans and power draw, as its BMC reads them now",
  params: IdParams,
  success: {
    200: Type.Object({ machineId: Type.String(), sensors: Type.Array(MachineSensor) }),
  },
  errors: machineErrors,
});

export const powerMachine = operation({
  method: 'POST',
  path: '/hosts/:id/power',
  auth: 'host.power',
  tag: 'machines',
  summary:
    'Power on, shut down (ACPI), power off, power cycle or reset the machine through its BMC; the task ends once the BMC reads the power it should give (202)',
  params: IdParams,
  body: Type.Object({ action: StringEnum(machinePowerActions) }, { additionalProperties: false }),
  success: { 202: TaskView },
  errors: refusedBeforeQueued,
});

export const bootMachineOnce = operation({
  method: 'POST',
  path: '/hosts/:id/boot',
  auth: 'host.power',
  tag: 'machines',
  summary: 'Boot once from a device (pxe, disk, cdrom, bios setup), then as configured (202)',
  params: IdParams,
  body: Type.Object({ device: StringEnum(machineBootDevices) }, { additionalProperties: false }),
  success: { 202: TaskView },
  errors: refusedBeforeQueued,
});

export const insertMachineMedia = operation({
  method: 'POST',
  path: '/hosts/:id/media',
  auth: 'host.power',
  tag: 'machines',
  summary:
    "Insert an ISO image (by URL the BMC fetches) into the machine's virtual CD (Redfish; 202)",
  params: IdParams,
  body: Type.Object(
    {
      image: Type.String({
        minLength: 1,
        maxLength: mediaImageMaxLength,
        pattern: `^(${mediaImageSchemes.join('|')})://`,
      }),
    },
    { additionalProperties: false },
  ),
  success: { 202: TaskView },
  errors: refusedBeforeQueued,
});

export const ejectMachineMedia = operation({
  method: 'DELETE',
  path: '/hosts/:id/media',
  auth: 'host.power',
  tag: 'machines',
  summary: "Eject the machine's virtual CD (Redfish; 202)",
  params: IdParams,
  success: { 202: TaskView },
  errors: refusedBeforeQueued,
});

export const identifyMachine = operation({
  method: 'POST',
  path: '/hosts/:id/identify',
  auth: 'host.power',
  tag: 'machines',
  summary: "Turn the machine's identify light on or off (202)",
  params: IdParams,
  body: Type.Object({ on: Type.Boolean() }, { additionalProperties: false }),
  success: { 202: TaskView },
  errors: refusedBeforeQueued,
});

export const fenceMachine = operation({
  method: 'POST',
  path: '/hosts/:id/fence',
  auth: 'host.power',
  tag: 'machines',
  summary:
    'Fence: power the machine off and confirm it by reading the power state back (the task fails with BMC_FENCE_UNCONFIRMED otherwise; 202)',
  params: IdParams,
  success: { 202: TaskView },
  errors: refusedBeforeQueued,
});

export const linkMachine = operation({
  method: 'PUT',
  path: '/hosts/:id/machine-link',
  auth: 'host.link',
  tag: 'machines',
  summary:
    'Link a physical machine (this host id) to the hypervisor host running on it, by hand (Zenith links by SMBIOS UUID, serial or NIC MAC by itself)',
  params: IdParams,
  body: Type.Object({ hostId: IdOrName }, { additionalProperties: false }),
  success: { 200: MachineView },
  errors: [400, 404, 409],
});

export const unlinkMachine = operation({
  method: 'DELETE',
  path: '/hosts/:id/machine-link',
  auth: 'host.link',
  tag: 'machines',
  summary:
    'Unlink a machine from its hypervisor host (either id); it stays bare metal and is not linked again by itself',
  params: IdParams,
  success: { 200: MachineView },
  errors: [404, 409],
});

const nullableNumber = Type.Union([Type.Number(), Type.Null()]);

/** One chart point of a machine's sensors: the step's start and what was read in it. */
export const SensorPoint = Type.Object({
  /** Start of the step, ms since the epoch. */
  at: Type.Number(),
  /** Average power draw in the step (W); null where nothing was read. */
  watts: nullableNumber,
  /** Highest temperature read in the step (°C). */
  temperatureC: nullableNumber,
  /** Average fan speed in the step (RPM). */
  fanRpm: nullableNumber,
});
export type SensorPoint = Static<typeof SensorPoint>;

export const SensorHistoryView = Type.Object({
  machineId: Type.String(),
  stepSeconds: Type.Integer(),
  /** One per step from the step holding `from` up to `to`, measured or not. */
  points: Type.Array(SensorPoint),
});
export type SensorHistoryView = Static<typeof SensorHistoryView>;

export const machineSensorHistory = operation({
  method: 'GET',
  path: '/hosts/:id/sensors/history',
  auth: 'inventory.read',
  tag: 'machines',
  summary:
    "The machine's power draw, temperature and fan speed over time, as chart points of `step` seconds (sampled by Zenith from its BMC)",
  params: IdParams,
  query: HistoryQuery,
  success: { 200: SensorHistoryView },
  errors: [400, 404, 409],
});

export const MachineEnergyView = Type.Object({
  machineId: Type.String(),
  from: Type.Number(),
  to: Type.Number(),
  kWh: Type.Number(),
  /** The part of [from, to) that samples cover (gaps longer than three sampling periods are not guessed). */
  coveredMs: Type.Number(),
  averageWatts: nullableNumber,
});
export type MachineEnergyView = Static<typeof MachineEnergyView>;

export const machineEnergy = operation({
  method: 'GET',
  path: '/hosts/:id/energy',
  auth: 'inventory.read',
  tag: 'machines',
  summary:
    'The energy the machine drew between from and to (kWh), integrated from its sampled power draw; coveredMs says how much of the period the samples cover',
  params: IdParams,
  query: Type.Object(
    {
      from: Type.Integer({ minimum: 0, description: 'ms since the epoch' }),
      to: Type.Integer({ minimum: 0, description: 'ms since the epoch' }),
    },
    { additionalProperties: false },
  ),
  success: { 200: MachineEnergyView },
  errors: [400, 404, 409],
});
