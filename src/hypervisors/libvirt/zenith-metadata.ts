/**
 * What Zenith remembers inside a domain it created: a namespaced element in
 * the domain's <metadata>, kept by libvirt with the definition. It marks the
 * domain as created by Zenith and lists the storage volumes it owns (deleted
 * with the VM; disks of domains created elsewhere are never touched).
 */
import { XMLBuilder } from 'fast-xml-parser';
import { attr, children, type XmlNode } from './xml-reader.js';

export const ZENITH_LIBVIRT_NS = 'https://zenith.dev/xmlns/libvirt/vm/1';

export interface OwnedVolume {
  pool: string;
  name: string;
}

export interface ZenithMetadata {
  ownedVolumes: OwnedVolume[];
}

const builder = new XMLBuilder({ ignoreAttributes: false, attributeNamePrefix: '@' });

/** The <zenith:vm> element for a domain's <metadata>. */
export function metadataElement(metadata: ZenithMetadata): XmlNode {
  return {
    'zenith:vm': {
      '@xmlns:zenith': ZENITH_LIBVIRT_NS,
      'zenith:volume': metadata.ownedVolumes.map((v) => ({ '@pool': v.pool, '@name': v.name })),
    },
  };
}

export function metadataXml(metadata: ZenithMetadata): string {
  return builder.build(metadataElement(metadata));
}

/** Finds our element among a domain's <metadata> children, whatever prefix libvirt gave it. */
export function readZenithMetadata(metadata: XmlNode | undefined): ZenithMetadata | null {
  if (!metadata) return null;
  for (const key of Object.keys(metadata)) {
    const [prefix, local] = key.split(':');
    if (local !== 'vm' || prefix === undefined) continue;
    for (const element of children(metadata, key)) {
      if (attr(element, `xmlns:${prefix}`) !== ZENITH_LIBVIRT_NS) continue;
      return {
        ownedVolumes: children(element, `${prefix}:volume`)
          .map((v) => ({ pool: attr(v, 'pool') ?? '', name: attr(v, 'name') ?? '' }))
          .filter((v) => v.pool !== '' && v.name !== ''),
      };
    }
  }
  return null;
}
