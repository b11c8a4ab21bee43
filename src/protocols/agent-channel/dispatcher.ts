/**
 * Dispatch by name, for both ends. A decoded message goes to the handler of
 * its type (a map with one handler per type that side receives, each typed by
 * that message's schema, so nothing is checked again by hand). A call is
 * dispatched the same way one level down, at the agent: looked up in the call
 * map, refused if this end's protocol version does not have it (as an agent
 * of that version, which does not know it, would: ZEN_UNSUPPORTED), its
 * arguments checked, and the handler of that method run. Every outcome of a
 * call becomes a result message: an error crosses with its code (errors
 * without one as ZEN_DRIVER_ERROR).
 */
import { isZenithError, ZenithError } from '../../core/errors.js';
import {
  agentCalls,
  isAgentMethod,
  type AgentMethod,
  type CallArgs,
  type CallResult,
} from './call-map.js';
import { decodeArgs } from './codec.js';
import type { FromAgent, ToAgent } from './messages.js';
import type { ActionProgress } from './values.js';
import { formatVersion, speaks, type ProtocolVersion } from './version.js';

/** What a handler gets besides its arguments: the call's cancellation and progress. */
export interface CallContext {
  signal: AbortSignal;
  progress(update: ActionProgress): void;
}

export type CallHandlers = {
  [M in AgentMethod]: (args: CallArgs<M>, context: CallContext) => Promise<CallResult<M>>;
};

type ResultMessage = Extract<FromAgent, { type: 'result' }>;

/** One handler per message type a side receives (AgentReceives, ControlPlaneReceives). */
export type MessageHandlers<Message extends { type: string }> = {
  [T in Message['type']]: (message: Extract<Message, { type: T }>) => void;
};

/** Runs the handler of a decoded message's type (the codec has checked it against its schema). */
export function dispatchMessage<Message extends { type: string }>(
  message: Message,
  handlers: MessageHandlers<Message>,
): void {
  // The map pairs each type with its own handler; TypeScript cannot follow the type through the index.
  const handler = handlers[message.type as Message['type']] as (message: Message) => void;
  handler(message);
}

export async function dispatchCall(
  call: Extract<ToAgent, { type: 'call' }>,
  handlers: CallHandlers,
  version: ProtocolVersion,
  context: CallContext,
): Promise<ResultMessage> {
  try {
    if (!isAgentMethod(call.method) || !speaks(version, agentCalls[call.method].since))
      throw new ZenithError(
        'ZEN_UNSUPPORTED',
        `the agent has no method '${call.method}' (it speaks protocol ${formatVersion(version)})`,
        { method: call.method, protocol: formatVersion(version) },
      );
    const value = await run(call.method, call.args, handlers, context);
    return { type: 'result', id: call.id, ok: true, value };
  } catch (error) {
    const coded = isZenithError(error)
      ? error
      : new ZenithError('ZEN_DRIVER_ERROR', (error as Error).message);
    return {
      type: 'result',
      id: call.id,
      ok: false,
      error: { code: coded.code, message: coded.message, details: coded.details },
    };
  }
}

function run<M extends AgentMethod>(
  method: M,
  args: unknown,
  handlers: CallHandlers,
  context: CallContext,
): Promise<CallResult<M>> {
  // The map pairs each method with its own handler; TypeScript cannot follow M through the index.
  const handler = handlers[method] as (
    args: CallArgs<M>,
    context: CallContext,
  ) => Promise<CallResult<M>>;
  return handler(decodeArgs(method, args), context);
}
