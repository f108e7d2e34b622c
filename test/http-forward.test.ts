// The proxy's forwarding at its seam, with real sockets on 127.0.0.1: a backend that writes its
// response by hand, and a front server that forwards to it as the proxy does (proxy/http-forward.ts).
import { once } from 'node:events';
import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { Agent } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { forwardHttp } from '../proxy/http-forward.ts';

/** Sends one raw request and resolves to the raw bytes of the answer's head. */
async function rawHead(port: number, path: string): Promise<Buffer> {
  const socket = net.connect({ host: '127.0.0.1', port });
  await once(socket, 'connect');
  socket.write(`GET ${path} HTTP/1.1\r\nHost: front\r\nConnection: close\r\n\r\n`);
  const chunks: Buffer[] = [];
  for await (const chunk of socket) chunks.push(chunk as Buffer);
  const all = Buffer.concat(chunks);
  return all.subarray(0, all.indexOf('\r\n\r\n'));
}

describe('forwarding a response', () => {
  const agent = new Agent();
  let backend: net.Server;
  let front: http.Server;
  let frontPort = 0;

  beforeAll(async () => {
    // Answers with the reason phrase named in the path, as raw bytes.
    backend = net.createServer((socket) => {
      socket.once('data', (data) => {
        const path = data.toString('latin1').split(' ')[1] ?? '/';
        const reason = Buffer.from(decodeURIComponent(path.slice(1)), 'utf8');
        socket.end(Buffer.concat([Buffer.from('HTTP/1.1 200 '), reason, Buffer.from('\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok')]));
      });
    });
    backend.listen(0, '127.0.0.1');
    await once(backend, 'listening');
    const backendPort = (backend.address() as AddressInfo).port;
    front = http.createServer((req, res) =>
      forwardHttp(req, res, { host: '127.0.0.1', port: backendPort, path: req.url ?? '/', dispatcher: agent }, (error) => {
        res.writeHead(502).end(error.message);
      }),
    );
    front.listen(0, '127.0.0.1');
    await once(front, 'listening');
    frontPort = (front.address() as AddressInfo).port;
  });
  afterAll(async () => {
    front?.close();
    backend?.close();
    await agent.close();
  });

  // Regression: undici reads the reason phrase as UTF-8, and Node refuses to write characters above
  // U+00FF, so a reason like "OK — fine" cut the client's connection instead of answering.
  it('passes the reason phrase through as the bytes the backend sent, non-ASCII included', async () => {
    for (const reason of ['OK', 'Fine thanks', 'OK — fine', 'Très bien']) {
      const head = await rawHead(frontPort, `/${encodeURIComponent(reason)}`);
      const statusLine = head.subarray(0, head.indexOf('\r\n'));
      expect(statusLine.equals(Buffer.concat([Buffer.from('HTTP/1.1 200 '), Buffer.from(reason, 'utf8')])), statusLine.toString('latin1')).toBe(true);
    }
  });
});
