/**
 * Compliance reports. Effective access: every permission every enabled
 * identity holds, on which scope, through which binding and which groups
 * (flattened through nested groups; a scope stands for its whole subtree).
 * Access changes and actions by identity: read from the audit trail.
 */
import { ZenithError } from '../../core/errors.js';
import type { Store } from '../../store/store.js';
import type { AuditRecord } from '../audit/audit-service.js';
import type { InventoryService } from '../inventory/inventory-service.js';
import { scopeResolverOf } from '../inventory/scope-chain.js';
import type { AccessService } from './access-service.js';
import type { IdentityService } from './identity-service.js';
import { isPermission, permissions as allPermissions } from './roles.js';

export interface EffectiveAccessRow {
  identityId: string;
  identityName: string;
  identityKind: string;
  permission: string;
  /** null: everything. */
  scopeId: string | null;
  scopeName: string;
  scopeKind: string | null;
  /** `identity-role`: the identity's own predefined role, which holds everywhere. */
  bindingId: string;
  role: string;
  /** The groups from the identity to the binding's subject, outermost last (names). */
  viaGroups: string[];
}

export interface AuditReportRow {
  seq: number;
  ts: number;
  actorId: string;
  actorName: string;
  action: string;
  targetId: string | null;
  result: string;
  errorCode: string | null;
  params: unknown;
}

/** The audit actions that change who may do what. */
export const accessChangeActions = [
  'group.create',
  'group.delete',
  'group.addMember',
  'group.removeMember',
  'role.create',
  'role.update',
  'role.delete',
  'roleBinding.create',
  'roleBinding.delete',
  'identity.create',
  'identity.update',
  'identity.delete',
  'agent.revoke',
  'quota.set',
  'quota.clear',
] as const;

const maxRows = 200_000;
const maxPeriodMs = 400 * 86_400_000;

export class AccessReports {
  constructor(
    private readonly store: Store,
    private readonly access: AccessService,
    private readonly identities: IdentityService,
    private readonly inventory: InventoryService,
  ) {}

  /** Who holds which permission where; each filter narrows (scope: grants that reach that object). */
  async effectiveAccess(
    filter: { identity?: string; permission?: string; scope?: string } = {},
  ): Promise<EffectiveAccessRow[]> {
    if (filter.permission !== undefined && !isPermission(filter.permission))
      throw new ZenithError('ZEN_BAD_REQUEST', `unknown permission '${filter.permission}'`, {
        permission: filter.permission,
        known: allPermissions,
      });
    const subjects =
      filter.identity !== undefined
        ? [await this.identities.get(filter.identity)]
        : (await this.identities.list()).filter((identity) => !identity.disabled);
    let reaches: Set<string> | null = null;
    if (filter.scope !== undefined) {
      const object = this.inventory.lookup(filter.scope);
      const resolver = scopeResolverOf(this.inventory.index);
      const ancestors = resolver.ancestors(object.id);
      reaches = new Set([...ancestors, ...resolver.groupsHolding(ancestors)]);
    }
    const groupNames = new Map((await this.access.listGroups()).map((g) => [g.id, g.name]));
    const graph = this.access.graph;
    const rows: EffectiveAccessRow[] = [];
    for (const identity of subjects) {
      for (const { binding, via } of graph.bindingsOf({ id: identity.id, role: identity.role })) {
        if (reaches && binding.scopeId !== null && !reaches.has(binding.scopeId)) continue;
        const scope = binding.scopeId === null ? null : this.inventory.index.get(binding.scopeId);
        for (const permission of graph.rolePermissions(binding.role) ?? []) {
          if (filter.permission !== undefined && permission !== filter.permission) continue;
          rows.push({
            identityId: identity.id,
            identityName: identity.name,
            identityKind: identity.kind,
            permission,
            scopeId: binding.scopeId,
            scopeName: binding.scopeId === null ? 'everything' : (scope?.name ?? binding.scopeId),
            scopeKind: scope?.kind ?? null,
            bindingId: binding.id,
            role: binding.role,
            viaGroups: via.map((id) => groupNames.get(id) ?? id),
          });
          if (rows.length > maxRows) throw tooLarge();
        }
      }
    }
    return rows.sort(
      (a, b) =>
        a.identityName.localeCompare(b.identityName) ||
        a.permission.localeCompare(b.permission) ||
        a.scopeName.localeCompare(b.scopeName) ||
        a.bindingId.localeCompare(b.bindingId),
    );
  }

  /** Changes to groups, roles, bindings, identities and quotas in [from, to), oldest first. */
  async accessChanges(period: { from: number; to: number }): Promise<AuditReportRow[]> {
    checkPeriod(period);
    const rows = await this.store.db
      .selectFrom('audit')
      .selectAll()
      .where('ts', '>=', period.from)
      .where('ts', '<', period.to)
      .where('action', 'in', [...accessChangeActions])
      .orderBy('seq')
      .limit(maxRows + 1)
      .execute();
    if (rows.length > maxRows) throw tooLarge();
    return rows.map(auditRowOf);
  }

  /** Everything one identity did (or tried) in [from, to), oldest first. */
  async actionsBy(
    identity: string,
    period: { from: number; to: number },
  ): Promise<AuditReportRow[]> {
    checkPeriod(period);
    const subject = await this.identities.get(identity);
    const rows = await this.store.db
      .selectFrom('audit')
      .selectAll()
      .where('actor_id', '=', subject.id)
      .where('ts', '>=', period.from)
      .where('ts', '<', period.to)
      .orderBy('seq')
      .limit(maxRows + 1)
      .execute();
    if (rows.length > maxRows) throw tooLarge();
    return rows.map(auditRowOf);
  }
}

function checkPeriod({ from, to }: { from: number; to: number }): void {
  if (!(from < to))
    throw new ZenithError('ZEN_BAD_REQUEST', 'the period must end after it starts', { from, to });
  if (to - from > maxPeriodMs)
    throw new ZenithError('ZEN_BAD_REQUEST', 'a report covers at most 400 days', { from, to });
}

function tooLarge(): ZenithError {
  return new ZenithError(
    'ZEN_REPORT_TOO_LARGE',
    `the report would have more than ${maxRows} rows; narrow it with a filter or a shorter period`,
    { maxRows },
  );
}

function auditRowOf(row: {
  seq: number;
  ts: number;
  actor_id: string;
  actor_name: string;
  action: string;
  target_id: string | null;
  result: string;
  error_code: string | null;
  params: string;
}): AuditReportRow {
  return {
    seq: Number(row.seq),
    ts: Number(row.ts),
    actorId: row.actor_id,
    actorName: row.actor_name,
    action: row.action,
    targetId: row.target_id,
    result: row.result,
    errorCode: row.error_code,
    params: JSON.parse(row.params) as AuditRecord['params'],
  };
}
