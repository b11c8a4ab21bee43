import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { spawnAgent, type AgentProcess } from '../../src/testing/agent-process.js';
import { startTestServer, type TestServer } from '../../src/testing/control-plane.js';
import { until } from '../../src/testing/wait.js';

/**
 * Short enough to see renewals and an expiry in a test; the agent renews at two thirds (6.7 s). Long
 * enough that an agent restarted right after a renewal is up before that certificate expires, on a
 * loaded machine too (with 6 s it sometimes was not).
 */
const validityMs = 10_000;

interface CertificateRecord {
  serial: string;
  notAfter: number;
  replaces: string | null;
  revokedAt: number | null;
  revokedReason: string | null;
}

describe('a real agent process renews its certificate before it expires', () => {
  let s: TestServer;
  let token: string;
  const stateDir = mkdtempSync(join(tmpdir(), 'zenith-agent-renewal-'));
  let agent: AgentProcess | undefined;
  const lastOutput = () => `\nagent output:\n${(agent?.output() ?? '').slice(-3000)}`;
  const startAgent = (extra: string[] = []) => {
    mkdirSync(join(stateDir, 'images'), { recursive: true });
    agent = spawnAgent({
      serverUrl: s.baseUrl,
      stateDir,
      storageRoots: [join(stateDir, 'images')],
      hostName: 'renewing-host',
      extra,
    });
  };
  const killAgent = async () => agent?.kill();
  const theAgent = async () =>
    (await s.request('GET', '/agents', { token })).body.items[0] as
      { id: string; state: string } | undefined;
  const certificates = async (id: string) =>
    (await s.request('GET', `/agents/${id}/certificates`, { token })).body
      .items as CertificateRecord[];
  const connectionState = async () =>
    (
      (await s.request('GET', '/connections', { token })).body.items as Array<{
        type: string;
        state: string;
      }>
    ).find((c) => c.type === 'agent')?.state;

  before(async () => {
    s = await startTestServer({ agentCertificateValidityMs: validityMs });
    token = await s.login();
  });
  after(async () => {
    try {
      await killAgent();
    } finally {
      await s.close();
      rmSync(stateDir, { recursive: true, force: true });
    }
  });

  test('renewals keep the agent connected past its first certificate’s expiry, each revoking the one before', async (t) => {
    const enrollment = (await s.request('POST', '/agents/enrollment-tokens', { token, body: {} }))
      .body.token;
    startAgent(['--token', enrollment]);
    const enrolled = await until(
      () => `the agent to connect${lastOutput()}`,
      async () => {
        const a = await theAgent();
        return a?.state === 'connected' && (await connectionState()) === 'connected'
          ? a
          : undefined;
      },
      30_000,
    );
    const [first] = await certificates(enrolled.id);
    assert.ok(first);
    // Two renewals: a chain of three certificates, each replacing the one before.
    const chain = await until(
      () => `two renewals${lastOutput()}`,
      async () => {
        const list = await certificates(enrolled.id);
        return list.length >= 3 && list[1]!.revokedAt !== null ? list : undefined;
      },
      30_000,
    );
    assert.equal(chain[1]!.replaces, chain[0]!.serial);
    assert.equal(chain[2]!.replaces, chain[1]!.serial);
    assert.deepEqual(
      chain.slice(0, 2).map((c) => c.revokedReason),
      ['superseded', 'superseded'],
    );
    assert.ok(Date.now() > first.notAfter, 'the first certificate has expired by now');
    assert.equal((await theAgent())?.state, 'connected');
    assert.equal(await connectionState(), 'connected', 'the channel stayed up through renewals');
    const stored = JSON.parse(readFileSync(join(stateDir, 'credentials.json'), 'utf8'));
    assert.notEqual(stored.certificate, undefined);
    t.diagnostic(`${chain.length} certificates issued to one agent in this test`);

    // A restarted agent opens its channel with the renewed certificate it kept: restarted just
    // after a renewal, so what is tested is the kept certificate, not how fast a process starts.
    const renewedAfter = chain.length;
    await until(
      () => `another renewal${lastOutput()}`,
      async () => ((await certificates(enrolled.id)).length > renewedAfter ? true : undefined),
      30_000,
    );
    await killAgent();
    startAgent();
    await until(
      () => `the restarted agent to connect${lastOutput()}`,
      async () => ((await connectionState()) === 'connected' ? true : undefined),
      30_000,
    );
  });

  test('an agent that was down past its certificate’s expiry is refused with ZEN_CERTIFICATE_EXPIRED', async () => {
    const id = (await theAgent())!.id;
    await killAgent();
    const newest = (await certificates(id)).at(-1)!;
    await until(
      'the newest certificate to expire',
      async () => (Date.now() > newest.notAfter + 500 ? true : undefined),
      validityMs + 5_000,
    );
    startAgent();
    const [code] = (await once(agent!.process, 'exit')) as [number | null];
    assert.notEqual(code, 0);
    assert.match(agent!.output(), /ZEN_CERTIFICATE_EXPIRED/);
  });
});
