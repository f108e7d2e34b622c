import type { ComponentChildren } from 'preact';
import { useEffect, useState } from 'preact/hooks';

/** Where berth serves the dashboard; every page of the app lives below it. */
export const BASE = '/dashboard';

export type Route =
  | { page: 'backends' }
  | { page: 'backend'; id: string }
  | { page: 'accounts' }
  | { page: 'nodes' }
  | { page: 'missing'; path: string };

export function parseRoute(pathname: string): Route {
  const path = pathname.startsWith(BASE) ? pathname.slice(BASE.length).replace(/\/+$/, '') : pathname;
  if (path === '' || path === '/backends') return { page: 'backends' };
  if (path === '/accounts') return { page: 'accounts' };
  if (path === '/nodes') return { page: 'nodes' };
  const backend = /^\/backends\/([a-z0-9]+)$/.exec(path);
  if (backend) return { page: 'backend', id: backend[1]! };
  return { page: 'missing', path: pathname };
}

export function navigate(to: string): void {
  history.pushState(null, '', BASE + to);
  dispatchEvent(new PopStateEvent('popstate'));
}

/** The page the address bar names, following back, forward and navigate(). */
export function useRoute(): Route {
  const [pathname, setPathname] = useState(location.pathname);
  useEffect(() => {
    const follow = () => setPathname(location.pathname);
    addEventListener('popstate', follow);
    return () => removeEventListener('popstate', follow);
  }, []);
  return parseRoute(pathname);
}

/** A real link (open in a new tab works), followed in place on a plain click. */
export function Link(props: { to: string; class?: string; children: ComponentChildren }) {
  return (
    <a
      href={BASE + props.to}
      class={props.class}
      onClick={(event) => {
        if (event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
        event.preventDefault();
        navigate(props.to);
      }}
    >
      {props.children}
    </a>
  );
}
