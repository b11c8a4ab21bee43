/**
 * What binding conditions read as `subject.…`: the attributes of users (set
 * by administrators, or mapped from directory attributes at login) and the
 * host facts of agents (their last heartbeat), with the identity's id, name,
 * kind and role. Kept in memory; loaded with the access graph and updated
 * as attributes change and heartbeats arrive.
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
    { identity: SubjectIdentity; attributes: Facts; host: Facts; facts: IdentityFacts }
  >();

  get(identityId: string): IdentityFacts | undefined {
    return this.#subjects.get(identityId)?.facts;
  }

  /** An identity's own attributes (they win over host facts of the same name). */
  set(identity: SubjectIdentity, attributes: Facts): void {
    this.#put(identity, attributes, this.#subjects.get(identity.id)?.host ?? {});
  }

  /** An agent's host facts, from its heartbeat. */
  setHostFacts(identityId: string, host: Facts): void {
    const known = this.#subjects.get(identityId);
    if (known) this.#put(known.identity, known.attributes, host);
  }

  #put(identity: SubjectIdentity, attributes: Facts, host: Facts): void {
    const { id, name, kind, role } = identity;
    this.#subjects.set(id, {
      identity: { id, name, kind, role },
      attributes,
      host,
      facts: new IdentityFacts({ id, name, kind, role }, { ...host, ...attributes }),
    });
  }

  async load(store: Store): Promise<void> {
    const agentFacts = new Map(
      (await store.db.selectFrom('agents').select(['identity_id', 'facts']).execute()).map(
        (row) => [row.identity_id, JSON.parse(row.facts) as Facts],
      ),
    );
    const rows = await store.db
      .selectFrom('identities')
      .select(['id', 'name', 'kind', 'role', 'attributes'])
      .execute();
    this.#subjects.clear();
    for (const row of rows)
      this.#put(row, JSON.parse(row.attributes) as Facts, agentFacts.get(row.id) ?? {});
  }
}
