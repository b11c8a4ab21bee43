/**
 * What a credential keeps open after its request was authorized: event streams and consoles. A
 * request is checked once, but these last for hours, so they are registered here by token and
 * identity: revoking a token, ending sessions (a new password), disabling or removing an identity
 * ends them at once, and a change of who may see what (bindings, groups, roles, the identity's
 * role or attributes) makes them look again. The server's routes register; the identity service
 * and the control plane's wiring end and notify. Nothing here knows about HTTP.
 */
import type { ErrorCode } from '../../core/errors.js';
import type { RoleName } from './roles.js';

/** Why a session ended: carried to the client (an SSE event, a WebSocket close reason). */
export interface SessionEnd {
  code: ErrorCode;
  message: string;
}

export interface LiveSession {
  readonly identityId: string;
  readonly tokenId: string;
  /** The credential no longer holds: close now, with this reason. Called at most once. */
  end(reason: SessionEnd): void;
  /** What the identity may see may have changed; `role` is its role when that is what changed. */
  accessChanged(role?: RoleName): void;
}

export class LiveSessions {
  readonly #sessions = new Set<LiveSession>();

  /** `onError`: where a session's own failure to end or re-evaluate goes (it never stops the others). */
  constructor(private readonly onError: (error: unknown) => void = () => undefined) {}

  /** Registers a session; the answer unregisters it (idempotent). */
  open(session: LiveSession): () => void {
    this.#sessions.add(session);
    return () => this.#sessions.delete(session);
  }

  get size(): number {
    return this.#sessions.size;
  }

  /** The token ids of the open sessions (each once). */
  tokenIds(): string[] {
    return [...new Set([...this.#sessions].map((s) => s.tokenId))];
  }

  endTokens(tokenIds: Iterable<string>, reason: SessionEnd): void {
    const ids = new Set(tokenIds);
    this.#end((s) => ids.has(s.tokenId), reason);
  }

  endIdentity(identityId: string, reason: SessionEnd): void {
    this.#end((s) => s.identityId === identityId, reason);
  }

  /** Every session ends (the server is stopping): nothing the server holds open outlives it. */
  endAll(reason: SessionEnd): void {
    this.#end(() => true, reason);
  }

  /** Groups, roles or bindings changed: every session looks again. */
  accessChanged(): void {
    for (const session of [...this.#sessions]) this.#safely(() => session.accessChanged());
  }

  /** One identity's role or attributes changed: its sessions look again. */
  identityChanged(identityId: string, role: RoleName): void {
    for (const session of [...this.#sessions])
      if (session.identityId === identityId) this.#safely(() => session.accessChanged(role));
  }

  #end(which: (session: LiveSession) => boolean, reason: SessionEnd): void {
    for (const session of [...this.#sessions]) {
      if (!which(session)) continue;
      // Unregistered first: an end() that closes its stream may unregister again, harmlessly.
      this.#sessions.delete(session);
      this.#safely(() => session.end(reason));
    }
  }

  #safely(call: () => void): void {
    try {
      call();
    } catch (error) {
      this.onError(error);
    }
  }
}
