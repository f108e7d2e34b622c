// The least a Node.js reverse proxy can do, as the floor berth's proxy is
// measured against (bench/proxy-http.ts, path "node floor"): Node's HTTP
// server, undici's dispatcher with a keep-alive pool (what berth's proxy
// uses), the response streamed back. No routing, no token, no header work, no
// activity: what is left is Node's HTTP stack itself.
//
//   node bench/lib/floor-proxy.mjs UPSTREAM_PORT PORT    (listens on 127.0.0.1:PORT)
import http from 'node:http';
import { Agent } from 'undici';

const [upstreamPort, port] = process.argv.slice(2).map(Number);
const origin = `http://127.0.0.1:${upstreamPort}`;
const agent = new Agent({ keepAliveTimeout: 4_000 });

http
  .createServer((req, res) => {
    agent.dispatch(
      { origin, path: req.url, method: req.method, headers: req.headers, body: null },
      {
        onRequestStart() {},
        onResponseStart(_controller, statusCode, headers) {
          delete headers.connection;
          delete headers['keep-alive'];
          delete headers['transfer-encoding'];
          res.writeHead(statusCode, headers);
        },
        onResponseData(_controller, chunk) {
          res.write(chunk);
        },
        onResponseEnd() {
          res.end();
        },
        onResponseError(_controller, error) {
          res.destroy(error);
        },
      },
    );
  })
  .listen(port, '127.0.0.1', () => console.log('listening'));
