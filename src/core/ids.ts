import { randomBytes } from 'node:crypto';
import { ZenithError } from './errors.js';

/** Every object id is `prefix_` + 26 characters: 10 of time, 16 of randomness (Crockford base32, ULID layout). */
export const idPrefixes = {
  datacenter: 'dc',
  cluster: 'cl',
  host: 'host',
  vm: 'vm',
  network: 'net',
  datastore: 'ds',
  resourceGroup: 'rg',
  connection: 'conn',
  user: 'usr',
  service: 'svc',
  token: 'tok',
  task: 'task',
  agent: 'agent',
  enrollment: 'enr',
  rateCard: 'rc',
  group: 'grp',
  role: 'role',
  binding: 'bind',
  policy: 'pol',
  plan: 'plan',
  failover: 'failover',
  backup: 'backup',
  backupRepository: 'brepo',
  backupJob: 'bjob',
  site: 'site',
  replication: 'repl',
  replicaPoint: 'rpt',
  recoveryPlan: 'rplan',
  recoveryRun: 'rrun',
  replicaLeftover: 'rlft',
  image: 'img',
} as const;

export type IdKind = keyof typeof idPrefixes;
export type IdPrefix = (typeof idPrefixes)[IdKind];

const alphabet = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
const idPattern = /^([a-z]+)_([0-9A-HJKMNP-TV-Z]{26})$/;

function encodeTime(ms: number): string {
  let out = '';
  let rest = ms;
  for (let i = 0; i < 10; i++) {
    out = alphabet[rest % 32]! + out;
    rest = Math.floor(rest / 32);
  }
  return out;
}

export function newId(kind: IdKind, nowMs: number = Date.now()): string {
  const bytes = randomBytes(16);
  let random = '';
  for (const byte of bytes) random += alphabet[byte % 32]!;
  return `${idPrefixes[kind]}_${encodeTime(nowMs)}${random}`;
}

export function isId(value: string, kind?: IdKind): boolean {
  const match = idPattern.exec(value);
  if (!match) return false;
  return kind === undefined || match[1] === idPrefixes[kind];
}

export function assertId(value: string, kind: IdKind): string {
  if (!isId(value, kind)) {
    throw new ZenithError(
      'ZEN_BAD_ID',
      `'${value}' is not a ${kind} id (expected ${idPrefixes[kind]}_ followed by 26 characters)`,
      { value, expectedPrefix: idPrefixes[kind] },
    );
  }
  return value;
}
