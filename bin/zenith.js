#!/usr/bin/env node
// The `zenith` command runs the TypeScript sources, so there is no build step to forget. They are
// bundled with esbuild (the compiler tsx uses) into .cache/cli/ and the bundle is reused while none of
// its input files changed: a command starts in about half the time tsx needs to compile and resolve
// every module on each start (docs/decisions/0023-cli-bundle-cache.md). When the bundle cannot be
// built or written, the sources run through tsx as before.
import { randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync } from 'node:fs';
import { writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const entry = join(root, 'src', 'cli', 'main.ts');
const cacheDir = join(root, '.cache', 'cli');
const manifestPath = join(cacheDir, 'manifest.json');

/** What says an input changed: its size and modification time (a checkout or an edit changes it). */
const stamp = (path) => {
  const stats = statSync(path);
  return `${stats.size}:${stats.mtimeMs}`;
};

/** The bundle named by the manifest when every one of its inputs is unchanged; otherwise null. */
function freshBundle() {
  let manifest;
  try {
    manifest = JSON.parse(readFileSync(manifestPath, 'utf8'));
    for (const [input, known] of Object.entries(manifest.inputs)) {
      if (stamp(join(root, input)) !== known) return null;
    }
    statSync(join(cacheDir, manifest.bundle, 'main.js'));
  } catch {
    return null;
  }
  return join(cacheDir, manifest.bundle, 'main.js');
}

/**
 * A module that finds files relative to itself (src/server/web-console.ts: ../../web/dist) must
 * keep its own location in the bundle: import.meta.url, .dirname and .filename become its source's.
 */
const ownLocation = {
  name: 'own-location',
  setup(build) {
    build.onLoad({ filter: /\.ts$/ }, (args) => {
      const source = readFileSync(args.path, 'utf8');
      if (!source.includes('import.meta.')) return undefined;
      const values = {
        url: pathToFileURL(args.path).href,
        dirname: dirname(args.path),
        filename: args.path,
      };
      return {
        contents: source.replace(/\bimport\.meta\.(url|dirname|filename)\b/g, (_, key) =>
          JSON.stringify(values[key]),
        ),
        loader: 'ts',
      };
    });
  },
};

/**
 * Packages stay in node_modules and load from there, except TypeBox: the agent channel's schemas
 * use it, and loaded as its ~200 separate modules it added about a second to every agent start
 * (a restarted agent must be back before its short-lived test certificate expires).
 */
const bundledPackages = new Set(['typebox']);
const packagesOutside = {
  name: 'packages-outside',
  setup(build) {
    build.onResolve({ filter: /^[^./]/ }, (args) => {
      const name = args.path.startsWith('@')
        ? args.path.split('/').slice(0, 2).join('/')
        : args.path.split('/')[0];
      return bundledPackages.has(name) ? undefined : { path: args.path, external: true };
    });
  },
};

async function buildBundle() {
  const { build } = await import('esbuild');
  mkdirSync(cacheDir, { recursive: true });
  const name = `build-${Date.now()}-${randomBytes(4).toString('hex')}`;
  const result = await build({
    entryPoints: [entry],
    // The metafile names inputs relative to this directory, as the manifest keeps them.
    absWorkingDir: root,
    outdir: join(cacheDir, name),
    outExtension: { '.js': '.js' },
    // Modules a command imports when it runs (the server's, the agent's) go into chunks of their
    // own, so that the other commands do not load them.
    splitting: true,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    sourcemap: 'linked',
    metafile: true,
    logLevel: 'silent',
    plugins: [ownLocation, packagesOutside],
  });
  const inputs = {};
  for (const input of Object.keys(result.metafile.inputs)) {
    inputs[input] = stamp(join(root, input));
  }
  // Concurrent starts may each build: every bundle has its own name and the manifest is replaced
  // atomically, so a reader sees one complete manifest naming a complete bundle.
  const temporary = `${manifestPath}.${process.pid}.${randomBytes(4).toString('hex')}`;
  writeFileSync(temporary, JSON.stringify({ bundle: name, inputs }));
  renameSync(temporary, manifestPath);
  removeOldBundles(name);
  return join(cacheDir, name, 'main.js');
}

/** Builds other than the current one, once they are old enough that no running process still loads them. */
function removeOldBundles(current) {
  const now = Date.now();
  for (const file of readdirSync(cacheDir)) {
    if (!file.startsWith('build-') || file === current) continue;
    try {
      const path = join(cacheDir, file);
      // A long-running `zenith serve` may still import a chunk of its build: keep a day.
      if (now - statSync(path).mtimeMs > 86_400_000) rmSync(path, { recursive: true, force: true });
    } catch {
      // Another process removed it first.
    }
  }
}

// ZENITH_CLI_NO_BUNDLE=1 runs the sources through tsx, bypassing the cache.
const useBundle = process.env.ZENITH_CLI_NO_BUNDLE !== '1';
let bundle = useBundle ? freshBundle() : null;
if (useBundle && !bundle) {
  try {
    bundle = await buildBundle();
  } catch {
    bundle = null;
  }
}
if (bundle) {
  process.setSourceMapsEnabled(true);
  await import(pathToFileURL(bundle).href);
} else {
  const { register } = await import('tsx/esm/api');
  register();
  await import(pathToFileURL(entry).href);
}
