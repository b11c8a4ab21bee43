/**
 * The agent's own credentials: an ECDSA P-256 key pair made on the host (the
 * private key never leaves it) and the client certificate Zenith's CA signed
 * for it. Enrollment sends a CSR with the one-time token; renewal sends a CSR
 * for a new key pair over the authenticated channel. Kept in one file, mode
 * 0600, replaced atomically (write, then rename) so that a crash leaves the
 * old credentials or the new ones, never half of each.
 */
import 'reflect-metadata';
import { cryptoProvider, Pkcs10CertificateRequestGenerator } from '@peculiar/x509';
import { createPrivateKey, sign, webcrypto } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { errorFromBody, ZenithError } from '../core/errors.js';

cryptoProvider.set(webcrypto as unknown as Parameters<typeof cryptoProvider.set>[0]);

const algorithm = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;

export interface AgentCredentials {
  server: string;
  agentId: string;
  /** PEM: the client certificate. */
  certificate: string;
  /** PEM (PKCS#8): the agent's private key. */
  privateKey: string;
  /** PEM: Zenith's CA, as the control plane gave it at enrollment. */
  caCertificate: string;
}

/** A new key pair and a CSR for it; the key stays with the caller. */
export async function newKeyAndRequest(
  hostName: string,
): Promise<{ privateKey: string; csr: string }> {
  const keys = await webcrypto.subtle.generateKey(algorithm, true, ['sign', 'verify']);
  const csr = await Pkcs10CertificateRequestGenerator.create({
    name: `CN=${hostName.replace(/[,=+<>#;\\"]/g, '-')}`,
    // The library's types name DOM's CryptoKey, which this Node project does not load.
    keys: keys as never,
    signingAlgorithm: algorithm,
  });
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey));
  return {
    privateKey: `-----BEGIN PRIVATE KEY-----\n${pkcs8.toString('base64')}\n-----END PRIVATE KEY-----\n`,
    csr: csr.toString('pem'),
  };
}

/** The channel proof: the agent's signature (DER ECDSA, base64) over the control plane's nonce. */
export function signChallenge(credentials: AgentCredentials, nonce: string): string {
  return sign(
    'sha256',
    Buffer.from(`zenith-agent-channel:v1:${nonce}`, 'utf8'),
    createPrivateKey(credentials.privateKey),
  ).toString('base64');
}

export class CredentialStore {
  readonly file: string;

  constructor(private readonly stateDir: string) {
    this.file = join(stateDir, 'credentials.json');
  }

  load(): AgentCredentials | undefined {
    if (!existsSync(this.file)) return undefined;
    const stored = JSON.parse(readFileSync(this.file, 'utf8')) as Partial<AgentCredentials> & {
      token?: string;
    };
    if (!stored.certificate || !stored.privateKey || !stored.agentId || !stored.server)
      throw new ZenithError(
        'ZEN_UNAUTHENTICATED',
        `${this.file} holds bearer credentials from before client certificates: enroll this host again (remove the file, pass --token with a new one-time token)`,
      );
    return stored as AgentCredentials;
  }

  save(credentials: AgentCredentials): void {
    mkdirSync(this.stateDir, { recursive: true, mode: 0o700 });
    const next = `${this.file}.next`;
    writeFileSync(next, `${JSON.stringify(credentials, null, 2)}\n`, { mode: 0o600 });
    chmodSync(next, 0o600);
    renameSync(next, this.file);
  }
}

/** Trades the one-time token and a CSR for a certificate. */
export async function enroll(options: {
  server: string;
  enrollmentToken: string;
  hostName: string;
}): Promise<AgentCredentials> {
  const { privateKey, csr } = await newKeyAndRequest(options.hostName);
  const response = await fetch(`${options.server}/api/v1/agents/enroll`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      enrollmentToken: options.enrollmentToken,
      hostname: options.hostName,
      csr,
    }),
  }).catch((error: unknown) => {
    throw new ZenithError(
      'ZEN_CONNECTION_FAILED',
      `cannot reach ${options.server}: ${(error as Error).message}`,
    );
  });
  const body = (await response.json()) as {
    agent?: { id: string };
    certificate?: { certificate: string };
    caCertificate?: string;
  };
  if (!response.ok || !body.agent || !body.certificate || !body.caCertificate)
    throw errorFromBody(body, `enrollment failed (HTTP ${response.status})`);
  return {
    server: options.server,
    agentId: body.agent.id,
    certificate: body.certificate.certificate,
    privateKey,
    caCertificate: body.caCertificate,
  };
}
