/**
 * A private OpenLDAP server for tests: its own config and data under a temp
 * directory, a free port on 127.0.0.1, no system service. Seeded with people
 * and groups (groupOfNames) under dc=zenith,dc=test.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './ports.js';
import { until } from './wait.js';

export const ldapBase = 'dc=zenith,dc=test';
export const ldapAdminDn = `cn=admin,${ldapBase}`;
export const ldapAdminPassword = 'ldap-admin-password';

export interface LdapPerson {
  uid: string;
  password: string;
  groups: string[];
  department?: string;
}

export interface Slapd {
  url: string;
  /** Stops the server (the directory is down) and keeps its data. */
  stop(): Promise<void>;
  start(): Promise<void>;
  close(): Promise<void>;
}

function ldif(people: LdapPerson[]): string {
  const entries = [
    `dn: ${ldapBase}\nobjectClass: dcObject\nobjectClass: organization\no: Zenith tests\ndc: zenith`,
    `dn: ou=people,${ldapBase}\nobjectClass: organizationalUnit\nou: people`,
    `dn: ou=groups,${ldapBase}\nobjectClass: organizationalUnit\nou: groups`,
  ];
  for (const p of people)
    entries.push(
      [
        `dn: uid=${p.uid},ou=people,${ldapBase}`,
        'objectClass: inetOrgPerson',
        `uid: ${p.uid}`,
        `cn: ${p.uid}`,
        `sn: ${p.uid}`,
        `mail: ${p.uid}@zenith.test`,
        ...(p.department ? [`departmentNumber: ${p.department}`] : []),
        `userPassword: ${p.password}`,
      ].join('\n'),
    );
  const groups = [...new Set(people.flatMap((p) => p.groups))];
  for (const group of groups)
    entries.push(
      [
        `dn: cn=${group},ou=groups,${ldapBase}`,
        'objectClass: groupOfNames',
        `cn: ${group}`,
        ...people
          .filter((p) => p.groups.includes(group))
          .map((p) => `member: uid=${p.uid},ou=people,${ldapBase}`),
      ].join('\n'),
    );
  return `${entries.join('\n\n')}\n`;
}

export async function startSlapd(people: LdapPerson[]): Promise<Slapd> {
  const dir = mkdtempSync(join(tmpdir(), 'zenith-slapd-'));
  const dataDir = join(dir, 'data');
  mkdirSync(dataDir);
  const config = join(dir, 'slapd.conf');
  writeFileSync(
    config,
    [
      'include /etc/ldap/schema/core.schema',
      'include /etc/ldap/schema/cosine.schema',
      'include /etc/ldap/schema/inetorgperson.schema',
      'modulepath /usr/lib/ldap',
      'moduleload back_mdb',
      `pidfile ${join(dir, 'slapd.pid')}`,
      'database mdb',
      `suffix "${ldapBase}"`,
      `rootdn "${ldapAdminDn}"`,
      `rootpw ${ldapAdminPassword}`,
      `directory ${dataDir}`,
      'maxsize 16777216',
      'access to attrs=userPassword by anonymous auth by * none',
      'access to * by * read',
      '',
    ].join('\n'),
  );
  const seed = join(dir, 'seed.ldif');
  writeFileSync(seed, ldif(people));
  const added = spawnSync('slapadd', ['-f', config, '-l', seed], { encoding: 'utf8' });
  if (added.status !== 0) throw new Error(`slapadd failed: ${added.stderr}`);
  const port = await freePort();
  const url = `ldap://127.0.0.1:${port}`;
  let child: ChildProcess | null = null;
  const start = async () => {
    // -d 0: stay in the foreground (no daemonizing), quiet.
    child = spawn('slapd', ['-h', `${url}/`, '-f', config, '-d', '0'], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const running = child;
    await until(
      `slapd on ${url}`,
      async () => {
        if (running.exitCode !== null) throw new Error(`slapd exited: ${stderr}`);
        return new Promise<boolean | undefined>((resolve) => {
          const socket = connect(port, '127.0.0.1');
          socket.once('connect', () => (socket.destroy(), resolve(true)));
          socket.once('error', () => resolve(undefined));
        });
      },
      20_000,
      25,
    );
  };
  const stop = async () => {
    const running = child;
    child = null;
    if (!running || running.exitCode !== null) return;
    await new Promise<void>((resolve) => {
      running.once('exit', () => resolve());
      running.kill('SIGTERM');
    });
  };
  await start();
  return {
    url,
    start,
    stop,
    async close() {
      await stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
