import { useState } from 'preact/hooks';
import type { AuthInfo } from '../../../client/index.ts';
import { errorMessage } from '../hooks.ts';
import { clientFor } from '../session.ts';

export function SignInPage({ onSignedIn }: { onSignedIn(token: string, auth: AuthInfo): void }) {
  const [token, setToken] = useState('');
  const [error, setError] = useState<string>();
  const [busy, setBusy] = useState(false);

  const signIn = async (event: Event) => {
    event.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      const value = token.trim();
      onSignedIn(value, await clientFor(value).auth());
    } catch (caught) {
      setError(errorMessage(caught));
    } finally {
      setBusy(false);
    }
  };

  return (
    <main class="sign-in">
      <form onSubmit={signIn}>
        <h1>berth</h1>
        <p>Sign in with the admin token or an account token. It stays in this tab only.</p>
        <label>
          Token
          <input
            type="password"
            name="token"
            autocomplete="off"
            placeholder="<id>.<secret>"
            required
            value={token}
            onInput={(event) => setToken(event.currentTarget.value)}
          />
        </label>
        <button type="submit" disabled={busy || token.trim() === ''}>
          {busy ? 'Checking…' : 'Sign in'}
        </button>
        {error && (
          <p class="error" role="alert">
            {error}
          </p>
        )}
      </form>
    </main>
  );
}
