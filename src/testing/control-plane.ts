/** Test fixtures: a control plane on a throw-away store (SQLite or a fresh PostgreSQL database), and an API client. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Clock } from '../core/clock.js';
import { silentLogger, type Logger } from '../core/logger.js';
import { buildApp, type App } from '../server/app.js';
import { startControlPlane, type ControlPlane } from '../app/control-plane.js';
import type { LdapSettings } from '../services/identity/ldap-directory.js';
import type { MetricSettings } from '../services/metrics/metric-history.js';
import { createTestDatabase } from './postgres.js';
import { until } from './wait.js';

// Answers are read by tests field by field; typing every body would only restate the schemas.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type ApiAnswer = any;

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
  /** Polls a task until it ends; answers it. */
  waitForTask(token: string, id: string, timeoutMs?: number): Promise<ApiAnswer>;
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
  ): Promise<{ id: string; name: string; state: string }>;
  request(
    method: string,
    path: string,
    options?: { token?: string | undefined; body?: unknown; headers?: Record<string, string> },
  ): Promise<{ status: number; body: ApiAnswer }>;
}

export async function startTestServer(options: TestPlaneOptions = {}): Promise<TestServer> {
  const base = await startTestPlane(options);
  const app = await buildApp(base.plane);
  const address = await app.listen({ port: 0, host: '127.0.0.1' });
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
    waitForTask: (token, id, timeoutMs = 60_000) =>
      until(
        `task ${id}`,
        async () => {
          const task = (await request('GET', `/tasks/${id}`, { token })).body as
            { state?: string } | undefined;
          return task?.state && ['succeeded', 'failed', 'cancelled'].includes(task.state)
            ? task
            : undefined;
        },
        timeoutMs,
        25,
      ),
    async login(username = 'admin', password = adminPassword) {
      const answer = await request('POST', '/auth/login', { body: { username, password } });
      if (answer.status !== 200)
        throw new Error(`login failed: ${answer.status} ${JSON.stringify(answer.body)}`);
      return (answer.body as { token: string }).token;
    },
    async addSimulatedFleet(token, settings, name = 'lab') {
      const added = await request('POST', '/connections', {
        token,
        body: { name, type: 'simulated', settings },
      });
      if (added.status !== 201)
        throw new Error(
          `the simulated fleet was not added: ${added.status} ${JSON.stringify(added.body)}`,
        );
      return added.body as { id: string; name: string; state: string };
    },
    async close() {
      await app.close();
      await base.close();
    },
  };
}
