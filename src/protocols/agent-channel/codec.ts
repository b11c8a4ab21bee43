/**
 * The agent channel's codec: messages to text and back, each checked against
 * its schema, in both directions and for the handshake as for the rest. Pure
 * — no sockets: the WebSocket frames messages, and whoever holds it passes
 * the text through here. A message that is not JSON, has no type, or has a
 * known type with fields of the wrong shape is refused with
 * AGENT_CHANNEL_PROTOCOL_ERROR; a message of a type this end does not know
 * (a newer minor version's) decodes to null and is ignored. A message this
 * end is about to send is checked against the same schema its peer will
 * apply: a bug here is refused here, with the field named, instead of
 * cutting the channel off at the other end.
 */
import { Type, type TSchema } from 'typebox';
import { Compile } from 'typebox/compile';
import { ZenithError } from '../../core/errors.js';
import { agentCalls, type AgentMethod, type CallArgs, type CallResult } from './call-map.js';
import {
  agentReceives,
  controlPlaneReceives,
  type AgentReceives,
  type ControlPlaneReceives,
} from './messages.js';

type Validator = ReturnType<typeof Compile<TSchema>>;

const compiled = new WeakMap<TSchema, Validator>();

function validator(schema: TSchema): Validator {
  let found = compiled.get(schema);
  if (!found) {
    found = Compile(schema);
    compiled.set(schema, found);
  }
  return found;
}

function violation(message: string, details: Record<string, unknown>): ZenithError {
  return new ZenithError('AGENT_CHANNEL_PROTOCOL_ERROR', message, details);
}

/** Checks `value` against `schema`; a coded error names the first field that is wrong. */
export function check<T>(schema: TSchema, value: unknown, what: string): T {
  const compiledSchema = validator(schema);
  if (compiledSchema.Check(value)) return value as T;
  const [first] = compiledSchema.Errors(value);
  // A missing field is reported at its parent: name the field itself.
  const missing =
    first?.keyword === 'required'
      ? (first.params as { requiredProperties?: string[] }).requiredProperties?.[0]
      : undefined;
  const path =
    missing !== undefined ? `${first?.instancePath ?? ''}/${missing}` : first?.instancePath || '/';
  const problem = missing !== undefined ? 'is missing' : (first?.message ?? 'is not valid');
  throw violation(`${what}: ${path} ${problem}`, { path, what });
}

/** What every message is at least: an object with a type. */
const Envelope = Type.Object({ type: Type.String() });

/** A frame's JSON, not yet checked against any schema (the handshake reads its version first). */
export function parseFrame(data: string | Buffer, side: string): unknown {
  try {
    return JSON.parse(typeof data === 'string' ? data : data.toString('utf8'));
  } catch {
    throw violation(`a message to ${side} is not JSON`, {});
  }
}

function decode<M>(
  data: string | Buffer,
  schemas: Record<string, TSchema>,
  side: string,
): M | null {
  const parsed = parseFrame(data, side);
  const { type } = check<{ type: string }>(Envelope, parsed, `a message to ${side}`);
  if (!Object.hasOwn(schemas, type)) return null;
  return check<M>(schemas[type]!, parsed, `the '${type}' message`);
}

/** A message as the agent receives it; null for a type it does not know. */
export function decodeForAgent(data: string | Buffer): AgentReceives | null {
  return decode<AgentReceives>(data, agentReceives, 'the agent');
}

/** A message as the control plane receives it; null for a type it does not know. */
export function decodeForControlPlane(data: string | Buffer): ControlPlaneReceives | null {
  return decode<ControlPlaneReceives>(data, controlPlaneReceives, 'the control plane');
}

function encode(message: { type: string }, schemas: Record<string, TSchema>): string {
  // The types allow only this end's messages; a type without a schema is a bug of this end.
  if (!Object.hasOwn(schemas, message.type))
    throw violation(`'${message.type}' is not a message of this side`, { type: message.type });
  return JSON.stringify(check(schemas[message.type]!, message, `the '${message.type}' message`));
}

/** A message the control plane sends (its handshake included), checked as the agent will check it. */
export function encodeForAgent(message: AgentReceives): string {
  return encode(message, agentReceives);
}

/** A message the agent sends (its hello included), checked as the control plane will check it. */
export function encodeForControlPlane(message: ControlPlaneReceives): string {
  return encode(message, controlPlaneReceives);
}

/** A call's arguments, checked against the call map. */
export function decodeArgs<M extends AgentMethod>(method: M, args: unknown): CallArgs<M> {
  return check<CallArgs<M>>(agentCalls[method].args, args, `the arguments of ${method}`);
}

/** A call's result, checked against the call map. */
export function decodeResult<M extends AgentMethod>(method: M, value: unknown): CallResult<M> {
  return check<CallResult<M>>(agentCalls[method].result, value, `the result of ${method}`);
}
