/**
 * Driver families by connection type. Each entry validates its settings
 * (failing fast with ZEN_CONFIG_INVALID) and builds a driver.
 */
import { isIP } from 'node:net';
import { join } from 'node:path';
import type { Clock } from '../core/clock.js';
import { ZenithError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import type { HypervisorDriver } from './driver.js';
import { intSetting, refuseUnknownSettings } from './int-setting.js';
import { AgentDriver } from './agent/agent-driver.js';
import type { AgentLink } from '../protocols/agent-channel/agent-link.js';
import { LibvirtDriver } from './libvirt/libvirt-driver.js';
import { validateLibvirtSettings, type LibvirtSettings } from './libvirt/libvirt-settings.js';
import { QemuDriver } from './qemu/qemu-driver.js';
import { SimulatedDriver } from './simulated/simulated-driver.js';
import { validateVsphereSettings, type VsphereSettings } from './vsphere/settings.js';
import { VsphereDriver } from './vsphere/vsphere-driver.js';

export interface DriverContext {
  connectionId: string;
  clock: Clock;
  logger: Logger;
  /** A directory the driver may keep state in. */
  stateDir: string;
  /** The channel to an enrolled host agent, for drivers that work through one. */
  agentLink?: (agentId: string) => AgentLink | undefined;
}

export interface DriverFamily {
  type: string;
  description: string;
  simulated: boolean;
  /** Its drivers answer peerIdentity() once connected: a new connection is checked before it is saved. */
  identifiesPeer?: boolean;
  /** Checks settings and returns them normalised; throws ZEN_CONFIG_INVALID. */
  validate(settings: Record<string, unknown>): Record<string, unknown>;
  create(
    settings: Record<string, unknown>,
    secret: string | null,
    context: DriverContext,
  ): HypervisorDriver;
}

const simulated: DriverFamily = {
  type: 'simulated',
  description: 'A simulated fleet for demos, scale tests and benchmarks (not real machines)',
  simulated: true,
  validate(settings) {
    const known = [
      'seed',
      'datacenters',
      'clustersPerDatacenter',
      'hostsPerCluster',
      'vmsPerHost',
      'timeScale',
    ];
    refuseUnknownSettings('simulated', settings, known);
    const timeScale = settings.timeScale ?? 1;
    if (typeof timeScale !== 'number' || !(timeScale >= 0 && timeScale <= 100))
      throw new ZenithError(
        'ZEN_CONFIG_INVALID',
        "setting 'timeScale' must be a number from 0 to 100",
        { key: 'timeScale' },
      );
    const out = {
      seed: intSetting(settings, 'seed', 1, 0, 2 ** 31),
      datacenters: intSetting(settings, 'datacenters', 1, 1, 100),
      clustersPerDatacenter: intSetting(settings, 'clustersPerDatacenter', 2, 1, 1000),
      hostsPerCluster: intSetting(settings, 'hostsPerCluster', 3, 1, 1000),
      vmsPerHost: intSetting(settings, 'vmsPerHost', 4, 0, 1000),
      timeScale,
    };
    const vms = out.datacenters * out.clustersPerDatacenter * out.hostsPerCluster * out.vmsPerHost;
    if (vms > 1_000_000)
      throw new ZenithError(
        'ZEN_CONFIG_INVALID',
        `a simulated fleet may hold at most 1,000,000 VMs (this one: ${vms})`,
      );
    return out;
  },
  create(settings, _secret, context) {
    const s = settings as {
      seed: number;
      datacenters: number;
      clustersPerDatacenter: number;
      hostsPerCluster: number;
      vmsPerHost: number;
      timeScale: number;
    };
    return new SimulatedDriver({
      clock: context.clock,
      timeScale: s.timeScale,
      fleet: {
        seed: s.seed,
        datacenters: s.datacenters,
        clustersPerDatacenter: s.clustersPerDatacenter,
        hostsPerCluster: s.hostsPerCluster,
        vmsPerHost: s.vmsPerHost,
      },
      journalPath: join(context.stateDir, 'simulated.journal'),
    });
  },
};

const qemu: DriverFamily = {
  type: 'qemu',
  description: 'QEMU/KVM on this host: VMs are QEMU processes driven through QMP',
  simulated: false,
  validate(settings) {
    const known = [
      'storageRoots',
      'accelerator',
      'kvmUsable',
      'hostName',
      'shutdownTimeoutMs',
      'migrationAddress',
    ];
    refuseUnknownSettings('qemu', settings, known);
    const roots = settings.storageRoots ?? [];
    if (!Array.isArray(roots) || !roots.every((r) => typeof r === 'string' && r.startsWith('/')))
      throw new ZenithError(
        'ZEN_CONFIG_INVALID',
        "setting 'storageRoots' is a list of absolute paths",
      );
    const accelerator = settings.accelerator ?? 'auto';
    if (!['auto', 'kvm', 'tcg'].includes(accelerator as string))
      throw new ZenithError('ZEN_CONFIG_INVALID', "setting 'accelerator' is auto, kvm or tcg");
    if (settings.kvmUsable !== undefined && typeof settings.kvmUsable !== 'boolean')
      throw new ZenithError('ZEN_CONFIG_INVALID', "setting 'kvmUsable' is true or false");
    if (
      settings.hostName !== undefined &&
      (typeof settings.hostName !== 'string' || !/^[a-zA-Z0-9.-]{1,253}$/.test(settings.hostName))
    )
      throw new ZenithError('ZEN_CONFIG_INVALID', "setting 'hostName' is a host name");
    if (
      settings.migrationAddress !== undefined &&
      (typeof settings.migrationAddress !== 'string' || isIP(settings.migrationAddress) === 0)
    )
      throw new ZenithError(
        'ZEN_CONFIG_INVALID',
        "setting 'migrationAddress' is an IP address of this host",
      );
    return {
      ...(settings.migrationAddress !== undefined
        ? { migrationAddress: settings.migrationAddress }
        : {}),
      storageRoots: roots,
      accelerator,
      ...(settings.kvmUsable !== undefined ? { kvmUsable: settings.kvmUsable } : {}),
      ...(settings.hostName !== undefined ? { hostName: settings.hostName } : {}),
      shutdownTimeoutMs: intSetting(settings, 'shutdownTimeoutMs', 60_000, 0, 3_600_000),
    };
  },
  create(settings, _secret, context) {
    const s = settings as {
      storageRoots: string[];
      accelerator: 'auto' | 'kvm' | 'tcg';
      kvmUsable?: boolean;
      hostName?: string;
      shutdownTimeoutMs: number;
      migrationAddress?: string;
    };
    return new QemuDriver({
      ...(s.migrationAddress !== undefined ? { migrationAddress: s.migrationAddress } : {}),
      stateDir: context.stateDir,
      storageRoots: s.storageRoots.length > 0 ? s.storageRoots : [join(context.stateDir, 'images')],
      accelerator: s.accelerator,
      ...(s.kvmUsable !== undefined ? { kvmUsable: s.kvmUsable } : {}),
      ...(s.hostName !== undefined ? { hostName: s.hostName } : {}),
      shutdownTimeoutMs: s.shutdownTimeoutMs,
      clock: context.clock,
      logger: context.logger,
    });
  },
};

const agent: DriverFamily = {
  type: 'agent',
  description: 'A host running the Zenith agent (QEMU driven locally by the agent)',
  simulated: false,
  validate(settings) {
    const agentId = settings.agentId;
    if (
      typeof agentId !== 'string' ||
      !/^agent_[0-9A-Z]{26}$/.test(agentId) ||
      Object.keys(settings).length !== 1
    ) {
      throw new ZenithError(
        'ZEN_CONFIG_INVALID',
        "an agent connection has exactly one setting, 'agentId' (agent_…); agents create their connection when they enroll",
      );
    }
    return { agentId };
  },
  create(settings, _secret, context) {
    const agentId = settings.agentId as string;
    return new AgentDriver(() => context.agentLink?.(agentId));
  },
};

const libvirt: DriverFamily = {
  type: 'libvirt',
  description:
    'A libvirt daemon reached by URI (qemu:///system, qemu+tls://host/system, test+unix:///default, lxc:///, xen+tls://host/system), agentless',
  simulated: false,
  identifiesPeer: true,
  validate(settings) {
    return { ...validateLibvirtSettings(settings) };
  },
  create(settings, secret, context) {
    return new LibvirtDriver({
      // validate() ran when the connection was stored; run again, settings may come from an older version.
      settings: validateLibvirtSettings(settings) satisfies LibvirtSettings,
      secret,
      clock: context.clock,
      logger: context.logger,
    });
  },
};

const vsphere: DriverFamily = {
  type: 'vsphere',
  description:
    'VMware vCenter or ESXi through the vSphere Web Services (VIM) API; the secret is the password',
  simulated: false,
  identifiesPeer: true,
  validate: (settings) => ({ ...validateVsphereSettings(settings) }),
  create(settings, secret, context) {
    return new VsphereDriver({
      settings: validateVsphereSettings(settings) satisfies VsphereSettings,
      password: secret,
      clock: context.clock,
      logger: context.logger,
    });
  },
};

export class DriverRegistry {
  readonly #families = new Map<string, DriverFamily>();

  constructor(families: DriverFamily[] = [simulated, qemu, agent, libvirt, vsphere]) {
    for (const family of families) this.#families.set(family.type, family);
  }

  register(family: DriverFamily): void {
    this.#families.set(family.type, family);
  }

  get(type: string): DriverFamily {
    const family = this.#families.get(type);
    if (!family)
      throw new ZenithError(
        'ZEN_CONFIG_INVALID',
        `unknown connection type '${type}' (known: ${[...this.#families.keys()].join(', ')})`,
        { type },
      );
    return family;
  }

  list(): DriverFamily[] {
    return [...this.#families.values()];
  }
}
