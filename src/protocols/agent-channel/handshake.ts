/**
 * The control plane's reading of an agent's hello. The protocol version is
 * read first, from the one field every major version keeps, so that an agent
 * of another major is told to upgrade (ZEN_AGENT_INCOMPATIBLE) rather than
 * that its hello is malformed; then the hello is checked as this major
 * defines it (ZEN_UNAUTHENTICATED when it is not one).
 */
import { Type, type Static } from 'typebox';
import { ZenithError } from '../../core/errors.js';
import { check, parseFrame } from './codec.js';
import { fromAgentHandshake, type AgentHandshake } from './messages.js';
import { acceptAgentVersion, type ProtocolVersion } from './version.js';

const VersionProbe = Type.Object({
  type: Type.Literal('hello'),
  protocol: Type.Optional(Type.String()),
});

function notAHello(): ZenithError {
  return new ZenithError(
    'ZEN_UNAUTHENTICATED',
    'the channel opens with a certificate and a signature over the challenge',
  );
}

/** The hello, and the version both ends will speak. */
export function readHello(data: string | Buffer): {
  hello: Extract<AgentHandshake, { type: 'hello' }>;
  protocol: ProtocolVersion;
} {
  let probe: Static<typeof VersionProbe>;
  try {
    probe = check(VersionProbe, parseFrame(data, 'the control plane'), 'the hello');
  } catch {
    throw notAHello();
  }
  const protocol = acceptAgentVersion(probe.protocol);
  try {
    return { hello: check(fromAgentHandshake.hello, probe, 'the hello'), protocol };
  } catch {
    throw notAHello();
  }
}
