/**
 * Routes MESSAGE packets (events) to listeners by program and procedure, never
 * by serial. A payload that does not decode is the peer's fault (reported to
 * `onUndecodable`, which closes the connection); a listener that throws is
 * reported to `onListenerError` and does not stop the others.
 */
import { decodeXdr } from '../xdr/xdr-types.js';
import { protocolError, type Packet } from './packet.js';
import type { EventMessageType } from './procedure.js';

type RawListener = (packet: Packet) => void;

export interface EventRouterHooks {
  onUndecodable(error: Error): void;
  onListenerError(error: unknown): void;
}

export class EventRouter {
  readonly #listeners = new Map<string, Set<RawListener>>();
  readonly #hooks: EventRouterHooks;

  constructor(hooks: EventRouterHooks) {
    this.#hooks = hooks;
  }

  on<M>(type: EventMessageType<M>, listener: (message: M) => void): () => void {
    const key = `${type.program}:${type.procedure}`;
    const raw: RawListener = (packet) => {
      let message: M;
      try {
        message = decodeXdr(type.message, packet.payload);
      } catch (error) {
        this.#hooks.onUndecodable(
          protocolError(`undecodable ${type.name} event: ${(error as Error).message}`, {
            event: type.name,
          }),
        );
        return;
      }
      try {
        listener(message);
      } catch (error) {
        this.#hooks.onListenerError(error);
      }
    };
    let set = this.#listeners.get(key);
    if (!set) this.#listeners.set(key, (set = new Set()));
    set.add(raw);
    return () => {
      set.delete(raw);
    };
  }

  /** Delivers an event packet; false when nobody listens to it. */
  dispatch(packet: Packet): boolean {
    const listeners = this.#listeners.get(`${packet.header.program}:${packet.header.procedure}`);
    if (!listeners || listeners.size === 0) return false;
    for (const listener of [...listeners]) listener(packet);
    return true;
  }
}
