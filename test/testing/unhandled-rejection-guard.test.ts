import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { spawnAgent } from '../../src/testing/agent-process.js';
import { startTestServer } from '../../src/testing/control-plane.js';
import {
  deliberateRejectionEnv,
  deliberateRejectionMessage,
} from '../../src/testing/deliberate-rejection.js';
import { startServerProcess } from '../../src/testing/server-process.js';
import { until } from '../../src/testing/wait.js';

const root = join(import.meta.dirname, '..', '..');

/** The product's report: one pino line at level fatal with the code and the error. */
function reportIn(output: string): { level: number; code: string; err: { message: string } } {
  const line = output.split('\n').find((l) => l.includes('"code":"ZEN_UNHANDLED_REJECTION"'));
  assert.ok(line, `no ZEN_UNHANDLED_REJECTION line in:\n${output}`);
  return JSON.parse(line) as { level: number; code: string; err: { message: string } };
}

/** Runs one file as scripts/test runs the suite's files: the same runner and preloads. */
function runLikeTheSuite(file: string): Promise<{ code: number | null; output: string }> {
  const env: Record<string, string | undefined> = { ...process.env };
  // This process is itself a test file's: the nested runner must not report as one.
  delete env.NODE_TEST_CONTEXT;
  const child = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      '--import',
      './scripts/test-file-times.mjs',
      '--import',
      './scripts/test-process-guard.mjs',
      'scripts/run-tests.mjs',
      file,
    ],
    { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  return new Promise((resolve) => child.once('close', (code) => resolve({ code, output })));
}

test('zenith serve with a rejection nothing handles reports it under its code and exits with 70; the test that ends it fails, naming it and showing its log', async () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'zenith-guard-serve-'));
  try {
    const server = await startServerProcess({ dataDir, env: deliberateRejectionEnv() });
    const exited = new Promise((resolve) => server.process.once('close', resolve));
    server.process.kill('SIGUSR2');
    assert.equal(await exited, 70);
    const report = reportIn(server.output());
    assert.equal(report.level, 60, 'fatal');
    assert.equal(report.err.message, deliberateRejectionMessage);
    await assert.rejects(server.kill(), (error: Error) => {
      assert.match(error.message, /^zenith serve \(.*\) reported an unhandled promise rejection/);
      assert.match(error.message, /zenith is serving/, 'with its log');
      assert.ok(error.message.includes(deliberateRejectionMessage));
      return true;
    });
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
  }
});

test('zenith agent with a rejection nothing handles reports it under its code and exits with 70; the test that ends it fails, naming it and showing its log', async () => {
  const s = await startTestServer();
  const stateDir = mkdtempSync(join(tmpdir(), 'zenith-guard-agent-'));
  try {
    const token = await s.login();
    const enrollment = (await s.request('POST', '/agents/enrollment-tokens', { token, body: {} }))
      .body.token;
    const agent = spawnAgent({
      serverUrl: s.baseUrl,
      stateDir,
      storageRoots: [join(stateDir, 'images')],
      hostName: 'guard-host',
      extra: ['--token', enrollment],
      env: deliberateRejectionEnv(),
    });
    await until(
      () => `the agent's channel to open:\n${agent.output()}`,
      async () => (agent.output().includes('channel open') ? true : undefined),
    );
    const exited = new Promise((resolve) => agent.process.once('close', resolve));
    agent.process.kill('SIGUSR2');
    assert.equal(await exited, 70);
    assert.equal(reportIn(agent.output()).err.message, deliberateRejectionMessage);
    await assert.rejects(agent.kill(), (error: Error) => {
      assert.match(error.message, /^zenith agent \(guard-host\) reported an unhandled promise/);
      assert.match(error.message, /channel open/, 'with its log');
      return true;
    });
  } finally {
    await s.close();
    rmSync(stateDir, { recursive: true, force: true });
  }
});

test('a test file whose process leaves a rejection nothing handles fails, though its tests passed', async () => {
  const { code, output } = await runLikeTheSuite('test/testing/fixtures/leaves-a-rejection.ts');
  assert.equal(code, 1, output);
  assert.match(output, /^ok 1 - passes, and leaves a rejection behind/m, output);
  assert.match(output, /^not ok 1 - .*leaves-a-rejection\.ts$/m, output);
  assert.match(
    output,
    /leaves-a-rejection\.ts: 1 promise rejection\(s\) nothing handled; the first:\s*#? ?Error: a-rejection-left-behind-by-a-test/,
    output,
  );
});

test('a test file fails when a zenith serve it started reported an unhandled rejection, though no test ended that server', async () => {
  const { code, output } = await runLikeTheSuite('test/testing/fixtures/server-that-rejects.ts');
  assert.equal(code, 1, output);
  assert.match(output, /^ok 1 - passes, while the zenith serve it started/m, output);
  assert.match(output, /^not ok 1 - .*server-that-rejects\.ts$/m, output);
  assert.match(output, /zenith serve \(.*\) reported an unhandled promise rejection/, output);
  assert.ok(output.includes(deliberateRejectionMessage), output);
});
