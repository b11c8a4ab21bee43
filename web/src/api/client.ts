/**
 * The console's only way to the control plane: the public REST API under /api/v1 with a bearer
 * token. A 401 from any call ends the session (the app returns to the login page).
 */
import { ApiError, apiErrorOf } from './api-error.ts';
import type {
  ConsoleTicket,
  LocationInterval,
  LoginAnswer,
  ManagedObject,
  Page,
  Task,
} from './types.ts';

export const apiBase = '/api/v1';

export type VmAction = 'start' | 'stop' | 'suspend' | 'resume' | 'reboot' | 'reset';

export interface VmListQuery {
  search: string;
  sort: string;
  cursor: string | null;
  limit: number;
  /** More `KEY OP VALUE` terms and tags (the inventory's filter bar). */
  filters?: string[];
  tags?: string[];
}

/** The period [from, to) and step of a history chart (a VM's metrics, a machine's sensors). */
export interface HistoryRange {
  from: number;
  to: number;
  stepSeconds: number;
}

/** The chart points a history operation answers at `path` for `range`. */
export function historyOf<T>(
  client: ApiClient,
  path: string,
  range: HistoryRange,
  signal?: AbortSignal,
): Promise<T> {
  const params = new URLSearchParams({
    from: String(range.from),
    to: String(range.to),
    step: String(range.stepSeconds),
  });
  return client.call('GET', `${path}?${params.toString()}`, undefined, signal);
}

export async function login(username: string, password: string): Promise<LoginAnswer> {
  const response = await fetch(`${apiBase}/auth/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ username, password }),
  });
  if (!response.ok) throw await apiErrorOf(response);
  return (await response.json()) as LoginAnswer;
}

/** The WebSocket a console ticket names, on the console's own host (wss when the page is https). */
export function consoleSocket(ticket: ConsoleTicket): WebSocket {
  const scheme = window.location.protocol === 'https:' ? 'wss' : 'ws';
  return new WebSocket(`${scheme}://${window.location.host}${ticket.path}`);
}

export class ApiClient {
  constructor(
    readonly token: string,
    private readonly onUnauthorized: (error: ApiError) => void,
  ) {}

  /** The session ended without a call saying so (the event stream's stream.closed): as a 401. */
  sessionEnded(error: ApiError): void {
    this.onUnauthorized(error);
  }

  async call<T>(method: string, path: string, body?: unknown, signal?: AbortSignal): Promise<T> {
    const headers: Record<string, string> = { authorization: `Bearer ${this.token}` };
    if (body !== undefined) headers['content-type'] = 'application/json';
    const response = await fetch(`${apiBase}${path}`, {
      method,
      headers,
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      ...(signal ? { signal } : {}),
    });
    if (response.status === 401) {
      const error = await apiErrorOf(response);
      this.onUnauthorized(error);
      throw error;
    }
    if (!response.ok) throw await apiErrorOf(response);
    if (response.status === 204) return undefined as T;
    return (await response.json()) as T;
  }

  /** GET a whole list (an answer of `items`) and answer its items. */
  async items<T>(path: string, signal?: AbortSignal): Promise<T[]> {
    return (await this.call<{ items: T[] }>('GET', path, undefined, signal)).items;
  }

  listVms(query: VmListQuery, signal?: AbortSignal): Promise<Page<ManagedObject>> {
    const params = new URLSearchParams({ limit: String(query.limit), sort: query.sort });
    const search = query.search.trim();
    if (search) params.append('filter', `name~${search}`);
    for (const term of query.filters ?? []) params.append('filter', term);
    for (const tag of query.tags ?? []) params.append('tag', tag);
    if (query.cursor) params.set('cursor', query.cursor);
    return this.call('GET', `/vms?${params.toString()}`, undefined, signal);
  }

  getVm(id: string, signal?: AbortSignal): Promise<ManagedObject> {
    return this.call('GET', `/vms/${encodeURIComponent(id)}`, undefined, signal);
  }

  async locationHistory(id: string, signal?: AbortSignal): Promise<LocationInterval[]> {
    return this.items<LocationInterval>(`/vms/${encodeURIComponent(id)}/location-history`, signal);
  }

  requestVmAction(id: string, action: VmAction): Promise<Task> {
    return this.call('POST', `/vms/${encodeURIComponent(id)}/${action}`);
  }

  getTask(id: string): Promise<Task> {
    return this.call('GET', `/tasks/${encodeURIComponent(id)}`);
  }

  consoleTicket(id: string, kind: 'serial' | 'vnc'): Promise<ConsoleTicket> {
    return this.call('POST', `/vms/${encodeURIComponent(id)}/console-tickets`, { kind });
  }

  async logout(): Promise<void> {
    await this.call('POST', '/auth/logout').catch(() => undefined);
  }
}
