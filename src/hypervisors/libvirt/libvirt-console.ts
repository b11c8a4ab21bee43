/**
 * A domain's serial console as a stream, on a libvirt connection of its own:
 * libvirt streams have no flow control of their own, so a slow console reader
 * must not stall the connection that reports the inventory. The connection
 * closes with the stream.
 */
import type { Duplex } from 'node:stream';
import { domainOpenConsole } from '../../protocols/libvirt/procedures/domain.js';
import type { DomainRef } from '../../protocols/libvirt/remote-types.js';
import { openLibvirt, type OpenOptions } from './libvirt-connect.js';
import { attempt } from './libvirt-errors.js';

/** VIR_DOMAIN_CONSOLE_FORCE: take the console over from an earlier session. */
const CONSOLE_FORCE = 1;

export async function openSerialConsole(options: OpenOptions, dom: DomainRef): Promise<Duplex> {
  const client = await openLibvirt(options);
  try {
    const stream = await attempt(`open the console of ${dom.name}`, () =>
      client.openStream(domainOpenConsole, { dom, dev_name: null, flags: CONSOLE_FORCE }),
    );
    // A connection that fails to close is gone anyway.
    stream.once('close', () => {
      client.close().catch(() => undefined);
    });
    return stream;
  } catch (error) {
    await client.close();
    throw error;
  }
}
