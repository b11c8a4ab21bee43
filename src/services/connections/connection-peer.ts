/**
 * Who is behind a connection. A driver that can tell (peerIdentity(): a libvirt host UUID, a
 * vCenter's instance UUID) names its peer; the connections table keeps that name in a unique column,
 * so no two connections reach the same hypervisor — they would each discover its VMs and move them
 * back and forth between themselves. A new connection is checked before it is saved; one whose peer
 * could not be reached then claims it on its first successful connection.
 */
import { ZenithError } from '../../core/errors.js';
import type { HypervisorDriver } from '../../hypervisors/driver.js';
import type { DriverContext, DriverFamily } from '../../hypervisors/registry.js';
import type { Db } from '../../store/store.js';

/** The connection (other than `exceptId`) that reaches this peer already, if any. */
export async function connectionOfPeer(
  db: Db,
  peer: string,
  exceptId?: string,
): Promise<{ id: string; name: string } | undefined> {
  let query = db.selectFrom('connections').select(['id', 'name']).where('peer_id', '=', peer);
  if (exceptId) query = query.where('id', '<>', exceptId);
  return query.executeTakeFirst();
}

/** ZEN_CONFLICT naming the connection (other than `exceptId`) that reaches this peer already. */
export async function refuseTakenPeer(db: Db, peer: string, exceptId?: string): Promise<void> {
  const existing = await connectionOfPeer(db, peer, exceptId);
  if (existing)
    throw new ZenithError(
      'ZEN_CONFLICT',
      `this hypervisor is connected already, as connection '${existing.name}' (${existing.id}): a second connection would discover the same VMs`,
      { connection: { id: existing.id, name: existing.name }, peer },
    );
}

/**
 * Connects once, saving nothing, to learn who the peer is. Null when it cannot be reached now: the
 * connection is then added as before, and its first successful connection claims the peer.
 */
export async function probePeer(
  family: DriverFamily,
  settings: Record<string, unknown>,
  secret: string | null,
  context: DriverContext,
): Promise<string | null> {
  let driver: HypervisorDriver | undefined;
  try {
    driver = family.create(settings, secret, context);
    await driver.connect();
    return driver.peerIdentity?.() ?? null;
  } catch (error) {
    context.logger.info(
      { type: family.type, err: error instanceof Error ? error.message : String(error) },
      'the new connection cannot be reached yet; its peer is checked once it is',
    );
    return null;
  } finally {
    await driver?.close().catch(() => undefined);
  }
}

/** Records who a running connection reaches; ZEN_CONFLICT when another connection has that peer. */
export async function claimPeer(db: Db, id: string, peer: string): Promise<void> {
  await refuseTakenPeer(db, peer, id);
  try {
    await db.updateTable('connections').set({ peer_id: peer }).where('id', '=', id).execute();
  } catch (error) {
    // The unique column refused it: a concurrent claim won; name it.
    await refuseTakenPeer(db, peer, id);
    throw error;
  }
}
