/**
 * The machine facet: what a BMC connection (Redfish, IPMI) does to the
 * physical machines it discovers as hosts, addressed by their external ids.
 * Power, a one-time boot device, the identify light, virtual media where the
 * BMC has it, sensor readings, and fencing: power off and return only once
 * the BMC reads the power off (BMC_FENCE_UNCONFIRMED otherwise). Every family
 * means the same by each action:
 *
 * - on: power on (nothing when on already);
 * - shutdown: ask the operating system to shut down (ACPI), then off;
 * - off: cut the power at once;
 * - cycle: off, then on again;
 * - reset: the reset button (a warm restart without a power loss).
 */
export type MachinePowerAction = 'on' | 'shutdown' | 'off' | 'cycle' | 'reset';
export const machinePowerActions: readonly MachinePowerAction[] = [
  'on',
  'shutdown',
  'off',
  'cycle',
  'reset',
];

export type MachineBootDevice = 'pxe' | 'disk' | 'cdrom' | 'bios';
export const machineBootDevices: readonly MachineBootDevice[] = ['pxe', 'disk', 'cdrom', 'bios'];

/** What the BMC reads now; 'unknown' while it changes or when it cannot tell. */
export type MachinePower = 'on' | 'off' | 'unknown';

/**
 * The identify light (fact `bmc.identify`): on (lit, or IPMI's timed or indefinite on), blinking
 * (Redfish IndicatorLED Blinking), or off.
 */
export type MachineIdentify = 'on' | 'blinking' | 'off';

export interface MachineSensor {
  name: string;
  kind: 'temperature' | 'fan' | 'power';
  value: number;
  /** Cel, RPM or W. */
  unit: string;
}

export interface MachineFenceResult {
  /** From the first request to the read that confirmed off. */
  elapsedMs: number;
  offRequests: number;
  polls: number;
}

export interface MachineFacet {
  powerState(hostExternalId: string): Promise<MachinePower>;
  /** Asks the BMC for the action; resolves once it accepted it (confirm by reading the power state). */
  power(hostExternalId: string, action: MachinePowerAction): Promise<void>;
  bootOnce(hostExternalId: string, device: MachineBootDevice): Promise<void>;
  /** The identify light on or off. */
  identify(hostExternalId: string, on: boolean): Promise<void>;
  /** Present where the BMC has virtual media (Redfish managers with VirtualMedia). */
  insertMedia?(hostExternalId: string, imageUrl: string): Promise<void>;
  ejectMedia?(hostExternalId: string): Promise<void>;
  /** Temperatures, fans and power draw as the BMC reads them now. */
  sensors(hostExternalId: string): Promise<MachineSensor[]>;
  /** Power off confirmed by reading it back within the deadline; BMC_FENCE_UNCONFIRMED otherwise. */
  fence(hostExternalId: string, options: { deadlineMs: number }): Promise<MachineFenceResult>;
  /**
   * Reads every machine's status facts (power, health, identify light, virtual media) now instead
   * of at the next poll; resolves once what changed has been reported to the inventory (at once
   * when the connection is not watching).
   */
  refreshStatus(): Promise<void>;
}
