/**
 * Zenith's own certificate authority: an ECDSA P-256 key and a self-signed
 * certificate, made on the first start and kept in the store with the key
 * sealed by the secret box (never logged, never sent). It signs the client
 * certificates of host agents from their certificate signing requests, and
 * checks that a certificate an agent presents is one of its own.
 *
 * X.509 is written with @peculiar/x509 (Node cannot create certificates) over
 * Node's WebCrypto; certificates are read back with Node's own X509Certificate.
 */
import 'reflect-metadata';
import {
  BasicConstraintsExtension,
  cryptoProvider,
  ExtendedKeyUsage,
  ExtendedKeyUsageExtension,
  KeyUsageFlags,
  KeyUsagesExtension,
  Pkcs10CertificateRequest,
  SubjectAlternativeNameExtension,
  X509Certificate as GeneratedCertificate,
  X509CertificateGenerator,
} from '@peculiar/x509';
import { randomBytes, webcrypto, X509Certificate, type KeyObject } from 'node:crypto';
import type { Clock } from '../../core/clock.js';
import { ZenithError } from '../../core/errors.js';
import type { SecretBox } from '../../core/secret-box.js';
import type { Store } from '../../store/store.js';

cryptoProvider.set(webcrypto as unknown as Parameters<typeof cryptoProvider.set>[0]);

type CryptoKey = webcrypto.CryptoKey;

const algorithm = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const caId = 'agents';
const caValidityMs = 10 * 365 * 86_400_000;

export interface IssuedCertificate {
  /** Lower-case hex. */
  serial: string;
  /** PEM. */
  certificate: string;
  notBefore: number;
  notAfter: number;
}

/** What a checked certificate says. */
export interface CertificateFacts {
  serial: string;
  agentId: string;
  notBefore: number;
  notAfter: number;
  publicKey: KeyObject;
}

function invalid(message: string, details: Record<string, unknown> = {}): ZenithError {
  return new ZenithError('ZEN_CERTIFICATE_INVALID', message, details);
}

/** X.509 times have whole seconds: a validity is cut to them so that what is stored is what is signed. */
function toSeconds(ms: number): number {
  return Math.floor(ms / 1000) * 1000;
}

export class CertificateAuthority {
  readonly #certificate: X509Certificate;
  readonly #issuerName: string;
  readonly #signingKey: CryptoKey;

  private constructor(
    readonly certificatePem: string,
    signingKey: CryptoKey,
    private readonly clock: Clock,
  ) {
    this.#certificate = new X509Certificate(certificatePem);
    this.#issuerName = new GeneratedCertificate(certificatePem).subject;
    this.#signingKey = signingKey;
  }

  /** The CA in the store, or a new one (a second replica starting at the same time takes the first's). */
  static async loadOrCreate(deps: {
    store: Store;
    secrets: SecretBox;
    clock: Clock;
  }): Promise<CertificateAuthority> {
    const existing = await CertificateAuthority.#read(deps);
    if (existing) return existing;
    const now = toSeconds(deps.clock.now());
    const keys = await webcrypto.subtle.generateKey(algorithm, true, ['sign', 'verify']);
    const certificate = await X509CertificateGenerator.createSelfSigned({
      serialNumber: newSerial(),
      name: 'CN=Zenith agent CA, O=Zenith',
      notBefore: new Date(now),
      notAfter: new Date(now + caValidityMs),
      // The library's types name DOM's CryptoKey, which this Node project does not load.
      keys: keys as never,
      signingAlgorithm: algorithm,
      extensions: [
        new BasicConstraintsExtension(true, 0, true),
        new KeyUsagesExtension(KeyUsageFlags.keyCertSign | KeyUsageFlags.cRLSign, true),
      ],
    });
    const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey));
    const keyPem = `-----BEGIN PRIVATE KEY-----\n${pkcs8.toString('base64')}\n-----END PRIVATE KEY-----\n`;
    await deps.store.db
      .insertInto('certificate_authorities')
      .values({
        id: caId,
        certificate: certificate.toString('pem'),
        sealed_key: deps.secrets.seal(keyPem),
        created_at: now,
        not_after: now + caValidityMs,
      })
      .onConflict((c) => c.column('id').doNothing())
      .execute();
    const stored = await CertificateAuthority.#read(deps);
    if (!stored) throw new Error('the agent CA was not stored');
    return stored;
  }

  static async #read(deps: {
    store: Store;
    secrets: SecretBox;
    clock: Clock;
  }): Promise<CertificateAuthority | undefined> {
    const row = await deps.store.db
      .selectFrom('certificate_authorities')
      .selectAll()
      .where('id', '=', caId)
      .executeTakeFirst();
    if (!row) return undefined;
    const pem = deps.secrets.open(row.sealed_key);
    const der = Buffer.from(pem.replace(/-----[^-]+-----|\s/g, ''), 'base64');
    const key = await webcrypto.subtle.importKey('pkcs8', der, algorithm, false, ['sign']);
    return new CertificateAuthority(row.certificate, key, deps.clock);
  }

  /**
   * Signs a client certificate for an agent from its CSR. The CSR's own signature proves the agent
   * holds the private key; only ECDSA P-256 keys are taken.
   */
  async issue(
    csrPem: string,
    subject: { agentId: string; identityId: string; validityMs: number },
  ): Promise<IssuedCertificate> {
    const request = await this.checkRequest(csrPem);
    const notBefore = toSeconds(this.clock.now());
    const notAfter = notBefore + Math.max(1000, toSeconds(subject.validityMs));
    const serial = newSerial();
    const certificate = await X509CertificateGenerator.create({
      serialNumber: serial,
      subject: `CN=${subject.agentId}, O=Zenith agents`,
      issuer: this.#issuerName,
      notBefore: new Date(notBefore),
      notAfter: new Date(notAfter),
      signingKey: this.#signingKey as never,
      publicKey: request.publicKey as never,
      signingAlgorithm: algorithm,
      extensions: [
        new BasicConstraintsExtension(false, undefined, true),
        new KeyUsagesExtension(KeyUsageFlags.digitalSignature, true),
        new ExtendedKeyUsageExtension([ExtendedKeyUsage.clientAuth]),
        new SubjectAlternativeNameExtension([
          { type: 'url', value: `urn:zenith:agent:${subject.agentId}` },
          { type: 'url', value: `urn:zenith:identity:${subject.identityId}` },
        ]),
      ],
    });
    return { serial, certificate: certificate.toString('pem'), notBefore, notAfter };
  }

  /** Reads and checks a CSR (before anything is written for it): a bad one is the caller's 400. */
  async checkRequest(csrPem: string): Promise<Pkcs10CertificateRequest> {
    let request: Pkcs10CertificateRequest;
    try {
      request = new Pkcs10CertificateRequest(csrPem);
    } catch {
      throw new ZenithError('ZEN_BAD_REQUEST', 'the certificate signing request is not a PEM CSR');
    }
    const keyAlgorithm = request.publicKey.algorithm as { name?: string; namedCurve?: string };
    if (keyAlgorithm.name !== 'ECDSA' || keyAlgorithm.namedCurve !== 'P-256')
      throw new ZenithError('ZEN_BAD_REQUEST', 'the agent key must be an ECDSA P-256 key', {
        algorithm: keyAlgorithm.name ?? null,
      });
    if (!(await request.verify()))
      throw new ZenithError(
        'ZEN_BAD_REQUEST',
        'the certificate signing request is not signed by its own key',
      );
    return request;
  }

  /**
   * Reads a certificate an agent presents and checks it is one this CA signed, for an agent.
   * Validity and revocation are the caller's (they are in the store).
   */
  inspect(certificatePem: string): CertificateFacts {
    let certificate: X509Certificate;
    try {
      certificate = new X509Certificate(certificatePem);
    } catch {
      throw invalid('the certificate cannot be read');
    }
    if (
      !certificate.checkIssued(this.#certificate) ||
      !certificate.verify(this.#certificate.publicKey)
    )
      throw invalid("the certificate was not issued by this Zenith's CA", {
        issuer: certificate.issuer,
      });
    const agentId = /^CN=(agent_[0-9A-Za-z]+)$/m.exec(certificate.subject)?.[1];
    if (!agentId) throw invalid('the certificate does not name an agent');
    return {
      serial: normalSerial(certificate.serialNumber),
      agentId,
      notBefore: Date.parse(certificate.validFrom),
      notAfter: Date.parse(certificate.validTo),
      publicKey: certificate.publicKey,
    };
  }
}

/** 16 random bytes, the first below 0x80 (a positive INTEGER) and not zero (no leading zero to strip). */
function newSerial(): string {
  const bytes = randomBytes(16);
  bytes[0] = (bytes[0]! % 0x7f) + 1;
  return bytes.toString('hex');
}

export function normalSerial(serial: string): string {
  return serial.replace(/:/g, '').toLowerCase().replace(/^0+/, '').padStart(32, '0');
}
