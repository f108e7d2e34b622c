import http from 'node:http';

/**
 * The proxy listener. Token routing arrives with the proxy issue; until then
 * every token is unknown, which is exactly what a 404 says.
 */
export function createProxyServer(): http.Server {
  return http.createServer((req, res) => {
    const body = JSON.stringify({
      error: { message: 'unknown token', type: 'not_found_error', code: 'token_not_found', status: 404, id: '' },
    });
    res.writeHead(404, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) });
    res.end(body);
  });
}
