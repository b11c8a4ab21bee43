/**
 * The IPMI family: one connection per BMC, whose one system is a host
 * (external id `system`) with what IPMI can tell: FRU vendor, model and
 * serial, the BMC's firmware, the system GUID (the SMBIOS UUID on most
 * servers), power state, the identify light and sensors. IPMI has no virtual
 * media and no hardware inventory beyond that (Redfish does). The peer is the
 * system GUID.
 *
 * The identify light is read from Get Chassis Status where the BMC reports it
 * (`bmc.identifySource` 'bmc'); many do not (OpenIPMI's ipmi_sim does not),
 * and then `bmc.identify` is the state Zenith last set through this
 * connection (`bmc.identifySource` 'zenith'), unknown (null) until it sets
 * one (a reconnection starts a new driver, which knows none): a light turned on at the machine's front panel or by another tool is
 * not seen.
 */
import type { Clock } from '../core/clock.js';
import type { Logger } from '../core/logger.js';
import type {
  DiscoveredObject,
  DriverInfo,
  Facts,
  MachineFacet,
  MachineIdentify,
  MachinePowerAction,
  MachineSensor,
} from '../hypervisors/driver.js';
import { IpmiClient } from '../protocols/ipmi/ipmi-client.js';
import type { ChassisStatus } from '../protocols/ipmi/ipmitool-output.js';
import type { IpmiSettings } from './bmc-settings.js';
import { MachineDriver, type MachineStatus } from './machine-driver.js';

export const ipmiSystemId = 'system';

/** Units as Redfish names them (ipmitool says degrees C, RPM, Watts). */
const unitOf = { temperature: 'Cel', fan: 'RPM', power: 'W' } as const;

export class IpmiMachines extends MachineDriver {
  readonly info: DriverInfo = {
    type: 'ipmi',
    simulated: false,
    capabilities: MachineDriver.capabilities(),
  };
  readonly facets: { machine: MachineFacet };
  readonly #bmc: IpmiClient;
  #guid: string | undefined;
  /** The identify light as Zenith last set it (for BMCs that do not report it). */
  #identifySet: MachineIdentify | undefined;

  constructor(
    private readonly settings: IpmiSettings,
    password: string,
    clock: Clock,
    private readonly logger: Logger,
  ) {
    super(clock, settings.pollSeconds * 1000);
    this.#bmc = new IpmiClient({
      host: settings.host,
      port: settings.port,
      username: settings.username,
      password,
      timeoutMs: settings.timeoutSeconds * 1000,
    });
    this.facets = { machine: this.#facet() };
  }

  async connect(): Promise<void> {
    this.#guid = await this.#bmc.guid();
  }

  peerIdentity(): string {
    return this.#guid ? `ipmi:${this.#guid}` : `ipmi:${this.settings.host}:${this.settings.port}`;
  }

  close(): Promise<void> {
    return Promise.resolve();
  }

  protected async readMachines(): Promise<DiscoveredObject[]> {
    // One ipmitool process at a time: a BMC serves few sessions at once.
    const fru = await this.#bmc.fru();
    const mc = await this.#bmc.mcInfo();
    const guid = await this.#bmc.guid();
    const status = await this.#bmc.chassisStatus();
    const facts: Facts = {
      'bmc.protocol': 'ipmi',
      'bmc.address': `${this.settings.host}:${this.settings.port}`,
      'hardware.vendor': fru.vendor ?? mc.manufacturerName ?? null,
      'hardware.model': fru.model ?? null,
      'hardware.serial': fru.serial ?? null,
      'hardware.smbiosUuid': guid,
      'hardware.bmcFirmware': mc.firmwareVersion ?? null,
      ...this.#statusFacts(status),
    };
    return [
      {
        kind: 'host',
        externalId: ipmiSystemId,
        name: (fru.serial ?? this.settings.host).slice(0, 200),
        parent: null,
        facts,
      },
    ];
  }

  protected async readStatus(): Promise<MachineStatus[]> {
    return [
      { externalId: ipmiSystemId, facts: this.#statusFacts(await this.#bmc.chassisStatus()) },
    ];
  }

  #statusFacts(status: ChassisStatus): Facts {
    const reported = status.identify === undefined ? undefined : status.identify !== 'off';
    return {
      'hardware.power': status.power,
      'bmc.identify':
        reported === undefined ? (this.#identifySet ?? null) : reported ? 'on' : 'off',
      'bmc.identifySource':
        reported !== undefined ? 'bmc' : this.#identifySet !== undefined ? 'zenith' : null,
    };
  }

  #facet(): MachineFacet {
    const actions: Record<MachinePowerAction, () => Promise<void>> = {
      on: () => this.#bmc.powerOn(),
      shutdown: () => this.#bmc.softOff(),
      off: () => this.#bmc.powerOff(),
      cycle: () => this.#bmc.powerCycle(),
      reset: () => this.#bmc.reset(),
    };
    return {
      powerState: () => this.#bmc.powerState(),
      power: async (_id, action) => {
        this.logger.info({ bmc: this.settings.host, action }, 'ipmi power action');
        await actions[action]();
      },
      bootOnce: (_id, device) => this.#bmc.bootOnce(device),
      identify: async (_id, on) => {
        await this.#bmc.identify(on ? 'force' : 0);
        this.#identifySet = on ? 'on' : 'off';
      },
      sensors: async (): Promise<MachineSensor[]> =>
        (await this.#bmc.sensors()).flatMap((s) =>
          s.kind === 'temperature' || s.kind === 'fan' || s.kind === 'power'
            ? [{ name: s.name, kind: s.kind, value: s.value, unit: unitOf[s.kind] }]
            : [],
        ),
      fence: (_id, options) =>
        this.#bmc.fence({ deadlineMs: options.deadlineMs, clock: this.clock }),
      refreshStatus: () => this.pollNow(),
    };
  }
}
