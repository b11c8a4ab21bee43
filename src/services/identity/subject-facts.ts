/**
 * What binding conditions read as `subject.…`: the attributes of identities
 * (set by identity managers, or mapped from directory attributes at login),
 * with the identity's id, name, kind and role. Never what an identity reports
 * about itself (an agent's heartbeat): that would let it widen its own access.
 * Kept in memory; loaded with the access graph and updated as attributes change.
 */
import type { Store } from '../../store/store.js';
import type { Facts } from '../inventory/model.js';
import { IdentityFacts } from './binding-conditions.js';

export interface SubjectIdentity {
  id: string;
  name: string;
  kind: string;
  role: string;
}

export class SubjectFacts {
  readonly #subjects = new Map<
    string,
    { identity: SubjectIdentity; attributes: Facts; facts: IdentityFacts }
  >();

  get(identityId: string): IdentityFacts | undefined {
    return this.#subjects.get(identityId)?.facts;
  }

  /** An identity's attributes changed. */
  set(identity: SubjectIdentity, attributes: Facts): void {
    const { id, name, kind, role } = identity;
    this.#subjects.set(id, {
      identity: { id, name, kind, role },
      attributes,
      facts: new IdentityFacts({ id, name, kind, role }, attributes),
    });
  }

  async load(store: Store): Promise<void> {
    const rows = await store.db
      .selectFrom('identities')
      .select(['id', 'name', 'kind', 'role', 'attributes'])
      .execute();
    this.#subjects.clear();
    for (const row of rows) this.set(row, JSON.parse(row.attributes) as Facts);
  }
}
