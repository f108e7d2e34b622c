import { useEffect, useMemo, useState } from 'preact/hooks';
import type { AuthInfo } from '../../client/index.ts';
import { AccountsPage } from './pages/accounts-page.tsx';
import { BackendPage } from './pages/backend-page.tsx';
import { BackendsPage } from './pages/backends-page.tsx';
import { NodesPage } from './pages/nodes-page.tsx';
import { SignInPage } from './pages/sign-in-page.tsx';
import { Link, useRoute, type Route } from './router.tsx';
import { forgetSeenBackends } from './seen-backends.ts';
import { clientFor, forgetToken, savedToken, saveToken, SessionContext, type Session } from './session.ts';

interface SignedIn {
  token: string;
  auth: AuthInfo;
}

export function App() {
  const [signedIn, setSignedIn] = useState<SignedIn | null>(null);
  // A token kept from earlier in this tab is checked again before any page shows.
  const [checking, setChecking] = useState(() => savedToken() !== null);

  useEffect(() => {
    const token = savedToken();
    if (!token) return;
    clientFor(token)
      .auth()
      .then((auth) => setSignedIn({ token, auth }))
      .catch(() => forgetToken())
      .finally(() => setChecking(false));
  }, []);

  const session = useMemo<Session | null>(
    () =>
      signedIn && {
        client: clientFor(signedIn.token),
        auth: signedIn.auth,
        signOut: () => {
          forgetToken();
          forgetSeenBackends();
          setSignedIn(null);
        },
      },
    [signedIn],
  );

  if (checking) return <p class="loading">Checking the saved token…</p>;
  if (!session) {
    return (
      <SignInPage
        onSignedIn={(token, auth) => {
          saveToken(token);
          setSignedIn({ token, auth });
        }}
      />
    );
  }
  return (
    <SessionContext.Provider value={session}>
      <Shell session={session} />
    </SessionContext.Provider>
  );
}

function Shell({ session }: { session: Session }) {
  const route = useRoute();
  const who = session.auth.is_admin ? 'admin' : session.auth.accounts.join(', ');
  return (
    <>
      <header class="top">
        <Link to="/" class="brand">
          berth
        </Link>
        <nav>
          <NavLink to="/" active={route.page === 'backends' || route.page === 'backend'}>
            Backends
          </NavLink>
          <NavLink to="/accounts" active={route.page === 'accounts'}>
            Accounts &amp; services
          </NavLink>
          <NavLink to="/nodes" active={route.page === 'nodes'}>
            Nodes
          </NavLink>
        </nav>
        <span class="who" title="Signed in with this token">
          {who}
        </span>
        <button type="button" class="quiet" onClick={session.signOut}>
          Sign out
        </button>
      </header>
      <main>
        <Page route={route} />
      </main>
    </>
  );
}

function NavLink(props: { to: string; active: boolean; children: string }) {
  return (
    <Link to={props.to} class={props.active ? 'active' : undefined}>
      {props.children}
    </Link>
  );
}

function Page({ route }: { route: Route }) {
  switch (route.page) {
    case 'backends':
      return <BackendsPage />;
    case 'backend':
      return <BackendPage key={route.id} id={route.id} />;
    case 'accounts':
      return <AccountsPage />;
    case 'nodes':
      return <NodesPage />;
    case 'missing':
      return (
        <section>
          <h1>No such page</h1>
          <p>
            Nothing lives at <code>{route.path}</code>. <Link to="/">Back to the backends</Link>.
          </p>
        </section>
      );
  }
}
