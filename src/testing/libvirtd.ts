/**
 * A private libvirtd for one test file. It runs in its own mount namespace with
 * fresh /etc/libvirt, /run/libvirt, /var/lib/libvirt, /var/log/libvirt and
 * /var/cache/libvirt bind-mounted from a temporary directory, so it never meets
 * a system daemon or another test's daemon. Its unix socket lives in that
 * directory (visible from outside the namespace). virtlogd is started first in
 * the same namespace, as QEMU domains need it.
 *
 *   const daemon = await startLibvirtd({ tcp: true, tls: true });
 *   ... connectUnixSocket(daemon.socketPath) ...
 *   await daemon.stop();
 */
import { execFile, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import {
  copyFile,
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  rename,
  rm,
  writeFile,
} from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { LibvirtClient } from '../protocols/libvirt/libvirt-client.js';
import { storagePoolCreateXml } from '../protocols/libvirt/procedures/storage.js';
import { connectUnixSocket } from '../protocols/libvirt/transports.js';

const run = promisify(execFile);

/**
 * libvirt's cache of what the QEMU binary can do (/var/cache/libvirt/qemu/capabilities), kept
 * across this machine's test daemons as a real host keeps it across restarts of its daemon: a
 * daemon with an empty cache probes QEMU at its first QEMU connection, some 3–4 s. libvirt checks
 * each cached file against the binary and itself (ctimes, versions) and probes again when it no
 * longer matches; what a daemon cached is copied back here when it stops.
 */
const capabilitiesSeed = join(
  import.meta.dirname,
  '..',
  '..',
  '.cache',
  'libvirt',
  'qemu-capabilities',
);

async function seedCapabilities(cacheDir: string): Promise<void> {
  const target = join(cacheDir, 'qemu', 'capabilities');
  await mkdir(target, { recursive: true });
  for (const file of await readdir(capabilitiesSeed).catch(() => []))
    if (file.endsWith('.xml')) await copyFile(join(capabilitiesSeed, file), join(target, file));
}

async function keepCapabilities(cacheDir: string): Promise<void> {
  const source = join(cacheDir, 'qemu', 'capabilities');
  const files = (await readdir(source).catch(() => [])).filter((file) => file.endsWith('.xml'));
  if (files.length === 0) return;
  await mkdir(capabilitiesSeed, { recursive: true });
  for (const file of files) {
    // Written aside, then renamed: a daemon starting meanwhile copies a whole file or none.
    const temporary = join(capabilitiesSeed, `.${file}.${process.pid}.${randomUUID()}`);
    await copyFile(join(source, file), temporary);
    await rename(temporary, join(capabilitiesSeed, file));
  }
}

export interface LibvirtdOptions {
  /** Listen on plain TCP (auth none) on 127.0.0.1. */
  tcp?: boolean;
  /** Listen on TLS on 127.0.0.1 with a fresh CA, server and client certificate. */
  tls?: boolean;
  /** Start virtlogd in the namespace first (needed by QEMU domains). Default true. */
  virtlogd?: boolean;
  /** Extra lines for qemu.conf. */
  qemuConf?: string;
  /** libvirtd keepalive_interval in seconds (default 5). */
  keepaliveIntervalSeconds?: number;
}

export interface LibvirtdDaemon {
  readonly root: string;
  readonly socketPath: string;
  readonly tcpPort: number | undefined;
  readonly tlsPort: number | undefined;
  /** Directory with cacert.pem, clientcert.pem and clientkey.pem for TLS clients. */
  readonly clientPkiDirectory: string | undefined;
  readonly logPath: string;
  /** libvirtd's process id (a new one after boot()). */
  readonly pid: number;
  /**
   * What a crash of the host does: SIGKILL to libvirtd, virtlogd and every QEMU the daemon
   * started, at once (QEMU outlives libvirtd otherwise). Its state stays for boot().
   */
  crash(): Promise<void>;
  /** Starts the daemon again on its state after a crash, as the host booting again. */
  boot(): Promise<void>;
  /** Makes a transient directory storage pool `name` on `directory` (made if need be), as an operator would. */
  createDirPool(name: string, directory: string): Promise<void>;
  stop(): Promise<void>;
}

const REQUIRED = ['libvirtd', 'virtlogd', 'unshare', 'mount'];

async function requireBinaries(tls: boolean): Promise<void> {
  const needed = tls ? [...REQUIRED, 'openssl'] : REQUIRED;
  for (const binary of needed) {
    try {
      await run('sh', ['-c', `command -v ${binary}`]);
    } catch {
      throw new Error(
        `libvirtd test fixture: '${binary}' is missing. Install the Debian packages of scripts/test-debs.txt (apt-get install -y libvirt-daemon-system libvirt-clients openssl).`,
      );
    }
  }
  if (process.getuid?.() !== 0) {
    throw new Error(
      'libvirtd test fixture: must run as root (it starts a system libvirtd in a private mount namespace)',
    );
  }
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

async function makePki(directory: string): Promise<{ serverDir: string; clientDir: string }> {
  const serverDir = join(directory, 'server');
  const clientDir = join(directory, 'client');
  await mkdir(serverDir, { recursive: true });
  await mkdir(clientDir, { recursive: true });
  const ca = join(directory, 'cacert.pem');
  const caKey = join(directory, 'cakey.pem');
  await run('openssl', [
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-keyout',
    caKey,
    '-out',
    ca,
    '-days',
    '2',
    '-subj',
    '/CN=Zenith test CA',
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
  ]);
  const issue = async (
    name: string,
    cn: string,
    extensions: string,
    keyOut: string,
    certOut: string,
  ) => {
    const csr = join(directory, `${name}.csr`);
    const ext = join(directory, `${name}.ext`);
    await writeFile(ext, extensions);
    await run('openssl', [
      'req',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      keyOut,
      '-out',
      csr,
      '-subj',
      `/CN=${cn}`,
    ]);
    await run('openssl', [
      'x509',
      '-req',
      '-in',
      csr,
      '-CA',
      ca,
      '-CAkey',
      caKey,
      '-CAcreateserial',
      '-out',
      certOut,
      '-days',
      '2',
      '-extfile',
      ext,
    ]);
  };
  const common =
    'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n';
  await issue(
    'server',
    'localhost',
    `${common}extendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n`,
    join(serverDir, 'serverkey.pem'),
    join(serverDir, 'servercert.pem'),
  );
  await issue(
    'client',
    'zenith-test-client',
    `${common}extendedKeyUsage=clientAuth\n`,
    join(clientDir, 'clientkey.pem'),
    join(clientDir, 'clientcert.pem'),
  );
  await writeFile(join(serverDir, 'cacert.pem'), await readFile(ca));
  await writeFile(join(clientDir, 'cacert.pem'), await readFile(ca));
  return { serverDir, clientDir };
}

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function stopPid(pid: number): Promise<void> {
  if (!isRunning(pid)) return;
  process.kill(pid, 'SIGTERM');
  const deadline = Date.now() + 10_000;
  while (isRunning(pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 25));
  if (isRunning(pid)) process.kill(pid, 'SIGKILL');
  while (isRunning(pid)) await new Promise((r) => setTimeout(r, 25));
}

async function readPid(path: string): Promise<number | undefined> {
  try {
    const pid = Number((await readFile(path, 'utf8')).trim());
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

function quote(value: string): string {
  return `'${value.replaceAll("'", `'\\''`)}'`;
}

export async function startLibvirtd(options: LibvirtdOptions = {}): Promise<LibvirtdDaemon> {
  await requireBinaries(options.tls === true);
  const root = await mkdtemp(join(tmpdir(), 'zenith-libvirtd-'));
  const dirs = {
    etc: join(root, 'etc'),
    run: join(root, 'run'),
    lib: join(root, 'lib'),
    log: join(root, 'log'),
    cache: join(root, 'cache'),
    sock: join(root, 'sock'),
  };
  for (const dir of Object.values(dirs)) await mkdir(dir, { recursive: true });
  for (const sub of ['qemu', 'images', 'boot', 'network', 'dnsmasq'])
    await mkdir(join(dirs.lib, sub), { recursive: true });
  await mkdir(join(dirs.log, 'qemu'), { recursive: true });
  await seedCapabilities(dirs.cache);
  const logPath = join(root, 'libvirtd.log');
  const tcpPort = options.tcp ? await freePort() : undefined;
  const tlsPort = options.tls ? await freePort() : undefined;
  const pki = options.tls ? await makePki(join(root, 'pki')) : undefined;
  const conf = [
    `unix_sock_dir = "${dirs.sock}"`,
    'unix_sock_rw_perms = "0700"',
    'auth_unix_rw = "none"',
    'auth_unix_ro = "none"',
    `listen_tcp = ${tcpPort ? 1 : 0}`,
    `listen_tls = ${tlsPort ? 1 : 0}`,
    'listen_addr = "127.0.0.1"',
    `tcp_port = "${tcpPort ?? 16509}"`,
    `tls_port = "${tlsPort ?? 16514}"`,
    'auth_tcp = "none"',
    'auth_tls = "none"',
    `host_uuid = "${randomUUID()}"`,
    `log_outputs = "3:file:${logPath}"`,
    `keepalive_interval = ${options.keepaliveIntervalSeconds ?? 5}`,
    'max_client_requests = 20',
    ...(pki
      ? [
          `key_file = "${join(pki.serverDir, 'serverkey.pem')}"`,
          `cert_file = "${join(pki.serverDir, 'servercert.pem')}"`,
          `ca_file = "${join(pki.serverDir, 'cacert.pem')}"`,
        ]
      : []),
  ];
  await writeFile(join(dirs.etc, 'libvirtd.conf'), conf.join('\n') + '\n');
  await writeFile(
    join(dirs.etc, 'qemu.conf'),
    ['stdio_handler = "file"', 'cgroup_controllers = [ ]', options.qemuConf ?? ''].join('\n') +
      '\n',
  );
  await writeFile(
    join(dirs.etc, 'virtlogd.conf'),
    `log_outputs = "3:file:${join(root, 'virtlogd.log')}"\n`,
  );
  await mkdir('/run/libvirt', { recursive: true });
  const libvirtdPidFile = join(root, 'libvirtd.pid');
  const virtlogdPidFile = join(root, 'virtlogd.pid');
  const script = [
    'set -e',
    `mount --bind ${quote(dirs.etc)} /etc/libvirt`,
    `mount --bind ${quote(dirs.run)} /run/libvirt`,
    `mount --bind ${quote(dirs.lib)} /var/lib/libvirt`,
    `mount --bind ${quote(dirs.log)} /var/log/libvirt`,
    `mount --bind ${quote(dirs.cache)} /var/cache/libvirt`,
    options.virtlogd === false ? 'true' : `virtlogd -d -p ${quote(virtlogdPidFile)}`,
    `exec libvirtd -d ${tcpPort || tlsPort ? '--listen ' : ''}-p ${quote(libvirtdPidFile)} -f /etc/libvirt/libvirtd.conf`,
  ].join('\n');
  const stopAll = async () => {
    for (const file of [libvirtdPidFile, virtlogdPidFile]) {
      const pid = await readPid(file);
      if (pid) await stopPid(pid);
    }
    await keepCapabilities(dirs.cache).catch(() => undefined);
    await rm(root, { recursive: true, force: true });
  };
  const socketPath = join(dirs.sock, 'libvirt-sock');
  const start = async (): Promise<void> => {
    // A crashed daemon leaves its sockets behind: only a new one says the daemon is up.
    for (const file of await readdir(dirs.sock).catch(() => []))
      await rm(join(dirs.sock, file), { force: true });
    const output = await new Promise<{ code: number | null; text: string }>((resolve) => {
      const child = spawn('unshare', ['-m', '--propagation', 'private', 'sh', '-c', script], {
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let text = '';
      child.stdout.on('data', (d: Buffer) => (text += d.toString()));
      child.stderr.on('data', (d: Buffer) => (text += d.toString()));
      child.on('close', (code) => resolve({ code, text }));
    });
    const deadline = Date.now() + 20_000;
    while (output.code === 0 && !existsSync(socketPath) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
    }
    if (output.code !== 0 || !existsSync(socketPath)) {
      const log = await readFile(logPath, 'utf8').catch(() => '');
      await stopAll();
      throw new Error(
        `libvirtd did not start (exit ${output.code}): ${output.text.trim()}\n--- libvirtd.log ---\n${log.slice(-4000)}`,
      );
    }
  };
  const kill = async (files: string[]): Promise<void> => {
    for (const file of files) {
      const pid = await readPid(file);
      if (pid !== undefined && isRunning(pid)) process.kill(pid, 'SIGKILL');
    }
  };
  const qemuPidFiles = async () =>
    (await readdir(join(dirs.run, 'qemu')).catch(() => []))
      .filter((file) => file.endsWith('.pid'))
      .map((file) => join(dirs.run, 'qemu', file));
  const crash = async () => kill([libvirtdPidFile, virtlogdPidFile, ...(await qemuPidFiles())]);
  await start();
  let pid = (await readPid(libvirtdPidFile)) ?? 0;
  let stopped: Promise<void> | undefined;
  return {
    root,
    socketPath,
    tcpPort,
    tlsPort,
    clientPkiDirectory: pki?.clientDir,
    logPath,
    get pid() {
      return pid;
    },
    crash,
    boot: async () => {
      await start();
      pid = (await readPid(libvirtdPidFile)) ?? 0;
    },
    createDirPool: async (name, directory) => {
      await mkdir(directory, { recursive: true });
      const admin = await LibvirtClient.connect(() => connectUnixSocket(socketPath), {
        uri: 'qemu:///system',
      });
      try {
        await admin.call(storagePoolCreateXml, {
          xml: `<pool type='dir'><name>${name}</name><target><path>${directory}</path></target></pool>`,
          flags: 0,
        });
      } finally {
        await admin.close();
      }
    },
    // QEMU outlives libvirtd: the guests a test left running go with their daemon.
    stop: () => (stopped ??= qemuPidFiles().then(kill).then(stopAll)),
  };
}
