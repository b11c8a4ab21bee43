/**
 * bin/zenith.js runs the sources from a bundle it keeps in .cache/cli/ (decision 22): an edited
 * source is what runs next, concurrent starts agree, tsx gives the same command, and `zenith serve`
 * from the bundle still finds the web console next to the sources.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { startServerProcess } from '../../src/testing/server-process.js';

const root = join(import.meta.dirname, '..', '..');

function run(bin: string, args: string[], env: Record<string, string> = {}) {
  return new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
    const child = spawn(process.execPath, [bin, ...args], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.once('exit', (code) => resolve({ code: code ?? 1, stdout, stderr }));
  });
}

describe('the zenith command from its cached bundle', () => {
  // A copy of the command and its sources, so that editing a source touches nothing of the checkout.
  const copy = mkdtempSync(join(tmpdir(), 'zenith-cli-bundle-'));
  cpSync(join(root, 'bin'), join(copy, 'bin'), { recursive: true });
  cpSync(join(root, 'src'), join(copy, 'src'), { recursive: true });
  cpSync(join(root, 'package.json'), join(copy, 'package.json'));
  symlinkSync(join(root, 'node_modules'), join(copy, 'node_modules'));
  const bin = join(copy, 'bin', 'zenith.js');
  const manifest = () =>
    JSON.parse(readFileSync(join(copy, '.cache', 'cli', 'manifest.json'), 'utf8')) as {
      bundle: string;
      inputs: Record<string, string>;
    };
  after(() => rmSync(copy, { recursive: true, force: true }));

  test('a start builds the bundle once, reuses it, and rebuilds it when a source changes', async () => {
    const first = await run(bin, ['--help']);
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stdout, /one control plane for virtual machines/);
    const built = manifest();
    assert.ok(built.inputs['src/cli/main.ts'], JSON.stringify(Object.keys(built.inputs)));
    assert.ok(built.inputs['src/core/errors.ts']);

    const again = await run(bin, ['--help']);
    assert.equal(again.stdout, first.stdout);
    assert.equal(manifest().bundle, built.bundle, 'an unchanged source is not rebuilt');

    // A module main.ts imports, not main.ts itself: the manifest covers every input.
    const output = join(copy, 'src', 'cli', 'output.ts');
    writeFileSync(
      output,
      `${readFileSync(output, 'utf8')}\nprocess.stdout.write('edited since the last build\\n');\n`,
    );
    const edited = await run(bin, ['--help']);
    assert.equal(edited.code, 0, edited.stderr);
    assert.match(edited.stdout, /edited since the last build/);
    assert.notEqual(manifest().bundle, built.bundle);

    const throughTsx = await run(bin, ['--help'], { ZENITH_CLI_NO_BUNDLE: '1' });
    assert.equal(throughTsx.code, 0, throughTsx.stderr);
    assert.equal(throughTsx.stdout, edited.stdout);
  });

  test('starts that find the bundle stale at the same time all run the new sources', async () => {
    const main = join(copy, 'src', 'cli', 'main.ts');
    writeFileSync(
      main,
      readFileSync(main, 'utf8').replace(
        "'Zenith: one control plane",
        "'Zenith (rebuilt concurrently): one control plane",
      ),
    );
    const results = await Promise.all([1, 2, 3, 4].map(() => run(bin, ['--help'])));
    for (const result of results) {
      assert.equal(result.code, 0, result.stderr);
      assert.match(result.stdout, /Zenith \(rebuilt concurrently\)/);
    }
    const settled = manifest().bundle;
    const after = await run(bin, ['--help']);
    assert.match(after.stdout, /Zenith \(rebuilt concurrently\)/);
    assert.equal(manifest().bundle, settled, 'the manifest left names a complete, fresh build');
  });

  test('zenith serve from the bundle serves the web console next to the sources', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'zenith-cli-bundle-serve-'));
    const server = await startServerProcess({ dataDir });
    try {
      const page = await fetch(`${server.url}/`);
      assert.equal(page.status, 200, server.output());
      assert.match(page.headers.get('content-type') ?? '', /text\/html/);
      assert.equal(
        await page.text(),
        readFileSync(join(root, 'web', 'dist', 'index.html'), 'utf8'),
      );
    } finally {
      await server.kill();
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
