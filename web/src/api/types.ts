/** The shapes of the public API's answers that the console reads (docs/api.md). */
export type FactValue = string | number | boolean | null;

export interface ManagedObject {
  id: string;
  kind: string;
  name: string;
  parentId: string | null;
  tags: string[];
  facts: Record<string, FactValue>;
  userFacts: Record<string, FactValue>;
  computed: Record<string, FactValue>;
  status: string;
  simulated: boolean;
}

export interface Page<T> {
  items: T[];
  nextCursor: string | null;
}

export interface Identity {
  id: string;
  name: string;
  displayName: string | null;
  role: string;
}

export interface LoginAnswer {
  token: string;
  expiresAt: number | null;
  identity: Identity;
}

export interface LocationInterval {
  vmId: string;
  hostId: string | null;
  hostName: string | null;
  powerState: string;
  from: number;
  to: number | null;
}

export interface Task {
  id: string;
  kind: string;
  state: string;
  error: { code: string; message: string } | null;
}

export interface ConsoleTicket {
  ticket: string;
  path: string;
  expiresAt: number;
}

/** One Server-Sent Event of GET /events/stream. */
export interface ZenithEvent {
  seq: number;
  type: string;
  objectId: string | null;
  data: Record<string, unknown> | null;
  ts: number;
}
