/**
 * Stored policies: create, replace, delete, list; each compiled when saved
 * (a policy that does not compile is refused, with its field, line and
 * column) and kept compiled in memory for placement. Scopes inherit: the
 * policies in force for a VM on a host are the global ones, those of the
 * host's datacenter and cluster, of the VM's resource group and of the VM
 * itself — constraints, preferences and rules add up; settings of a more
 * specific scope override those of a more general one.
 */
import type { Clock } from '../../core/clock.js';
import { ZenithError } from '../../core/errors.js';
import { newId } from '../../core/ids.js';
import type { Logger } from '../../core/logger.js';
import type { PoliciesTable } from '../../store/schema.js';
import type { Store } from '../../store/store.js';
import type { Actor } from '../audit/audit-service.js';
import type { EventBus } from '../events/event-bus.js';
import type { InventoryService } from '../inventory/inventory-service.js';
import type { ObjectKind } from '../inventory/model.js';
import {
  compilePolicy,
  scopeOrder,
  type CompiledPolicy,
  type NamedExpression,
  type PolicyInput,
  type PolicyScope,
  type PolicySettings,
  type PreferenceInput,
  type RuleInput,
  type ScopeKind,
} from './policy-document.js';

export interface PolicyView {
  id: string;
  name: string;
  description: string | null;
  enabled: boolean;
  scope: { kind: ScopeKind; id: string | null; name: string | null };
  when: string | null;
  constraints: NamedExpression[];
  preferences: PreferenceInput[];
  rules: RuleInput[];
  settings: PolicySettings;
  createdBy: string;
  createdAt: number;
  updatedAt: number;
}

interface StoredDocument {
  when: string | null;
  constraints: NamedExpression[];
  preferences: PreferenceInput[];
  rules: RuleInput[];
  settings: PolicySettings;
}

const scopeObjectKind: Record<Exclude<ScopeKind, 'global'>, ObjectKind> = {
  datacenter: 'datacenter',
  cluster: 'cluster',
  resourceGroup: 'resourceGroup',
  vm: 'vm',
};

/** Where placement looks policies up: by scope object id, global ones apart. */
export interface PolicyIndex {
  readonly global: readonly CompiledPolicy[];
  readonly byScopeId: ReadonlyMap<string, readonly CompiledPolicy[]>;
  /** Bumped on every change, so callers can cache what they derive. */
  readonly version: number;
}

export class PolicyService {
  readonly #views = new Map<string, PolicyView>();
  readonly #compiled = new Map<string, CompiledPolicy>();
  #index: PolicyIndex = { global: [], byScopeId: new Map(), version: 0 };
  #changes = new AbortController();

  constructor(
    private readonly deps: {
      store: Store;
      inventory: InventoryService;
      events: EventBus;
      clock: Clock;
      logger: Logger;
    },
  ) {}

  async load(): Promise<void> {
    const rows = await this.deps.store.db.selectFrom('policies').selectAll().execute();
    for (const row of rows) {
      const view = this.#viewOf(row);
      this.#views.set(view.id, view);
      try {
        this.#compiled.set(view.id, compilePolicy(view.id, inputOf(view), view.scope));
      } catch (error) {
        // A policy that no longer compiles (the language changed) is kept, shown, and not enforced.
        this.deps.logger.error(
          { policy: view.name, err: (error as Error).message },
          'a stored policy does not compile; it is not enforced until it is fixed',
        );
      }
    }
    this.#reindex();
  }

  get index(): PolicyIndex {
    return this.#index;
  }

  /**
   * Aborted at the next change of the index: a loop that idles while no policy asks anything of
   * it sleeps on this (taken before it looks at the index, so a change in between is not missed).
   */
  get changes(): AbortSignal {
    return this.#changes.signal;
  }

  list(): PolicyView[] {
    return [...this.#views.values()].sort(
      (a, b) => scopeOrder[a.scope.kind] - scopeOrder[b.scope.kind] || a.name.localeCompare(b.name),
    );
  }

  get(idOrName: string): PolicyView {
    const view =
      this.#views.get(idOrName) ?? [...this.#views.values()].find((v) => v.name === idOrName);
    if (!view) throw new ZenithError('ZEN_NOT_FOUND', `no policy '${idOrName}'`, { idOrName });
    return view;
  }

  compiled(id: string): CompiledPolicy | undefined {
    return this.#compiled.get(id);
  }

  /** Checks and compiles a policy without saving it (for tests against the inventory). */
  compileDraft(input: PolicyInput): CompiledPolicy {
    return compilePolicy('pol_draft', input, this.resolveScope(input.scope));
  }

  resolveScope(scope: PolicyInput['scope']): PolicyScope {
    if (scope.kind === 'global') {
      if (scope.id !== undefined)
        throw new ZenithError('ZEN_POLICY_INVALID', 'scope.id: a global policy has no scope id', {
          field: 'scope.id',
        });
      return { kind: 'global', id: null };
    }
    const kind = scopeObjectKind[scope.kind];
    if (!kind)
      throw new ZenithError(
        'ZEN_POLICY_INVALID',
        `scope.kind: must be global, datacenter, cluster, resourceGroup or vm`,
        { field: 'scope.kind' },
      );
    if (!scope.id)
      throw new ZenithError(
        'ZEN_POLICY_INVALID',
        `scope.id: a ${scope.kind} policy names its ${scope.kind} (id or name)`,
        { field: 'scope.id' },
      );
    return { kind: scope.kind, id: this.deps.inventory.resolve(kind, scope.id).id };
  }

  async create(input: PolicyInput, actor: Actor): Promise<PolicyView> {
    if ([...this.#views.values()].some((v) => v.name === input.name))
      throw new ZenithError('ZEN_CONFLICT', `a policy named '${input.name}' exists`, {
        name: input.name,
      });
    const now = this.deps.clock.now();
    const id = newId('policy', now);
    const compiled = compilePolicy(id, input, this.resolveScope(input.scope));
    const row = this.#rowOf(id, input, compiled.scope, actor.id, now, now);
    const persisted = await this.deps.store.transaction(async (tx) => {
      await tx.insertInto('policies').values(row).execute();
      return this.deps.events.persist(tx, [
        { type: 'policy.created', objectId: id, data: { name: input.name, scope: compiled.scope } },
      ]);
    });
    this.#commit(row, compiled);
    this.deps.events.deliver(persisted);
    return this.get(id);
  }

  async replace(idOrName: string, input: PolicyInput): Promise<PolicyView> {
    const current = this.get(idOrName);
    if (input.name !== current.name && [...this.#views.values()].some((v) => v.name === input.name))
      throw new ZenithError('ZEN_CONFLICT', `a policy named '${input.name}' exists`, {
        name: input.name,
      });
    const compiled = compilePolicy(current.id, input, this.resolveScope(input.scope));
    const now = this.deps.clock.now();
    const row = this.#rowOf(
      current.id,
      input,
      compiled.scope,
      current.createdBy,
      current.createdAt,
      now,
    );
    const persisted = await this.deps.store.transaction(async (tx) => {
      await tx
        .updateTable('policies')
        .set({
          name: row.name,
          description: row.description,
          scope_kind: row.scope_kind,
          scope_id: row.scope_id,
          enabled: row.enabled,
          document: row.document,
          updated_at: row.updated_at,
        })
        .where('id', '=', current.id)
        .execute();
      return this.deps.events.persist(tx, [
        {
          type: 'policy.updated',
          objectId: current.id,
          data: { name: input.name, scope: compiled.scope },
        },
      ]);
    });
    this.#commit(row, compiled);
    this.deps.events.deliver(persisted);
    return this.get(current.id);
  }

  async delete(idOrName: string): Promise<PolicyView> {
    const current = this.get(idOrName);
    const persisted = await this.deps.store.transaction(async (tx) => {
      await tx.deleteFrom('policies').where('id', '=', current.id).execute();
      return this.deps.events.persist(tx, [
        { type: 'policy.deleted', objectId: current.id, data: { name: current.name } },
      ]);
    });
    this.#views.delete(current.id);
    this.#compiled.delete(current.id);
    this.#reindex();
    this.deps.events.deliver(persisted);
    return current;
  }

  #commit(row: PoliciesTable, compiled: CompiledPolicy): void {
    this.#views.set(row.id, this.#viewOf(row));
    this.#compiled.set(row.id, compiled);
    this.#reindex();
  }

  #reindex(): void {
    const global: CompiledPolicy[] = [];
    const byScopeId = new Map<string, CompiledPolicy[]>();
    for (const policy of this.#compiled.values()) {
      if (!policy.enabled) continue;
      if (policy.scope.id === null) global.push(policy);
      else {
        const list = byScopeId.get(policy.scope.id) ?? [];
        list.push(policy);
        byScopeId.set(policy.scope.id, list);
      }
    }
    const byName = (a: CompiledPolicy, b: CompiledPolicy) => a.name.localeCompare(b.name);
    global.sort(byName);
    for (const list of byScopeId.values()) list.sort(byName);
    this.#index = { global, byScopeId, version: this.#index.version + 1 };
    const changed = this.#changes;
    this.#changes = new AbortController();
    changed.abort();
  }

  #rowOf(
    id: string,
    input: PolicyInput,
    scope: PolicyScope,
    createdBy: string,
    createdAt: number,
    updatedAt: number,
  ): PoliciesTable {
    const document: StoredDocument = {
      when: input.when?.trim() ? input.when : null,
      constraints: input.constraints ?? [],
      preferences: input.preferences ?? [],
      rules: input.rules ?? [],
      settings: input.settings ?? {},
    };
    return {
      id,
      name: input.name,
      description: input.description ?? null,
      scope_kind: scope.kind,
      scope_id: scope.id,
      enabled: input.enabled === false ? 0 : 1,
      document: JSON.stringify(document),
      created_by: createdBy,
      created_at: createdAt,
      updated_at: updatedAt,
    };
  }

  #viewOf(row: PoliciesTable): PolicyView {
    const document = JSON.parse(row.document) as StoredDocument;
    const scopeObject = row.scope_id ? this.deps.inventory.index.get(row.scope_id) : undefined;
    return {
      id: row.id,
      name: row.name,
      description: row.description,
      enabled: row.enabled === 1,
      scope: {
        kind: row.scope_kind as ScopeKind,
        id: row.scope_id,
        name: scopeObject?.name ?? null,
      },
      when: document.when,
      constraints: document.constraints,
      preferences: document.preferences,
      rules: document.rules,
      settings: document.settings,
      createdBy: row.created_by,
      createdAt: Number(row.created_at),
      updatedAt: Number(row.updated_at),
    };
  }
}

/** A stored policy back in the form it was written. */
export function inputOf(view: PolicyView): PolicyInput {
  return {
    name: view.name,
    ...(view.description !== null ? { description: view.description } : {}),
    enabled: view.enabled,
    scope:
      view.scope.id === null ? { kind: 'global' } : { kind: view.scope.kind, id: view.scope.id },
    ...(view.when !== null ? { when: view.when } : {}),
    constraints: view.constraints,
    preferences: view.preferences,
    rules: view.rules,
    settings: view.settings,
  };
}
