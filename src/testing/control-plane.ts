/** Test fixtures: a control plane on a throw-away store (SQLite or a fresh PostgreSQL database), and an API client. */
import type { HaOptions } from '../services/ha/ha-service.js';
import type { VmMonitorOptions } from '../services/ha/vm-monitor.js';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ApiClient } from '../api/client.js';
import type { ConnectionView } from '../api/connections.js';
import { addConnection } from '../api/connections.js';
import { login } from '../api/auth.js';
import { fetchTransport } from '../api/fetch-transport.js';
import { finishedTaskStates, getTask, type TaskView } from '../api/tasks.js';
import type { Clock } from '../core/clock.js';
import { silentLogger, type Logger } from '../core/logger.js';
import type { AnsweredRoute } from '../server/answer-check.js';
import { buildApp, type App } from '../server/app.js';
import { startControlPlane, type ControlPlane } from '../app/control-plane.js';
import type { LdapSettings } from '../services/identity/ldap-directory.js';
import type { MetricSettings } from '../services/metrics/metric-history.js';
import type { SensorSettings } from '../services/machines/sensor-history.js';
import { createTestDatabase } from './postgres.js';
import { until } from './wait.js';

/**
 * The body of a raw request (TestServer.request), which may be anything: hostile input, odd
 * statuses. Typed answers come from TestServer.client, whose calls the contract types.
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type ApiAnswer = any;

/** The body of a raw answer that has the status a test expects (200 unless said); fails the test otherwise. */
export function ok(answer: { status: number; body: ApiAnswer }, status = 200): ApiAnswer {
  assert.equal(answer.status, status, JSON.stringify(answer.body));
  return answer.body;
}

export type StoreKind = 'sqlite' | 'postgres';
export const storeKinds: readonly StoreKind[] = ['sqlite', 'postgres'];
export const adminPassword = 'admin-password-for-tests';

export interface TestPlane {
  plane: ControlPlane;
  dataDir: string;
  databaseUrl: string | undefined;
  close(): Promise<void>;
}

export interface TestPlaneOptions {
  store?: StoreKind;
  clock?: Clock;
  ldap?: LdapSettings;
  metrics?: Partial<MetricSettings>;
  /** Machines' sensor sampling (e.g. sensorSampleEveryMs: 500 in tests). */
  /** High availability's timings (a short grace period after the start, for one). */
  ha?: HaOptions;
  /** VM monitoring's timings (how often it looks at the stopped VMs, for one). */
  vmMonitoring?: VmMonitorOptions;
  machines?: Partial<SensorSettings>;
  agentCertificateValidityMs?: number;
  /** Silent unless given (captureLogs gives one whose lines a test reads). */
  logger?: Logger;
}

export async function startTestPlane(options: TestPlaneOptions = {}): Promise<TestPlane> {
  const dataDir = mkdtempSync(join(tmpdir(), 'zenith-test-'));
  const database = options.store === 'postgres' ? await createTestDatabase() : undefined;
  const plane = await startControlPlane({
    dataDir,
    databaseUrl: database?.url,
    adminPassword,
    logger: options.logger ?? silentLogger,
    ...(options.clock ? { clock: options.clock } : {}),
    ...(options.ldap ? { ldap: options.ldap } : {}),
    ...(options.metrics ? { metrics: options.metrics } : {}),
    ...(options.machines ? { machines: options.machines } : {}),
    ...(options.ha ? { ha: options.ha } : {}),
    ...(options.vmMonitoring ? { vmMonitoring: options.vmMonitoring } : {}),
    ...(options.agentCertificateValidityMs
      ? { agentCertificateValidityMs: options.agentCertificateValidityMs }
      : {}),
  });
  return {
    plane,
    dataDir,
    databaseUrl: database?.url,
    async close() {
      await plane.close();
      await database?.drop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

export interface TestServer extends TestPlane {
  app: App;
  baseUrl: string;
  /** The typed client of the contract (src/api), as `token` (anonymous without): coded errors throw. */
  client(token?: string): ApiClient;
  /** Every answer of a route so far: its method, declared path and status. */
  readonly answers: readonly AnsweredRoute[];
  /**
   * Answers that did not fit the contract: a status the operation does not declare, or a body
   * that does not fit the schema of its status. close() fails when there are any.
   */
  readonly misfits: readonly string[];
  /**
   * Polls a task until it ends; answers it. Its result's shape depends on the task's kind, which
   * the contract does not type (TaskView.result is unknown): tests read it field by field.
   */
  waitForTask(token: string, id: string, timeoutMs?: number): Promise<ApiAnswer>;
  /** The same, typed as the contract says (result: unknown). */
  waitForTaskView(token: string, id: string, timeoutMs?: number): Promise<TaskView>;
  /** Logs in and answers a bearer token. */
  login(username?: string, password?: string): Promise<string>;
  /**
   * Adds a simulated fleet (a `simulated` connection, default name 'lab') and waits for its first
   * discovery; answers the connection. Throws with the answer when it is not created.
   */
  addSimulatedFleet(
    token: string,
    settings: Record<string, unknown>,
    name?: string,
  ): Promise<ConnectionView>;
  /** A raw request: any method, path, body and headers (hostile input); its body untyped. */
  request(
    method: string,
    path: string,
    options?: { token?: string | undefined; body?: unknown; headers?: Record<string, string> },
  ): Promise<{ status: number; body: ApiAnswer }>;
}

export async function startTestServer(
  options: TestPlaneOptions & {
    /** Where to listen (default 127.0.0.1): agents in network namespaces reach it on a bridge. */
    listenHost?: string;
  } = {},
): Promise<TestServer> {
  const base = await startTestPlane(options);
  const answers: AnsweredRoute[] = [];
  const misfits: string[] = [];
  const app = await buildApp(base.plane, {
    answerLog: {
      answered: (answer) => answers.push(answer),
      misfit: (answer, problems) =>
        misfits.push(`${answer.method} ${answer.url} ${answer.status}: ${problems.join('; ')}`),
    },
  });
  const address = await app.listen({ port: 0, host: options.listenHost ?? '127.0.0.1' });
  const client = (token?: string) =>
    new ApiClient(fetchTransport({ baseUrl: `${address}/api/v1`, token }));
  const waitForTaskView = (token: string, id: string, timeoutMs = 60_000) =>
    until(
      `task ${id}`,
      async () => {
        const task = await client(token).call(getTask, { params: { id } });
        return finishedTaskStates.includes(task.state) ? task : undefined;
      },
      timeoutMs,
      25,
    );
  const request: TestServer['request'] = async (method, path, opts = {}) => {
    const headers: Record<string, string> = { ...(opts.headers ?? {}) };
    if (opts.token) headers.authorization = `Bearer ${opts.token}`;
    let body: string | undefined;
    if (opts.body !== undefined) {
      body = typeof opts.body === 'string' ? opts.body : JSON.stringify(opts.body);
      headers['content-type'] ??= 'application/json';
    }
    const response = await fetch(`${address}/api/v1${path}`, {
      method,
      headers,
      ...(body !== undefined ? { body } : {}),
    });
    const text = await response.text();
    let parsed: unknown = text;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      // not JSON: keep the text
    }
    return { status: response.status, body: parsed };
  };
  return {
    ...base,
    app,
    baseUrl: address,
    request,
    client,
    answers,
    misfits,
    waitForTask: (token, id, timeoutMs) => waitForTaskView(token, id, timeoutMs),
    waitForTaskView,
    async login(username = 'admin', password = adminPassword) {
      return (await client().call(login, { body: { username, password } })).token;
    },
    async addSimulatedFleet(token, settings, name = 'lab') {
      return client(token).call(addConnection, {
        body: { name, type: 'simulated', settings },
      });
    },
    async close() {
      await app.close();
      await base.close();
      if (misfits.length > 0)
        throw new Error(
          `answers did not fit the contract (src/api):\n${[...new Set(misfits)].join('\n')}`,
        );
    },
  };
}
