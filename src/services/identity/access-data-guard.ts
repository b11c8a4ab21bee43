/**
 * Data that decides access is guarded like a role binding. Besides bindings
 * themselves, what a binding reaches is decided by:
 * - a resource group's member list (`user.members`) and selector (`user.selector`);
 * - the user facts and tags that a selector or a binding condition reads
 *   (`user.costCenter` in `subject.department == object.user.costCenter`;
 *   the tag `env:prod` for a selector `tags=env:prod`; every tag once a
 *   condition reads `object.tags`).
 * Changing any of these on an object needs `identity.manage` on that object
 * (on its parent, for a new object); a selector also needs it on the whole
 * subtree it may pick from (the group's parent; everything for a group at the
 * top), and each newly listed member needs it on the member. So nobody widens
 * what any binding reaches, their own or another's, past where they manage
 * access already.
 *
 * A machine linked to a hypervisor host by hand lays its facts (`machine.*`) on
 * the host: when a condition or selector reads them, linking and unlinking need
 * identity.manage on both hosts (checkLink). Links Zenith finds by itself come
 * from discovered identities (SMBIOS UUID, serial, MAC) like other discovered facts.
 *
 * Facts that drivers discover or actions change (names, power states,
 * placement, sizes) are not user data: a selector or condition reading them
 * trusts whoever may rename, power or move the object inside its reach
 * (docs/identity.md says so).
 */
import { ZenithError } from '../../core/errors.js';
import type { FactValue, ManagedObject } from '../inventory/model.js';
import type { InventoryService } from '../inventory/inventory-service.js';
import {
  membersFact,
  membersOf,
  parseSelector,
  selectorFact,
  selectorOf,
} from '../inventory/scope-chain.js';
import type { AccessService } from './access-service.js';
import type { Asker } from './access-graph.js';

/** More would make every decision scan a long list; a selector is the tool for large sets. */
export const maxMembers = 1000;

/** A change of user data on an object: facts set (null removes) and tags added or removed. */
export interface UserDataChange {
  facts?: Record<string, FactValue>;
  addTags?: string[];
  removeTags?: string[];
}

export class AccessDataGuard {
  constructor(
    private readonly access: AccessService,
    private readonly inventory: InventoryService,
  ) {}

  /**
   * The user facts that some selector or binding condition reads now, the tags that decide access,
   * and the facts a machine link lays on hosts (`machine.*`, `host.mode`) that one reads.
   */
  accessData(): { keys: Set<string>; tags: Set<string> | 'all'; linkKeys: Set<string> } {
    const keys = new Set<string>();
    const linkKeys = new Set<string>();
    let tags: Set<string> | 'all' = new Set();
    // A condition may ask anything of the tags (`'a' in object.tags`, `size(object.tags)`): all count.
    for (const key of this.access.graph.conditionObjectReads())
      if (key === 'tags') tags = 'all';
      else if (key.startsWith('user.')) keys.add(key);
      else if (isLinkKey(key)) linkKeys.add(key);
    for (const group of this.inventory.index.ofKind('resourceGroup')) {
      let terms: ReturnType<typeof selectorOf>;
      try {
        terms = selectorOf(group);
      } catch {
        continue; // a selector that does not parse picks nothing
      }
      for (const term of terms)
        if (term.key.startsWith('user.')) keys.add(term.key);
        else if (isLinkKey(term.key)) linkKeys.add(term.key);
        else if (term.key === 'tags' && tags !== 'all') {
          // tags=a|b and tags!=a depend on those tags only; ~, exists and absent on any.
          if (term.op === '=' || term.op === '!=') for (const value of term.values) tags.add(value);
          else tags = 'all';
        }
    }
    return { keys, tags, linkKeys };
  }

  /**
   * Linking a machine to a hypervisor host by hand, or undoing a link, lays or takes away the
   * machine's facts on the host (`machine.*`) and changes the machine's own (`host.mode`,
   * `machine.linkedHostId`): when a condition or selector reads any of them, it needs
   * identity.manage on both hosts, as any other change of access data.
   */
  checkLink(asker: Asker & { name: string }, hostIds: ReadonlyArray<string | null>): void {
    const read = [...this.accessData().linkKeys];
    if (read.length === 0) return;
    for (const id of hostIds) if (id) this.#requireManage(asker, id, read);
  }

  /** Refuses a change of an existing object's user data that would change what bindings reach. */
  checkEdit(asker: Asker & { name: string }, object: ManagedObject, change: UserDataChange): void {
    const touched = this.#touched(object, change);
    if (touched.length > 0) this.#requireManage(asker, object.id, touched);
    if (object.kind === 'resourceGroup') this.#checkPicking(asker, object, object.parentId, change);
  }

  /** The same for a new object under `parentId` (null: at the top), whose user data is `change`. */
  checkNew(
    asker: Asker & { name: string },
    parentId: string | null,
    kind: ManagedObject['kind'],
    change: UserDataChange,
  ): void {
    const { keys, tags } = this.accessData();
    const touched = [
      ...Object.keys(change.facts ?? {}).filter(
        (key) => keys.has(key) || (kind === 'resourceGroup' && isPickingKey(key)),
      ),
      ...((change.addTags ?? []).some((tag) => tags === 'all' || tags.has(tag)) ? ['tags'] : []),
    ];
    if (touched.length > 0) this.#requireManage(asker, parentId, touched);
    if (kind === 'resourceGroup') this.#checkPicking(asker, null, parentId, change);
  }

  /** Listing `member` in `group` (the group's own identity.manage is the route's permission). */
  checkNewMember(asker: Asker & { name: string }, member: ManagedObject): void {
    this.#requireManage(asker, member.id, [membersFact]);
  }

  /** The keys of the change that decide access and would really change. */
  #touched(object: ManagedObject, change: UserDataChange): string[] {
    const { keys, tags } = this.accessData();
    const decides = (tag: string) => tags === 'all' || tags.has(tag);
    const touched: string[] = [];
    for (const [key, value] of Object.entries(change.facts ?? {})) {
      if (!keys.has(key) && !(object.kind === 'resourceGroup' && isPickingKey(key))) continue;
      const current = object.userFacts[key];
      if (JSON.stringify(current ?? null) !== JSON.stringify(value ?? null)) touched.push(key);
    }
    const added = (change.addTags ?? []).some((tag) => decides(tag) && !object.tags.includes(tag));
    const removed = (change.removeTags ?? []).some(
      (tag) => decides(tag) && object.tags.includes(tag),
    );
    if (added || removed) touched.push('tags');
    return touched;
  }

  /** A selector needs identity.manage where it may pick; every newly listed member on the member. */
  #checkPicking(
    asker: Asker & { name: string },
    group: ManagedObject | null,
    parentId: string | null,
    change: UserDataChange,
  ): void {
    const facts = change.facts ?? {};
    if (selectorFact in facts) {
      const selector = facts[selectorFact];
      if (selector !== null) {
        if (typeof selector !== 'string')
          throw new ZenithError(
            'ZEN_BAD_REQUEST',
            `${selectorFact} is list filter terms separated by spaces, e.g. tags=env:prod`,
            { key: selectorFact },
          );
        parseSelector(selector); // ZEN_BAD_FILTER, naming the term
      }
      const changed =
        group === null ||
        JSON.stringify(group.userFacts[selectorFact] ?? null) !== JSON.stringify(selector);
      if (changed && selector !== null && selector.trim() !== '')
        this.#requireManage(asker, parentId, [selectorFact], 'everywhere the selector may pick');
    }
    if (membersFact in facts) {
      const members = facts[membersFact];
      if (members === null) return;
      if (
        !Array.isArray(members) ||
        members.length > maxMembers ||
        !members.every((id) => typeof id === 'string')
      )
        throw new ZenithError(
          'ZEN_BAD_REQUEST',
          `${membersFact} is a list of at most ${maxMembers} object ids`,
          { key: membersFact },
        );
      const listed = new Set(group ? membersOf(group) : []);
      for (const id of members)
        if (!listed.has(id)) {
          const member = this.#readable(asker, id, id);
          if (member.id !== id)
            throw new ZenithError('ZEN_BAD_REQUEST', `${membersFact} lists object ids, not names`, {
              key: membersFact,
            });
          if (group && member.id === group.id)
            throw new ZenithError('ZEN_CONFLICT', `${group.name} cannot be a member of itself`, {
              id: group.id,
            });
          this.#requireManage(asker, member.id, [membersFact]);
        }
    }
  }

  /** The object, if the asker may read it; otherwise "not found", as for one that does not exist. */
  #readable(asker: Asker, objectId: string, asked: string): ManagedObject {
    const object = this.inventory.index.get(objectId) ?? this.inventory.lookup(asked);
    if (!this.access.decide(asker, 'inventory.read', object.id).allowed)
      throw new ZenithError('ZEN_NOT_FOUND', `no object '${asked}'`, { id: asked });
    return object;
  }

  #requireManage(
    asker: Asker & { name: string },
    scopeId: string | null,
    touched: string[],
    where = 'there',
  ): void {
    if (this.access.decide(asker, 'identity.manage', scopeId).allowed) return;
    throw new ZenithError(
      'ZEN_FORBIDDEN',
      `${asker.name} may not identity.manage ${where}: ${touched.join(', ')} decide${touched.length === 1 ? 's' : ''} what role bindings reach`,
      { permission: 'identity.manage', facts: touched },
    );
  }
}

function isPickingKey(key: string): boolean {
  return key === selectorFact || key === membersFact;
}

/** A fact that linking a machine changes: the machine's facts on its host, a machine's mode. */
function isLinkKey(key: string): boolean {
  return key.startsWith('machine.') || key === 'host.mode';
}
