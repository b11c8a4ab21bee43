/**
 * Defining and undefining domains: a VM created through Zenith gets a fresh
 * UUID, its disk as a volume of the connection's storage pool (removed again
 * if the definition fails), and metadata naming what it owns; deleting it
 * removes the definition with its snapshot metadata, managed save and NVRAM,
 * and the volumes it owns — never the disks of a domain created elsewhere.
 * A graceful shutdown asks the guest first and powers it off after a timeout.
 */
import { randomUUID } from 'node:crypto';
import { ZenithError } from '../../core/errors.js';
import type { Logger } from '../../core/logger.js';
import type { LibvirtClient } from '../../protocols/libvirt/libvirt-client.js';
import {
  DOMAIN_STATE,
  UNDEFINE,
  domainDefineXml,
  domainDestroy,
  domainGetState,
  domainShutdown,
  domainLookupByName,
  domainUndefineFlags,
} from '../../protocols/libvirt/procedures/domain.js';
import {
  storagePoolLookupByName,
  storageVolCreateXml,
  storageVolDelete,
  storageVolLookupByName,
} from '../../protocols/libvirt/procedures/storage.js';
import { isNoDomainError, isOperationInvalidError } from '../../protocols/libvirt/remote-error.js';
import type { Clock } from '../../core/clock.js';
import type { DomainRef } from '../../protocols/libvirt/remote-types.js';
import type { ActionContext, VmSpec } from '../driver.js';
import {
  qemuDomainXml,
  testDomainXml,
  validateCreateOptions,
  volumeXml,
  type DomainPlan,
} from './domain-builder.js';
import type { DomainDescription } from './domain-xml.js';
import { attempt } from './libvirt-errors.js';
import type { LibvirtHost } from './libvirt-inventory.js';
import type { LibvirtSettings } from './libvirt-settings.js';
import type { OwnedVolume } from './zenith-metadata.js';

async function ensureNameFree(
  client: LibvirtClient,
  name: string,
  host: LibvirtHost,
): Promise<void> {
  try {
    await client.call(domainLookupByName, { name });
  } catch (error) {
    if (isNoDomainError(error)) return;
    throw error;
  }
  throw new ZenithError('ZEN_CONFLICT', `a domain named '${name}' exists on ${host.name}`, {
    name,
  });
}

export function domainTypeFor(
  host: LibvirtHost,
  settings: LibvirtSettings,
  requested: 'kvm' | 'tcg' | undefined,
): string {
  const accelerator = requested ?? settings.accelerator;
  if (accelerator === 'tcg') return 'qemu';
  if (accelerator === 'kvm') {
    if (!host.capabilities.domainTypes.includes('kvm'))
      throw new ZenithError('ZEN_UNSUPPORTED', `${host.name} cannot run KVM guests`, {
        domainTypes: host.capabilities.domainTypes,
      });
    return 'kvm';
  }
  return host.capabilities.domainTypes.includes('kvm') ? 'kvm' : 'qemu';
}

async function createVolume(
  client: LibvirtClient,
  poolName: string,
  name: string,
  capacityBytes: number,
): Promise<OwnedVolume> {
  return attempt(`create the disk ${name} in pool ${poolName}`, async () => {
    const { pool } = await client.call(storagePoolLookupByName, { name: poolName });
    await client.call(storageVolCreateXml, { pool, xml: volumeXml(name, capacityBytes), flags: 0 });
    return { pool: poolName, name };
  });
}

async function deleteVolume(client: LibvirtClient, volume: OwnedVolume): Promise<void> {
  const { pool } = await client.call(storagePoolLookupByName, { name: volume.pool });
  const { vol } = await client.call(storageVolLookupByName, { pool, name: volume.name });
  await client.call(storageVolDelete, { vol, flags: 0 });
}

export async function createDomain(
  client: LibvirtClient,
  host: LibvirtHost,
  spec: VmSpec,
  settings: LibvirtSettings,
  context: ActionContext,
): Promise<DomainRef> {
  await attempt(`create ${spec.name}`, () => ensureNameFree(client, spec.name, host));
  const plan: DomainPlan = {
    domainType: host.driver,
    uuid: randomUUID(),
    arch: host.capabilities.arch,
    disk: null,
  };
  let xml: string;
  if (host.driver === 'test') {
    validateCreateOptions(spec.options);
    xml = testDomainXml(spec, plan);
  } else if (host.driver === 'qemu') {
    const options = validateCreateOptions(spec.options);
    plan.domainType = domainTypeFor(host, settings, options.accelerator);
    if (spec.diskBytes > 0) {
      context.progress({ percent: 10, message: 'creating the disk' });
      plan.disk = await createVolume(
        client,
        settings.storagePool,
        `${spec.name}-disk0.qcow2`,
        spec.diskBytes,
      );
    }
    xml = qemuDomainXml(spec, options, plan);
  } else {
    throw new ZenithError('ZEN_UNSUPPORTED', `creating ${host.driver} domains is not supported`);
  }
  context.progress({ percent: 50, message: 'defining the domain' });
  try {
    return await attempt(
      `define ${spec.name}`,
      async () => (await client.call(domainDefineXml, { xml })).dom,
    );
  } catch (error) {
    if (plan.disk) await deleteVolume(client, plan.disk).catch(() => undefined);
    throw error;
  }
}

export async function undefineDomain(
  client: LibvirtClient,
  dom: DomainRef,
  description: DomainDescription | null,
  options: { driver: string; logger: Logger },
): Promise<void> {
  // QEMU takes every flag; other drivers (the test driver among them) refuse the ones they lack.
  const flags =
    options.driver === 'qemu'
      ? UNDEFINE.managedSave |
        UNDEFINE.snapshotsMetadata |
        UNDEFINE.nvram |
        UNDEFINE.checkpointsMetadata
      : UNDEFINE.managedSave | UNDEFINE.snapshotsMetadata;
  await attempt(`delete ${dom.name}`, () => client.call(domainUndefineFlags, { dom, flags }));
  for (const volume of description?.zenith?.ownedVolumes ?? []) {
    await deleteVolume(client, volume).catch((error: unknown) =>
      options.logger.warn(
        { vm: dom.name, volume, err: (error as Error).message },
        'the VM is deleted but a disk it owned could not be removed',
      ),
    );
  }
}

/** Asks the guest to power off (ACPI); powers it off when it has not within `timeoutMs`. */
export async function shutDownGracefully(
  client: LibvirtClient,
  dom: DomainRef,
  options: { timeoutMs: number; clock: Clock; context: ActionContext },
): Promise<void> {
  const { clock, context } = options;
  await client.call(domainShutdown, { dom });
  const deadline = clock.now() + options.timeoutMs;
  while (clock.now() < deadline) {
    if (context.signal.aborted)
      throw new ZenithError('ZEN_TASK_CANCELLED', 'the shutdown was cancelled');
    const { state } = await client.call(domainGetState, { dom, flags: 0 });
    if (state === DOMAIN_STATE.shutoff) return;
    await clock.sleep(250, context.signal).catch(() => undefined);
  }
  context.progress({ percent: 90, message: 'the guest did not shut down in time: powering off' });
  await client.call(domainDestroy, { dom }).catch((error: unknown) => {
    // It went off on its own after all.
    if (!isOperationInvalidError(error)) throw error;
  });
}
