/**
 * The Redfish family: one connection per BMC (or per Redfish aggregator), each
 * ComputerSystem a host with its hardware as `hardware.*` facts. Actions go
 * through ComputerSystem.Reset, the boot override, the manager's VirtualMedia
 * and the identify light (../protocols/redfish). The peer is the service
 * root's UUID, so one BMC cannot be connected twice. A poll reads each system
 * (power, health, identify light) and its manager's virtual CD (inserted,
 * image).
 */
import type { Clock } from '../core/clock.js';
import { ZenithError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import type {
  DiscoveredObject,
  DriverInfo,
  Facts,
  MachineBootDevice,
  MachineFacet,
  MachineIdentify,
  MachinePower,
  MachinePowerAction,
  MachineSensor,
} from '../hypervisors/driver.js';
import { caOf } from '../hypervisors/tls-settings.js';
import { RedfishClient, type SystemInventory } from '../protocols/redfish/redfish-client.js';
import type {
  BootTarget,
  PowerState,
  ResetType,
  ManagerSummary,
  SystemSummary,
  VirtualMediaInfo,
} from '../protocols/redfish/resources.js';
import type { RedfishSettings } from './bmc-settings.js';
import { MachineDriver, healthFact, type MachineStatus } from './machine-driver.js';

const resetFor: Record<MachinePowerAction, ResetType> = {
  on: 'On',
  shutdown: 'GracefulShutdown',
  off: 'ForceOff',
  cycle: 'PowerCycle',
  reset: 'ForceRestart',
};

const bootFor: Record<MachineBootDevice, BootTarget> = {
  pxe: 'Pxe',
  disk: 'Hdd',
  cdrom: 'Cd',
  bios: 'BiosSetup',
};

export function machinePower(state: PowerState | undefined): MachinePower {
  return state === 'On' ? 'on' : state === 'Off' ? 'off' : 'unknown';
}

/**
 * The identify light as the system reports it: LocationIndicatorActive (newer BMCs) says on or
 * off; IndicatorLED (older ones) Lit, Blinking or Off. Where both are there, a blinking LED is
 * shown as blinking while LocationIndicatorActive holds it on.
 */
export function identifyOf(indicator: SystemSummary['indicator']): MachineIdentify | null {
  const { led, locationActive } = indicator;
  if (locationActive === false) return 'off';
  if (led === 'Blinking') return 'blinking';
  if (locationActive === true) return 'on';
  return led === 'Lit' ? 'on' : led === 'Off' ? 'off' : null;
}

/** The first CD or DVD drive among the managers' virtual media, if any. */
async function virtualCd(
  bmc: RedfishClient,
  managers: ManagerSummary[],
): Promise<VirtualMediaInfo | undefined> {
  for (const manager of managers)
    for (const media of await bmc.virtualMedia(manager))
      if (media.mediaTypes.some((t) => t === 'CD' || t === 'DVD')) return media;
  return undefined;
}

/** The managers that manage the system (all of them where the system does not say). */
function managersOf(system: SystemSummary, managers: Iterable<ManagerSummary>): ManagerSummary[] {
  return [...managers].filter(
    (m) => system.managerUris.length === 0 || system.managerUris.includes(m.uri),
  );
}

export class RedfishMachines extends MachineDriver {
  readonly info: DriverInfo;
  readonly facets: { machine: MachineFacet };
  #client: RedfishClient | undefined;
  #managers = new Map<string, ManagerSummary>();

  constructor(
    private readonly settings: RedfishSettings,
    private readonly password: string,
    clock: Clock,
    private readonly logger: Logger,
  ) {
    super(clock, settings.pollSeconds * 1000);
    this.info = {
      type: 'redfish',
      simulated: false,
      capabilities: MachineDriver.capabilities(['machine.media']),
    };
    this.facets = { machine: this.#facet() };
  }

  async connect(): Promise<void> {
    const ca = caOf(this.settings);
    this.#client = await RedfishClient.connect({
      url: this.settings.url,
      username: this.settings.username,
      password: this.password,
      timeoutMs: this.settings.timeoutSeconds * 1000,
      ...(this.settings.thumbprint || ca
        ? {
            tls: {
              ...(this.settings.thumbprint ? { thumbprint: this.settings.thumbprint } : {}),
              ...(ca ? { ca } : {}),
            },
          }
        : {}),
    });
  }

  peerIdentity(): string {
    const uuid = this.#bmc().serviceRoot.UUID;
    return typeof uuid === 'string' && uuid !== ''
      ? `redfish:${uuid.toLowerCase()}`
      : `redfish:${this.settings.url}`;
  }

  async close(): Promise<void> {
    const client = this.#client;
    this.#client = undefined;
    await client?.close();
  }

  protected async readMachines(): Promise<DiscoveredObject[]> {
    const bmc = this.#bmc();
    const managers = await bmc.managers();
    this.#managers = new Map(managers.map((m) => [m.uri, m]));
    const systems = await bmc.systems();
    return Promise.all(
      systems.map(async (system) =>
        this.#machine(await bmc.inventory(system.uri), await this.#mediaFacts(system)),
      ),
    );
  }

  protected async readStatus(): Promise<MachineStatus[]> {
    const systems = await this.#bmc().systems();
    return Promise.all(
      systems.map(async (system) => ({
        externalId: system.uri,
        facts: { ...statusFacts(system), ...(await this.#mediaFacts(system)) },
      })),
    );
  }

  /**
   * `bmc.media.inserted` and `bmc.media.image` of the system's virtual CD (the managers as last
   * discovered); both null where it has none. A BMC that fails to answer for its virtual media
   * leaves them out (they keep their last value) rather than failing the whole poll.
   */
  async #mediaFacts(system: SystemSummary): Promise<Facts> {
    let cd: VirtualMediaInfo | undefined;
    try {
      cd = await virtualCd(this.#bmc(), managersOf(system, this.#managers.values()));
    } catch (error) {
      if (!(error instanceof ZenithError) || !error.code.startsWith('REDFISH_')) throw error;
      this.logger.debug({ err: error, system: system.uri }, 'reading the virtual media failed');
      return {};
    }
    return {
      'bmc.media.inserted': cd ? cd.inserted : null,
      'bmc.media.image': cd?.inserted ? (cd.image ?? null) : null,
    };
  }

  #machine(system: SystemInventory, media: Facts): DiscoveredObject {
    const manager = system.managerUris.map((uri) => this.#managers.get(uri)).find(Boolean);
    const cores = system.processors.reduce((sum, p) => sum + (p.cores ?? 0), 0);
    const threads = system.processors.reduce((sum, p) => sum + (p.threads ?? 0), 0);
    const moduleMiB = system.memoryModules.reduce((sum, m) => sum + (m.capacityMiB ?? 0), 0);
    const memoryBytes =
      system.memoryGiB !== undefined ? system.memoryGiB * 2 ** 30 : moduleMiB * 2 ** 20;
    const facts: Facts = {
      'bmc.protocol': 'redfish',
      'bmc.address': this.settings.url,
      'hardware.vendor': system.vendor ?? null,
      'hardware.model': system.model ?? null,
      'hardware.serial': system.serial ?? null,
      'hardware.smbiosUuid': system.uuid ?? null,
      'hardware.biosVersion': system.biosVersion ?? null,
      'hardware.bmcFirmware': manager?.firmwareVersion ?? null,
      'hardware.cpuSockets': system.processors.length || (system.processorCount ?? null),
      'hardware.cpuCores': cores || null,
      'hardware.cpuThreads': threads || null,
      'hardware.cpuModel':
        system.processors.find((p) => p.model)?.model ?? system.processorModel ?? null,
      'hardware.memoryBytes': memoryBytes || null,
      'hardware.memoryModules': system.memoryModules.map(
        (m) => `${m.id}: ${m.capacityMiB ?? '?'} MiB${m.type ? ` ${m.type}` : ''}`,
      ),
      'hardware.nicMacs': system.nics.flatMap((n) => (n.mac ? [n.mac.toLowerCase()] : [])),
      'hardware.disks': system.disks.map(
        (d) =>
          `${d.name ?? d.id}${d.model ? ` ${d.model}` : ''}${
            d.capacityBytes ? ` ${Math.round(d.capacityBytes / 1e9)} GB` : ''
          }${d.media ? ` ${d.media}` : ''}`,
      ),
      'hardware.diskBytes': system.disks.reduce((sum, d) => sum + (d.capacityBytes ?? 0), 0),
      ...statusFacts(system),
      ...media,
    };
    return {
      kind: 'host',
      externalId: system.uri,
      name: machineName(system),
      parent: null,
      facts,
    };
  }

  #bmc(): RedfishClient {
    if (!this.#client)
      throw new ZenithError('REDFISH_CLOSED', 'the Redfish connection is not open', {});
    return this.#client;
  }

  async #virtualMedia(systemUri: string): Promise<VirtualMediaInfo> {
    const bmc = this.#bmc();
    const system = await bmc.system(systemUri);
    const media = await virtualCd(bmc, managersOf(system, await bmc.managers()));
    if (media) return media;
    throw new ZenithError(
      'REDFISH_NOT_SUPPORTED',
      `the BMC offers no virtual CD/DVD drive for ${systemUri}`,
      { path: systemUri },
    );
  }

  #facet(): MachineFacet {
    return {
      powerState: async (id) => machinePower(await this.#bmc().powerState(id)),
      power: async (id, action) => {
        this.logger.info({ system: id, action }, 'redfish power action');
        await this.#bmc().reset(id, resetFor[action]);
      },
      bootOnce: (id, device) => this.#bmc().bootOnce(id, bootFor[device]),
      identify: (id, on) => this.#bmc().identify(id, on),
      insertMedia: async (id, image) =>
        this.#bmc().insertMedia(await this.#virtualMedia(id), image),
      ejectMedia: async (id) => this.#bmc().ejectMedia(await this.#virtualMedia(id)),
      sensors: async (id): Promise<MachineSensor[]> => {
        const system = await this.#bmc().system(id);
        const readings = await this.#bmc().sensors(
          system.chassisUris.length > 0 ? system.chassisUris : undefined,
        );
        return readings.map((r) => ({ name: r.name, kind: r.kind, value: r.value, unit: r.unit }));
      },
      fence: (id, options) =>
        this.#bmc().fence(id, { deadlineMs: options.deadlineMs, clock: this.clock }),
      refreshStatus: () => this.pollNow(),
    };
  }
}

function statusFacts(system: SystemSummary): Facts {
  return {
    'hardware.power': machinePower(system.powerState),
    'hardware.health': healthFact(system.health),
    'bmc.identify': identifyOf(system.indicator),
    'bmc.identifySource': identifyOf(system.indicator) === null ? null : 'bmc',
  };
}

function machineName(system: SystemSummary): string {
  const name = system.hostName ?? system.serial ?? system.id;
  return name.slice(0, 200);
}
