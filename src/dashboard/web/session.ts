import { createContext } from 'preact';
import { useContext } from 'preact/hooks';
import { BerthClient, type AuthInfo } from '../../client/index.ts';

/**
 * sessionStorage, not localStorage: the token (possibly the admin token) is
 * gone when the tab closes, and other tabs never see it.
 */
const TOKEN_KEY = 'berth.dashboard.token';

export function savedToken(): string | null {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function saveToken(token: string): void {
  sessionStorage.setItem(TOKEN_KEY, token);
}

export function forgetToken(): void {
  sessionStorage.removeItem(TOKEN_KEY);
}

/** berth's own client, on the origin that served the dashboard. */
export function clientFor(token: string): BerthClient {
  return new BerthClient({ url: location.origin, token });
}

export interface Session {
  client: BerthClient;
  auth: AuthInfo;
  signOut(): void;
}

export const SessionContext = createContext<Session | null>(null);

export function useSession(): Session {
  const session = useContext(SessionContext);
  if (!session) throw new Error('useSession outside a signed-in page');
  return session;
}
