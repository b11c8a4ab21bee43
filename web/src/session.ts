/** The logged-in session, kept in sessionStorage: it ends with the browser tab. */
import type { Identity } from './api/types.ts';

export interface Session {
  token: string;
  expiresAt: number | null;
  identity: Identity;
}

const key = 'zenith.session';

export function loadSession(): Session | null {
  const stored = sessionStorage.getItem(key);
  if (!stored) return null;
  try {
    const session = JSON.parse(stored) as Session;
    if (session.expiresAt !== null && session.expiresAt <= Date.now()) {
      clearSession();
      return null;
    }
    return session;
  } catch {
    clearSession();
    return null;
  }
}

export function saveSession(session: Session): void {
  sessionStorage.setItem(key, JSON.stringify(session));
}

export function clearSession(): void {
  sessionStorage.removeItem(key);
}
