/**
 * Builds a small Go program of this repository against Debian's Go packages
 * (GOPATH=/usr/share/gocode, no modules, nothing downloaded) into
 * .cache/go/<name>-<key>/, once: the key covers the sources and the versions
 * of Go and govmomi, so a change to either builds again. Concurrent builders
 * each build in a temp dir and the first rename wins.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
} from 'node:fs';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
const repoRoot = resolve(import.meta.dirname, '..', '..');
const cacheDir = join(repoRoot, '.cache', 'go');
const building = new Map<string, Promise<string>>();

/** The packages the Go programs are built from (the test command installs them). */
export const goDebianPackages = ['golang-go', 'golang-github-vmware-govmomi-dev'];

/** Answers the path of the built binary of the program in `sourceDir` (relative to the repository). */
export function ensureGoProgram(name: string, sourceDir: string): Promise<string> {
  let pending = building.get(name);
  if (!pending) {
    pending = buildOnce(name, join(repoRoot, sourceDir)).catch((error: unknown) => {
      building.delete(name);
      throw error;
    });
    building.set(name, pending);
  }
  return pending;
}

async function buildOnce(name: string, source: string): Promise<string> {
  const versions = await packageVersions();
  const hash = createHash('sha256').update(versions);
  for (const file of readdirSync(source)
    .filter((f) => f.endsWith('.go'))
    .sort())
    hash.update(file).update(readFileSync(join(source, file)));
  const finalDir = join(cacheDir, `${name}-${hash.digest('hex').slice(0, 16)}`);
  const binary = join(finalDir, name);
  if (existsSync(binary)) return binary;
  mkdirSync(cacheDir, { recursive: true });
  const work = mkdtempSync(join(cacheDir, `.build-${name}-`));
  try {
    await run('go', ['build', '-o', join(work, name), '.'], {
      cwd: source,
      env: {
        ...process.env,
        GO111MODULE: 'off',
        GOPATH: '/usr/share/gocode',
        GOCACHE: join(cacheDir, 'build-cache'),
        GOFLAGS: '',
      },
      maxBuffer: 16 * 1024 * 1024,
    }).catch((error: Error & { stderr?: string }) => {
      throw new Error(`go build of ${name} failed: ${error.stderr ?? error.message}`, {
        cause: error,
      });
    });
    try {
      renameSync(work, finalDir);
    } catch (error) {
      if (!existsSync(binary)) throw error;
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  return binary;
}

async function packageVersions(): Promise<string> {
  try {
    const { stdout } = await run('dpkg-query', [
      '-W',
      '-f',
      '${Package}=${Version}\n',
      ...goDebianPackages,
    ]);
    return stdout;
  } catch (error) {
    throw new Error(
      `Go and govmomi are missing: the test command installs them from scripts/test-debs.txt (apt-get install -y ${goDebianPackages.join(' ')})`,
      { cause: error },
    );
  }
}
