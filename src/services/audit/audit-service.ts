/**
 * The tamper-evident audit trail: an append-only hash chain. Each record's
 * hash covers its own fields and the previous record's hash, so editing,
 * deleting or reordering any record breaks verification from that record on.
 */
import { ZenithError } from '../../core/errors.js';
import { withoutSecrets } from '../../core/redact.js';
import type { Clock } from '../../core/clock.js';
import { sha256Hex } from '../../core/crypto.js';
import { Mutex } from '../../core/mutex.js';
import { sql } from 'kysely';
import type { AuditTable } from '../../store/schema.js';
import type { Db, Store, Tx } from '../../store/store.js';

export const genesisHash = '0'.repeat(64);

export interface Actor {
  id: string;
  kind: string;
  name: string;
}

export interface AuditInput {
  actor: Actor;
  action: string;
  targetId?: string | null;
  params?: unknown;
  result: 'succeeded' | 'failed' | 'accepted' | 'denied';
  errorCode?: string | null;
  requestId?: string | null;
}

export interface AuditRecord {
  seq: number;
  ts: number;
  actorId: string;
  actorKind: string;
  actorName: string;
  action: string;
  targetId: string | null;
  params: unknown;
  result: string;
  errorCode: string | null;
  requestId: string | null;
  prevHash: string;
  hash: string;
}

export type VerifyProblem = 'edited' | 'deleted' | 'reordered';

export interface VerifyResult {
  ok: boolean;
  records: number;
  /** The first record that does not verify, and how. */
  firstBad?: { seq: number; problem: VerifyProblem; detail: string };
  durationMs: number;
}

/** The fields a record's hash covers, in their stored (text) form so that both databases hash alike. */
export function hashRecord(row: Omit<AuditTable, 'hash'>): string {
  // A JSON array in a fixed field order: unambiguous, and cheap enough to verify a million records.
  return sha256Hex(
    JSON.stringify([
      'zenith-audit-v1',
      Number(row.seq),
      Number(row.ts),
      row.actor_id,
      row.actor_kind,
      row.actor_name,
      row.action,
      row.target_id,
      row.params,
      row.result,
      row.error_code,
      row.request_id,
      row.prev_hash,
    ]),
  );
}

function recordOf(row: AuditTable): AuditRecord {
  return {
    seq: Number(row.seq),
    ts: Number(row.ts),
    actorId: row.actor_id,
    actorKind: row.actor_kind,
    actorName: row.actor_name,
    action: row.action,
    targetId: row.target_id,
    params: JSON.parse(row.params) as unknown,
    result: row.result,
    errorCode: row.error_code,
    requestId: row.request_id,
    prevHash: row.prev_hash,
    hash: row.hash,
  };
}

export class AuditService {
  readonly #mutex = new Mutex();

  constructor(
    private readonly store: Store,
    private readonly clock: Clock,
  ) {}

  /** Appends records in order; inside the caller's transaction when given (so an action and its record commit together). */
  async append(inputs: AuditInput[], tx?: Tx): Promise<AuditRecord[]> {
    try {
      if (tx) return await this.#appendIn(tx, inputs);
      return await this.#mutex.run(() =>
        this.store.transaction((own) => this.#appendIn(own, inputs)),
      );
    } catch (error) {
      // Coded, so that callers refuse with it (and a caller's transaction rolls back with it).
      throw new ZenithError(
        'ZEN_AUDIT_UNAVAILABLE',
        'the audit trail cannot be written now, so the request is refused',
        {},
        { cause: error },
      );
    }
  }

  async #appendIn(tx: Tx, inputs: AuditInput[]): Promise<AuditRecord[]> {
    // One writer at a time across replicas: the chain head is read and extended under a lock.
    if (this.store.dialect === 'postgres')
      await sql`select pg_advisory_xact_lock(7336002)`.execute(tx);
    const head = await tx
      .selectFrom('audit')
      .select(['seq', 'hash'])
      .orderBy('seq', 'desc')
      .limit(1)
      .executeTakeFirst();
    let seq = Number(head?.seq ?? 0);
    let prevHash = head?.hash ?? genesisHash;
    const ts = this.clock.now();
    const rows: AuditTable[] = [];
    for (const input of inputs) {
      seq++;
      const base = {
        seq,
        ts,
        actor_id: input.actor.id,
        actor_kind: input.actor.kind,
        actor_name: input.actor.name,
        action: input.action,
        target_id: input.targetId ?? null,
        params: JSON.stringify(withoutSecrets(input.params ?? {})),
        result: input.result,
        error_code: input.errorCode ?? null,
        request_id: input.requestId ?? null,
        prev_hash: prevHash,
      };
      const hash = hashRecord(base);
      rows.push({ ...base, hash });
      prevHash = hash;
    }
    for (let i = 0; i < rows.length; i += 500)
      await tx
        .insertInto('audit')
        .values(rows.slice(i, i + 500))
        .execute();
    return rows.map(recordOf);
  }

  async list(options: {
    beforeSeq?: number;
    limit: number;
    actorId?: string;
    /** The actor's name as recorded (a user, service identity or, for a failed login, what was typed). */
    actorName?: string;
    targetId?: string;
    action?: string;
    since?: number;
    until?: number;
  }): Promise<AuditRecord[]> {
    let query = this.store.db.selectFrom('audit').selectAll();
    if (options.beforeSeq !== undefined) query = query.where('seq', '<', options.beforeSeq);
    if (options.actorId) query = query.where('actor_id', '=', options.actorId);
    if (options.actorName) query = query.where('actor_name', '=', options.actorName);
    if (options.targetId) query = query.where('target_id', '=', options.targetId);
    if (options.action) query = query.where('action', 'like', `${options.action}%`);
    if (options.since !== undefined) query = query.where('ts', '>=', options.since);
    if (options.until !== undefined) query = query.where('ts', '<', options.until);
    const rows = await query.orderBy('seq', 'desc').limit(options.limit).execute();
    return rows.map(recordOf);
  }

  /** Re-computes the whole chain in pages and names the first record that does not verify. */
  async verify(db: Db = this.store.db): Promise<VerifyResult> {
    const started = performance.now();
    let expectedSeq = 1;
    let prevHash = genesisHash;
    let records = 0;
    const pageSize = 10_000;
    let lastSeq = 0;
    for (;;) {
      const rows = await db
        .selectFrom('audit')
        .selectAll()
        .where('seq', '>', lastSeq)
        .orderBy('seq')
        .limit(pageSize)
        .execute();
      for (const row of rows) {
        const seq = Number(row.seq);
        records++;
        const bad = (problem: VerifyProblem, detail: string): VerifyResult => ({
          ok: false,
          records,
          firstBad: { seq, problem, detail },
          durationMs: performance.now() - started,
        });
        if (seq !== expectedSeq) {
          return bad(
            'deleted',
            `record(s) ${expectedSeq}${seq - 1 > expectedSeq ? `–${seq - 1}` : ''} are missing before record ${seq}`,
          );
        }
        if (row.prev_hash !== prevHash)
          return bad(
            'reordered',
            `record ${seq} does not follow record ${seq - 1}: its link to the previous record is broken`,
          );
        if (hashRecord(row) !== row.hash)
          return bad('edited', `record ${seq}'s contents do not match its hash`);
        prevHash = row.hash;
        expectedSeq = seq + 1;
        lastSeq = seq;
      }
      if (rows.length < pageSize) break;
    }
    return { ok: true, records, durationMs: performance.now() - started };
  }
}
