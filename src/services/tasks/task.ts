/** A task as the store holds it and the API shows it. */
import type { TasksTable } from '../../store/schema.js';

export type TaskState = 'queued' | 'running' | 'succeeded' | 'failed' | 'cancelled';
export const finalStates: readonly TaskState[] = ['succeeded', 'failed', 'cancelled'];

/** Parameters as stored: a JSON object (its kind reads it as its own type, task-kind.ts). */
export type StoredParams = Record<string, unknown>;

export interface Task<P = StoredParams> {
  id: string;
  kind: string;
  targetId: string | null;
  ownerId: string;
  state: TaskState;
  progress: number;
  progressMessage: string | null;
  /** The figures behind the progress (for a migration: bytes sent and remaining, dirty-page rate, pass). */
  progressDetails: Record<string, number | string> | null;
  params: P;
  result: unknown;
  error: { code: string; message: string } | null;
  attempt: number;
  createdAt: number;
  startedAt: number | null;
  endedAt: number | null;
}

export function taskOf(row: TasksTable): Task {
  return {
    id: row.id,
    kind: row.kind,
    targetId: row.target_id,
    ownerId: row.owner_id,
    state: row.state as TaskState,
    progress: row.progress,
    progressMessage: row.progress_message,
    progressDetails:
      row.progress_details === null
        ? null
        : (JSON.parse(row.progress_details) as Record<string, number | string>),
    params: JSON.parse(row.params) as StoredParams,
    result: row.result === null ? null : (JSON.parse(row.result) as unknown),
    error: row.error_code ? { code: row.error_code, message: row.error_message ?? '' } : null,
    attempt: row.attempt,
    createdAt: Number(row.created_at),
    startedAt: row.started_at === null ? null : Number(row.started_at),
    endedAt: row.ended_at === null ? null : Number(row.ended_at),
  };
}
