/**
 * An IPMI 2.0 client for one BMC, through ipmitool (./ipmitool-runner.ts):
 * chassis power (status, on, off, soft, cycle, reset), the chassis status
 * (power and identify state), a one-time boot device, the identify light,
 * FRU data, the BMC's firmware and GUID, sensor readings, and fencing (power
 * off confirmed by reading it back). Each call is one
 * ipmitool process with its own RMCP+ session; see
 * docs/decisions/0030-ipmi-through-ipmitool.md for what that costs.
 *
 *   const bmc = new IpmiClient({ host, port, username, password });
 *   await bmc.powerOff();
 *   assert.equal(await bmc.powerState(), 'off');
 */
import {
  confirmPowerOff,
  type FenceOptions,
  type FenceResult,
} from '../fencing/confirm-power-off.js';
import {
  readChassisStatus,
  readFru,
  readGuid,
  readMcInfo,
  readPowerStatus,
  readSdr,
  type ChassisStatus,
  type FruInfo,
  type IpmiPower,
  type IpmiSensor,
  type McInfo,
} from './ipmitool-output.js';
import {
  IpmitoolRunner,
  type IpmiCommandRunner,
  type IpmiTarget,
  type IpmitoolOptions,
} from './ipmitool-runner.js';

export type IpmiBootDevice = 'pxe' | 'disk' | 'cdrom' | 'bios';

export interface IpmiClientOptions extends IpmiTarget, IpmitoolOptions {
  /** Something to run ipmitool commands with instead of ipmitool itself (tests). */
  runner?: IpmiCommandRunner;
}

export class IpmiClient {
  readonly #run: IpmiCommandRunner;

  constructor(options: IpmiClientOptions) {
    this.#run = options.runner ?? new IpmitoolRunner(options, options);
  }

  async powerState(): Promise<IpmiPower> {
    return readPowerStatus(await this.#run.run(['chassis', 'power', 'status']));
  }

  /** Power and, where the BMC reports it, the identify light, in one Get Chassis Status. */
  async chassisStatus(): Promise<ChassisStatus> {
    return readChassisStatus(await this.#run.run(['raw', '0x00', '0x01']));
  }

  async powerOn(): Promise<void> {
    await this.#run.run(['chassis', 'power', 'on']);
  }

  /** Hard power-off, at once. */
  async powerOff(): Promise<void> {
    await this.#run.run(['chassis', 'power', 'off']);
  }

  /** Asks the operating system to shut down (ACPI soft-off). */
  async softOff(): Promise<void> {
    await this.#run.run(['chassis', 'power', 'soft']);
  }

  async powerCycle(): Promise<void> {
    await this.#run.run(['chassis', 'power', 'cycle']);
  }

  async reset(): Promise<void> {
    await this.#run.run(['chassis', 'power', 'reset']);
  }

  /** Boots once from `device`, then as configured (ipmitool's bootdev is one-time by default). */
  async bootOnce(device: IpmiBootDevice): Promise<void> {
    await this.#run.run(['chassis', 'bootdev', device]);
  }

  /** Lights the identify LED for `seconds` (0 turns it off), or until turned off with 'force'. */
  async identify(seconds: number | 'force'): Promise<void> {
    await this.#run.run(['chassis', 'identify', String(seconds)]);
  }

  async fru(): Promise<FruInfo> {
    return readFru(await this.#run.run(['fru', 'print', '0']));
  }

  async mcInfo(): Promise<McInfo> {
    return readMcInfo(await this.#run.run(['mc', 'info']));
  }

  /** The system GUID (the SMBIOS UUID on most servers). */
  async guid(): Promise<string> {
    return readGuid(await this.#run.run(['mc', 'guid']));
  }

  async sensors(): Promise<IpmiSensor[]> {
    return readSdr(await this.#run.run(['sdr', 'elist', 'full']));
  }

  /** Powers off and returns once the BMC reads the power off; see confirmPowerOff. */
  fence(options: FenceOptions = {}): Promise<FenceResult> {
    return confirmPowerOff(
      { powerOff: () => this.powerOff(), readPower: () => this.powerState() },
      options,
    );
  }
}
