// A collaborative session backend: one shared counter per key.
//
// berth starts one container of this image per key (a room, a document…) and
// proxies browsers to it. State lives in this process's memory, so everyone
// connected to the same key shares it; it is gone when berth sweeps the idle
// backend. Every change is broadcast to every open WebSocket, with the name of
// whoever made it, taken from the x-verified-username header: berth's proxy
// sets it from connect's `user` and removes any a client sent, so it cannot be
// forged (as long as only the proxy can reach this port, which berth ensures
// by publishing it on 127.0.0.1).
//
// GET /       the page (index.html)
// GET /state  the current state as JSON
// WS  /ws     {"type":"hello",you,key} once, then {"type":"state",…} on every change;
//             send {"op":"increment"|"decrement"|"reset"}
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { WebSocketServer } from 'ws';

const PORT = Number(process.env.PORT || 8080);
const KEY = process.env.SESSION_BACKEND_KEY || '(no key)';
const PAGE = readFileSync(new URL('./index.html', import.meta.url));
const HISTORY_LENGTH = 20;
const OPS = { increment: 1, decrement: -1, reset: 0 };

const state = { key: KEY, count: 0, history: [] };

/**
 * The proxy writes the username as UTF-8 bytes; Node reads header bytes as
 * latin1, so turn them back into the name. Absent when connect gave no `user`
 * (or when nobody proxies: running this file by hand).
 */
function usernameOf(req) {
  const raw = req.headers['x-verified-username'];
  return raw ? Buffer.from(raw, 'latin1').toString('utf8') : 'anonymous';
}

function snapshot() {
  const online = [...wss.clients].filter((c) => c.readyState === c.OPEN).map((c) => c.username);
  return JSON.stringify({ type: 'state', ...state, online: [...new Set(online)].sort() });
}

function broadcast() {
  const message = snapshot();
  for (const client of wss.clients) if (client.readyState === client.OPEN) client.send(message);
}

function apply(user, op) {
  if (!(op in OPS)) return false;
  state.count = op === 'reset' ? 0 : state.count + OPS[op];
  state.history.unshift({ user, op, count: state.count, at: new Date().toISOString() });
  state.history.length = Math.min(state.history.length, HISTORY_LENGTH);
  console.log(`${user} ${op} -> ${state.count}`);
  return true;
}

const server = createServer((req, res) => {
  const path = (req.url ?? '/').split('?')[0];
  if (req.method === 'GET' && path === '/') {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'content-length': PAGE.length, 'cache-control': 'no-store' });
    return res.end(PAGE);
  }
  if (req.method === 'GET' && path === '/state') {
    const body = JSON.stringify(state);
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store' });
    return res.end(body);
  }
  res.writeHead(404, { 'content-type': 'text/plain' });
  res.end('not found\n');
});

const wss = new WebSocketServer({ server, path: '/ws' });
wss.on('connection', (ws, req) => {
  ws.username = usernameOf(req);
  console.log(`${ws.username} joined`);
  ws.send(JSON.stringify({ type: 'hello', you: ws.username, key: KEY }));
  broadcast();
  ws.on('message', (data) => {
    let message;
    try {
      message = JSON.parse(data.toString());
    } catch {
      return ws.send(JSON.stringify({ type: 'error', message: 'send JSON such as {"op":"increment"}' }));
    }
    if (apply(ws.username, message?.op)) broadcast();
    else ws.send(JSON.stringify({ type: 'error', message: `unknown op ${JSON.stringify(message?.op)}` }));
  });
  ws.on('close', () => {
    console.log(`${ws.username} left`);
    broadcast();
  });
  ws.on('error', (error) => console.error(`websocket of ${ws.username}: ${error.message}`));
});

// As PID 1 in a container, node gets no default signal handling: without these
// handlers `docker stop` (and berth's soft terminate) would wait for SIGKILL.
for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => {
    console.log(`${signal}: stopping`);
    for (const client of wss.clients) client.close(1001, 'backend stopping');
    server.close(() => process.exit(0));
    setTimeout(() => process.exit(0), 2000).unref();
  });
}

server.listen(PORT, () => console.log(`counter for key ${KEY} listening on ${PORT}`));
