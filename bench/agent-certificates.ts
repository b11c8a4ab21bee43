/**
 * The cost of agent certificates on the control plane, on embedded SQLite:
 * making the CA (first start), signing a client certificate from a CSR
 * (enrollment and renewal), and checking a channel handshake (certificate
 * chain, serial in the store, signature over the nonce). The agent's own side
 * (a key pair and a CSR) is measured too.
 *
 *   node --import tsx bench/agent-certificates.ts [--runs 200]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { newKeyAndRequest, signChallenge } from '../src/agent/agent-credentials.js';
import { systemClock } from '../src/core/clock.js';
import { SecretBox } from '../src/core/secret-box.js';
import { AgentCertificates, newNonce } from '../src/services/agents/agent-certificates.js';
import { CertificateAuthority } from '../src/services/agents/certificate-authority.js';
import { openStore } from '../src/store/store.js';

const { values } = parseArgs({ options: { runs: { type: 'string', default: '200' } } });
const runs = Number(values.runs);
const dataDir = mkdtempSync(join(tmpdir(), 'zenith-bench-certs-'));
const store = await openStore({ dataDir });
const secrets = new SecretBox(Buffer.alloc(32, 7));

const percentile = (sorted: number[], p: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]!;
async function measure(label: string, run: (i: number) => Promise<void>, times: number) {
  const samples: number[] = [];
  for (let i = 0; i < times; i++) {
    const start = performance.now();
    await run(i);
    samples.push(performance.now() - start);
  }
  samples.sort((a, b) => a - b);
  console.log(
    `${label.padEnd(52)} p50 ${percentile(samples, 0.5).toFixed(2).padStart(7)} ms  p99 ${percentile(samples, 0.99).toFixed(2).padStart(7)} ms  (n=${times})`,
  );
}

const created = performance.now();
const ca = await CertificateAuthority.loadOrCreate({ store, secrets, clock: systemClock });
console.log(`CA made and stored on first start: ${(performance.now() - created).toFixed(1)} ms`);
const certificates = new AgentCertificates({
  store,
  clock: systemClock,
  ca,
  validityMs: 30 * 86_400_000,
});

const requests: Array<{ privateKey: string; csr: string }> = [];
await measure(
  'agent: a key pair and a CSR',
  async () => void requests.push(await newKeyAndRequest('bench-host')),
  runs,
);
const issued: Array<{ certificate: string; privateKey: string }> = [];
await measure(
  'control plane: check the CSR, sign and store a certificate',
  async (i) => {
    const request = requests[i]!;
    const certificate = await certificates.issue(request.csr, {
      agentId: `agent_BENCH${String(i).padStart(21, '0')}`,
      identityId: 'svc_bench',
    });
    issued.push({ certificate: certificate.certificate, privateKey: request.privateKey });
  },
  runs,
);
await measure(
  'control plane: check a handshake (chain, serial, proof)',
  async (i) => {
    const { certificate, privateKey } = issued[i]!;
    const nonce = newNonce();
    const credentials = { server: '', agentId: '', caCertificate: '', certificate, privateKey };
    await certificates.authenticate(certificate, nonce, signChallenge(credentials, nonce));
  },
  runs,
);
await store.close();
rmSync(dataDir, { recursive: true, force: true });
