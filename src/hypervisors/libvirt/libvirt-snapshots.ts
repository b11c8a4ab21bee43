/**
 * Domain snapshots through libvirt's own snapshot calls. A snapshot's id is
 * its name (unique per domain in libvirt). Creating one of a running domain
 * saves its memory too, so reverting brings it back running.
 */
import { XMLBuilder } from 'fast-xml-parser';
import type { LibvirtClient } from '../../protocols/libvirt/libvirt-client.js';
import {
  domainListAllSnapshots,
  domainRevertToSnapshot,
  domainSnapshotCreateXml,
  domainSnapshotDelete,
  domainSnapshotGetXmlDesc,
  domainSnapshotLookupByName,
} from '../../protocols/libvirt/procedures/snapshot.js';
import type { DomainRef } from '../../protocols/libvirt/remote-types.js';
import type { PowerState, SnapshotInfo } from '../driver.js';
import { parseSnapshotXml } from './host-xml.js';
import { attempt } from './libvirt-errors.js';

const builder = new XMLBuilder({ ignoreAttributes: false, attributeNamePrefix: '@' });

function snapshotPower(state: string | null): PowerState {
  switch (state) {
    case 'running':
    case 'blocked':
      return 'running';
    case 'paused':
      return 'suspended';
    case 'shutoff':
    case 'shutdown':
    case 'crashed':
    case 'disk-snapshot':
      return 'stopped';
    default:
      return 'unknown';
  }
}

async function describe(
  client: LibvirtClient,
  snap: { name: string; dom: DomainRef },
): Promise<SnapshotInfo> {
  const { xml } = await client.call(domainSnapshotGetXmlDesc, { snap, flags: 0 });
  const description = parseSnapshotXml(xml);
  return {
    id: snap.name,
    name: description.name,
    createdAt: (description.creationTimeSeconds ?? 0) * 1000,
    powerState: snapshotPower(description.state),
  };
}

export async function listSnapshots(
  client: LibvirtClient,
  dom: DomainRef,
): Promise<SnapshotInfo[]> {
  return attempt(`list the snapshots of ${dom.name}`, async () => {
    const { snapshots } = await client.call(domainListAllSnapshots, {
      dom,
      need_results: 1,
      flags: 0,
    });
    const described = await Promise.all(snapshots.map((snap) => describe(client, snap)));
    return described.sort((a, b) => a.createdAt - b.createdAt || a.name.localeCompare(b.name));
  });
}

export async function createSnapshot(
  client: LibvirtClient,
  dom: DomainRef,
  name: string,
): Promise<SnapshotInfo> {
  return attempt(`snapshot ${dom.name}`, async () => {
    const xml = builder.build({
      domainsnapshot: { name, description: 'taken through Zenith' },
    });
    const { snap } = await client.call(domainSnapshotCreateXml, { dom, xml_desc: xml, flags: 0 });
    return describe(client, snap);
  });
}

export async function revertSnapshot(
  client: LibvirtClient,
  dom: DomainRef,
  name: string,
): Promise<void> {
  await attempt(`revert ${dom.name} to ${name}`, async () => {
    const { snap } = await client.call(domainSnapshotLookupByName, { dom, name, flags: 0 });
    // The state the snapshot holds wins (running snapshots come back running); never force.
    await client.call(domainRevertToSnapshot, { snap, flags: 0 });
  });
}

export async function deleteSnapshot(
  client: LibvirtClient,
  dom: DomainRef,
  name: string,
): Promise<void> {
  await attempt(`delete snapshot ${name} of ${dom.name}`, async () => {
    const { snap } = await client.call(domainSnapshotLookupByName, { dom, name, flags: 0 });
    await client.call(domainSnapshotDelete, { snap, flags: 0 });
  });
}
