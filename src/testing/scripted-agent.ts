/**
 * A host agent whose answers a test writes: it enrolls with a real one-time
 * token and key pair, opens the real channel with the signed challenge, and
 * answers the control plane's calls from a script — what an operator's
 * tampered agent could say. Tests use it to prove the control plane does not
 * believe more than it should (a VM reported with someone else's UUID), and
 * to speak as an agent of another protocol version would.
 */
import WebSocket from 'ws';
import { newKeyAndRequest, signChallenge } from '../agent/agent-credentials.js';
import type { DiscoverySnapshot } from '../hypervisors/driver.js';
import type { AgentMethod } from '../protocols/agent-channel/call-map.js';
import { decodeForAgent, encodeForControlPlane } from '../protocols/agent-channel/codec.js';
import type { FromAgent } from '../protocols/agent-channel/messages.js';
import { channelProtocol, formatVersion } from '../protocols/agent-channel/version.js';

export interface ScriptedAgent {
  agentId: string;
  /** The protocol version the welcome named (absent from a control plane before versions). */
  welcomedWith: string | undefined;
  /** Every call the control plane made, in order (any name: an older agent may not know it). */
  calls: Array<{ method: string; args: unknown[] }>;
  close(): Promise<void>;
}

export interface ScriptedAgentOptions {
  /** The server's base URL (http://host:port). */
  server: string;
  /** An administrator's API token, to issue the enrollment token. */
  adminToken: string;
  hostname: string;
  /** What `discover` answers. */
  snapshot: DiscoverySnapshot;
  /** Answers to other calls (default: a coded refusal, ZEN_UNSUPPORTED, as for a method it lacks). */
  answers?: Partial<Record<AgentMethod, (args: unknown[]) => unknown>>;
  /** The version its hello announces (default this build's); null: none, as agents before 1.1. */
  protocol?: string | null;
}

export async function startScriptedAgent(options: ScriptedAgentOptions): Promise<ScriptedAgent> {
  const api = async (path: string, body: unknown, token?: string) => {
    const response = await fetch(`${options.server}/api/v1${path}`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        ...(token ? { authorization: `Bearer ${token}` } : {}),
      },
      body: JSON.stringify(body),
    });
    const answer = (await response.json()) as Record<string, unknown>;
    if (!response.ok)
      throw new Error(`POST ${path} answered ${response.status}: ${JSON.stringify(answer)}`);
    return answer;
  };
  const { token } = (await api(
    '/agents/enrollment-tokens',
    { ttlMinutes: 10 },
    options.adminToken,
  )) as { token: string };
  const { privateKey, csr } = await newKeyAndRequest(options.hostname);
  const enrolled = (await api('/agents/enroll', {
    enrollmentToken: token,
    hostname: options.hostname,
    csr,
  })) as { agent: { id: string }; certificate: { certificate: string }; caCertificate: string };
  const credentials = {
    server: options.server,
    agentId: enrolled.agent.id,
    certificate: enrolled.certificate.certificate,
    privateKey,
    caCertificate: enrolled.caCertificate,
  };
  const calls: ScriptedAgent['calls'] = [];
  const protocol =
    options.protocol === undefined ? formatVersion(channelProtocol) : options.protocol;
  const socket = new WebSocket(`${options.server.replace(/^http/, 'ws')}/api/v1/agents/channel`);
  const send = (message: FromAgent) => socket.send(encodeForControlPlane(message));
  let heartbeat: NodeJS.Timeout | undefined;
  let welcomedWith: string | undefined;
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.on('message', (data: Buffer) => {
      const message = decodeForAgent(data);
      if (message?.type === 'challenge')
        socket.send(
          encodeForControlPlane({
            type: 'hello',
            certificate: credentials.certificate,
            signature: signChallenge(credentials, message.nonce),
            ...(protocol !== null ? { protocol } : {}),
          }),
        );
      else if (message?.type === 'welcome') {
        welcomedWith = message.protocol;
        send({ type: 'heartbeat', facts: {} });
        heartbeat = setInterval(() => send({ type: 'heartbeat', facts: {} }), 5000);
        heartbeat.unref();
        resolve();
      } else if (message?.type === 'refused')
        reject(
          new Error(`the channel was refused: ${message.error.code}: ${message.error.message}`),
        );
      else if (message?.type === 'call') {
        const { method, args } = message;
        calls.push({ method, args });
        const scripted = options.answers as Partial<Record<string, (args: unknown[]) => unknown>>;
        const answer = method === 'discover' ? () => options.snapshot : scripted?.[method];
        send(
          answer
            ? { type: 'result', id: message.id, ok: true, value: answer(args) }
            : {
                type: 'result',
                id: message.id,
                ok: false,
                error: { code: 'ZEN_UNSUPPORTED', message: `scripted: no ${method}`, details: {} },
              },
        );
      }
    });
  });
  return {
    agentId: credentials.agentId,
    welcomedWith,
    calls,
    close: () =>
      new Promise((resolve) => {
        clearInterval(heartbeat);
        if (socket.readyState === WebSocket.CLOSED) return resolve();
        socket.once('close', () => resolve());
        socket.close();
      }),
  };
}
