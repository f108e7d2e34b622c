import { randomBytes } from 'node:crypto';
import type { Kysely } from 'kysely';
import type { BerthConfig } from '../config.ts';
import type { Database } from '../database.ts';
import type { BackendStatus } from '../core/backend-status.ts';
import { backendUrls } from './backend-urls.ts';
import { findTokenRoute } from './proxy.repository.ts';
import { latestStatusRow } from './backend.repository.ts';

const STOPPING: readonly BackendStatus[] = ['terminating', 'hard-terminating', 'terminated'];

/** What the ready page of one connection shows. */
export interface ReadyPage {
  backendId: string;
  status: BackendStatus;
  /** The connection URL the page sends the browser to once the backend is ready. */
  url: string;
  statusStreamUrl: string;
  /** Why the backend stopped, when it has: the reason and berth's own one-line cause, if any. */
  stopped: { reason: string | null; message: string | null } | null;
}

export interface HtmlPage {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** The page of a backend's connection, or undefined when the token is not one of that backend's. */
export async function findReadyPage(db: Kysely<Database>, config: BerthConfig, backendId: string, token: string): Promise<ReadyPage | undefined> {
  const route = await findTokenRoute(db, token);
  if (!route || route.backend_id !== backendId) return undefined;
  const latest = STOPPING.includes(route.status) ? await latestStatusRow(db, backendId) : undefined;
  return {
    backendId,
    status: route.status,
    stopped: latest ? { reason: latest.termination_reason, message: latest.message ?? null } : null,
    url: backendUrls(config, backendId, token).url,
    statusStreamUrl: `${config.publicApiUrl}/v2/backend/${backendId}/status/stream`,
  };
}

/**
 * A loading page that follows the backend's status stream and goes to the
 * connection URL when the backend is ready, or says plainly that it stopped.
 * Without JavaScript it still shows the status and the link.
 */
export function renderReadyPage(page: ReadyPage, publicApiUrl: string): HtmlPage {
  if (page.stopped) return renderStoppedPage(page, page.stopped, publicApiUrl);
  const nonce = randomBytes(16).toString('base64');
  const config = { url: page.url, stream: page.statusStreamUrl };
  const body = htmlDocument(
    `Starting backend ${escapeHtml(page.backendId)}`,
    nonce,
    `<main>
<h1>Starting backend <code>${escapeHtml(page.backendId)}</code></h1>
<p>Status: <strong id="status">${escapeHtml(page.status)}</strong></p>
<p id="message" role="status">You will be taken to it as soon as it is ready.</p>
<noscript><p>This page needs JavaScript to follow the backend. When it is ready, open <a href="${escapeHtml(page.url)}">the backend</a>.</p></noscript>
</main>
<script nonce="${nonce}">
const page = ${jsonForScript(config)};
${SCRIPT}
</script>`,
  );
  return { status: 200, headers: pageHeaders(nonce, publicApiUrl), body };
}

/** A backend that stopped or is stopping will not become ready: say so, and why, with nothing to follow. */
function renderStoppedPage(page: ReadyPage, stopped: { reason: string | null; message: string | null }, publicApiUrl: string): HtmlPage {
  const nonce = randomBytes(16).toString('base64');
  const heading = page.status === 'terminated' ? 'Backend stopped' : 'Backend shutting down';
  const reason = stopped.reason ? ` (${escapeHtml(stopped.reason)})` : '';
  const body = htmlDocument(
    heading,
    nonce,
    `<main class="stopped">
<h1>${heading}: <code>${escapeHtml(page.backendId)}</code></h1>
<p>Status: <strong id="status">${escapeHtml(page.status)}</strong>${reason}</p>
${stopped.message ? `<p id="cause">Cause: <samp>${escapeHtml(stopped.message)}</samp></p>\n` : ''}<p id="message" role="status">This backend will not become ready. Ask the application for a new link.</p>
</main>`,
  );
  return { status: 200, headers: pageHeaders(nonce, publicApiUrl), body };
}

/** The answer for an unknown backend, or a token that is not one of its own. */
export function renderReadyNotFound(publicApiUrl: string): HtmlPage {
  const nonce = randomBytes(16).toString('base64');
  const body = htmlDocument(
    'Backend not found',
    nonce,
    `<main>
<h1>Backend not found</h1>
<p>This link does not name a backend of this berth, or its token belongs to another backend.
Ask the application that gave you the link for a new one.</p>
</main>`,
  );
  return { status: 404, headers: pageHeaders(nonce, publicApiUrl), body };
}

/** The page around a body; `title` is already escaped. */
function htmlDocument(title: string, nonce: string, body: string): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>${title}</title>
<style nonce="${nonce}">${STYLE}</style>
</head>
<body>
${body}
</body>
</html>
`;
}

function pageHeaders(nonce: string, publicApiUrl: string): Record<string, string> {
  return {
    'Content-Type': 'text/html; charset=utf-8',
    'Cache-Control': 'no-store',
    // The page's URL holds a connection token: it must not leak through Referer.
    'Referrer-Policy': 'no-referrer',
    'X-Content-Type-Options': 'nosniff',
    'Content-Security-Policy': [
      "default-src 'none'",
      `script-src 'nonce-${nonce}'`,
      `style-src 'nonce-${nonce}'`,
      `connect-src 'self' ${new URL(publicApiUrl).origin}`,
      "base-uri 'none'",
      "form-action 'none'",
      "frame-ancestors 'none'",
    ].join('; '),
  };
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** JSON that cannot end the script element it sits in. */
function jsonForScript(value: unknown): string {
  return JSON.stringify(value).replace(/[<>&\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

const STYLE = `
body { font: 16px/1.5 system-ui, sans-serif; margin: 0; min-height: 100vh; display: grid; place-items: center; color: #1b1f24; background: #f6f7f9; }
main { max-width: 36rem; padding: 2rem; }
h1 { font-size: 1.4rem; }
code { font-size: 0.95em; }
.stopped #status { color: #b42318; }
samp { white-space: pre-wrap; word-break: break-word; }
`;

const SCRIPT = `
const statusEl = document.getElementById('status');
const messageEl = document.getElementById('message');
const headingEl = document.querySelector('h1');
const idEl = headingEl.querySelector('code');
const stopping = ['terminating', 'hard-terminating', 'terminated'];
function stopped(event) {
  // berth's own failures carry a cause that only the server-rendered page shows.
  if (event.status === 'terminated' && event.termination_reason === 'internalerror') return location.reload();
  document.body.classList.add('stopped');
  document.title = event.status === 'terminated' ? 'Backend stopped' : 'Backend shutting down';
  headingEl.textContent = document.title + ': ';
  headingEl.appendChild(idEl);
  const reason = event.termination_reason ? ' (' + event.termination_reason + ')' : '';
  messageEl.textContent = event.status === 'terminated'
    ? 'This backend has stopped' + reason + ' and will not become ready. Ask the application for a new link.'
    : 'This backend is shutting down' + reason + ' and will not become ready. Ask the application for a new link.';
}
// The stream replays the history first, so a backend that is already ready (or gone) is handled at once.
const stream = new EventSource(page.stream);
stream.onmessage = (message) => {
  const event = JSON.parse(message.data);
  statusEl.textContent = event.status;
  if (event.status === 'ready') {
    stream.close();
    messageEl.textContent = 'Ready. Taking you there…';
    location.replace(page.url);
  } else if (stopping.includes(event.status)) {
    stopped(event);
    // The server ends the stream after 'terminated'; reconnecting would only wait for nothing.
    if (event.status === 'terminated') stream.close();
  }
};
stream.onerror = () => {
  if (stream.readyState !== EventSource.CLOSED) messageEl.textContent = 'Lost the status stream; reconnecting…';
};
`;
