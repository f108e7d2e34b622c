// An example application server in front of berth: it signs users in, and for a
// signed-in user asks berth for the backend of a room, then sends the browser
// there. A demo, not a template for real authentication: anyone may sign in
// under any name, and the "session" is the name in an HMAC-signed cookie.
//
//   BERTH_URL=http://127.0.0.1:8080 BERTH_TOKEN=<account token> \
//   BERTH_ACCOUNT=acme BERTH_SERVICE=counter PORT=3000 npx tsx examples/app-server/server.ts
//
// What matters for berth is `joinRoom`: the room becomes connect's `key` (one
// backend per room), the signed-in name becomes connect's `user` (the backend
// reads it from the x-verified-username header, which the browser cannot forge),
// and the browser goes to `ready_url`, a page on berth that waits for the backend
// and then opens it.
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { BerthApiError, BerthClient } from 'berth/client';

const config = Object.freeze({
  berthUrl: process.env.BERTH_URL ?? 'http://127.0.0.1:8080',
  berthToken: required('BERTH_TOKEN'),
  account: process.env.BERTH_ACCOUNT ?? 'acme',
  service: process.env.BERTH_SERVICE ?? 'counter',
  port: Number(process.env.PORT ?? 3000),
  // Without APP_SECRET, a restart signs everyone out: fine for a demo.
  secret: process.env.APP_SECRET ?? randomBytes(32).toString('hex'),
});

const COOKIE = 'example_session';
const NAME = /^[A-Za-z0-9][A-Za-z0-9 _.-]{0,31}$/;
const ROOM = /^[a-z0-9][a-z0-9-]{0,39}$/;

const berth = new BerthClient({ url: config.berthUrl, token: config.berthToken });

function required(name: string): string {
  const value = process.env[name];
  if (!value) {
    console.error(`app-server: set ${name} (see examples/README.md)`);
    process.exit(1);
  }
  return value;
}

// --- the signed-cookie "session" --------------------------------------------

function sign(value: string): string {
  return createHmac('sha256', config.secret).update(value).digest('base64url');
}

function sessionCookie(name: string): string {
  const value = `${Buffer.from(name).toString('base64url')}.${sign(name)}`;
  return `${COOKIE}=${value}; Path=/; HttpOnly; SameSite=Lax`;
}

/** The signed-in name, or undefined when the cookie is missing or its signature is wrong. */
function signedInUser(req: IncomingMessage): string | undefined {
  const cookie = (req.headers.cookie ?? '')
    .split(';')
    .map((part) => part.trim())
    .find((part) => part.startsWith(`${COOKIE}=`));
  const [encoded, signature] = (cookie?.slice(COOKIE.length + 1) ?? '').split('.');
  if (!encoded || !signature) return undefined;
  const name = Buffer.from(encoded, 'base64url').toString('utf8');
  const expected = Buffer.from(sign(name));
  const given = Buffer.from(signature);
  return expected.length === given.length && timingSafeEqual(expected, given) ? name : undefined;
}

// --- berth --------------------------------------------------------------------

/** Asks berth for the room's backend (starting it if needed) and sends the browser to its ready page. */
async function joinRoom(res: ServerResponse, user: string, room: string): Promise<void> {
  const backend = await berth.connect(config.account, config.service, {
    key: `room-${room}`,
    user,
    // Arrives in the backend as the x-verified-user-data header (JSON).
    auth: { room },
  });
  console.log(`${user} -> room ${room}: backend ${backend.backend_id} (${backend.spawned ? 'spawned' : 'running'}, ${backend.status})`);
  redirect(res, backend.ready_url);
}

// --- HTTP -----------------------------------------------------------------------

const server = createServer((req, res) => {
  handle(req, res).catch((error: unknown) => {
    if (error instanceof BerthApiError) {
      console.error(`berth said ${error.status} ${error.code}: ${error.message}`);
      return page(res, 502, `<p>berth could not connect you: <b>${escape(error.message)}</b> (${error.status} ${escape(error.code)}).</p><p><a href="/">Back</a></p>`);
    }
    console.error(error);
    page(res, 500, `<p>Something went wrong: ${escape(String((error as Error).message ?? error))}</p><p><a href="/">Back</a></p>`);
  });
});

async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
  const path = (req.url ?? '/').split('?')[0];
  const user = signedInUser(req);

  if (req.method === 'GET' && path === '/') return user ? page(res, 200, roomForm(user)) : page(res, 200, signInForm());

  if (req.method === 'POST' && path === '/login') {
    const name = (await readForm(req)).get('name')?.trim() ?? '';
    if (!NAME.test(name)) return page(res, 400, signInForm('A name is 1 to 32 letters, digits, spaces, "_", "." or "-".'));
    res.setHeader('Set-Cookie', sessionCookie(name));
    return redirect(res, '/');
  }

  if (req.method === 'POST' && path === '/logout') {
    res.setHeader('Set-Cookie', `${COOKIE}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0`);
    return redirect(res, '/');
  }

  if (req.method === 'POST' && path === '/rooms') {
    if (!user) return redirect(res, '/');
    const room = (await readForm(req)).get('room')?.trim().toLowerCase() ?? '';
    if (!ROOM.test(room)) return page(res, 400, roomForm(user, 'A room name is 1 to 40 lowercase letters, digits or "-".'));
    return joinRoom(res, user, room);
  }

  page(res, 404, '<p>Not found. <a href="/">Home</a></p>');
}

async function readForm(req: IncomingMessage): Promise<URLSearchParams> {
  let body = '';
  for await (const chunk of req) {
    body += chunk;
    if (body.length > 10_000) throw new Error('form too large');
  }
  return new URLSearchParams(body);
}

function redirect(res: ServerResponse, location: string): void {
  res.writeHead(303, { Location: location });
  res.end();
}

function escape(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function signInForm(error?: string): string {
  return `${error ? `<p class="error">${escape(error)}</p>` : ''}
<form method="post" action="/login">
  <label>Sign in as <input name="name" autofocus required maxlength="32" placeholder="ann"></label>
  <button>Sign in</button>
</form>
<p class="muted">Any name will do: this is a demo. Use a second browser (or a private window,
or <code>localhost</code> in one and <code>127.0.0.1</code> in the other) to be someone else.</p>`;
}

function roomForm(user: string, error?: string): string {
  return `<p>Signed in as <b>${escape(user)}</b>.</p>
${error ? `<p class="error">${escape(error)}</p>` : ''}
<form method="post" action="/rooms">
  <label>Room <input name="room" value="lobby" required maxlength="40"></label>
  <button>Join</button>
</form>
<p class="muted">Everyone who joins the same room shares one counter: one berth backend per room.</p>
<form method="post" action="/logout"><button>Sign out</button></form>`;
}

function page(res: ServerResponse, status: number, body: string): void {
  res.writeHead(status, { 'Content-Type': 'text/html; charset=utf-8' });
  res.end(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Example app</title>
<style>body{font-family:system-ui,sans-serif;max-width:32rem;margin:3rem auto;padding:0 1rem}
.muted{color:#777;font-size:.9rem}.error{color:#b00}</style></head>
<body><h1>Example app</h1>${body}</body></html>`);
}

server.listen(config.port, '127.0.0.1', () => {
  console.log(`app server on http://127.0.0.1:${config.port} (berth ${config.berthUrl}, service ${config.account}/${config.service})`);
});
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => server.close(() => process.exit(0)));
