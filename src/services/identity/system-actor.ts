/** The service identities parts of Zenith act as (high availability, replication). */
import type { Actor } from '../audit/audit-service.js';
import type { IdentityService } from './identity-service.js';

/** The service identity `name` as the actor its work runs as; made, with no role, on first use. */
export async function systemActor(
  identities: Pick<IdentityService, 'get' | 'createServiceIdentity'>,
  name: string,
  displayName: string,
): Promise<Actor> {
  const identity = await identities
    .get(name)
    .catch(() => identities.createServiceIdentity({ name, role: 'none', displayName }));
  return { id: identity.id, kind: identity.kind, name: identity.name };
}
