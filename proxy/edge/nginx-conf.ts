import type { ListenerLimits } from '../../src/core/listener-guard.ts';
import { VERIFIED_HEADER_NAMES } from '../headers.ts';
import { ACTIVITY_LUA, BALANCER_LUA, errorLua, INIT_WORKER_LUA, LOG_LUA, ROUTES_LUA, routeLua } from './edge-lua.ts';

/** The nginx variable the route's Lua sets for a header: x-verified-username → berth_x_verified_username. */
const headerVariable = (name: string) => `berth_${name.replaceAll('-', '_')}`;

export interface EdgeConfOptions {
  /** nginx's prefix: temp paths, pid, error log and the admin socket live here. */
  prefix: string;
  /** The public listener: BERTH_BIND and BERTH_PROXY_PORT. */
  host: string;
  port: number;
  /** Where berth's own proxy listens (127.0.0.1): everything the edge does not forward itself. */
  berthPort: number;
  /** Sent to berth's proxy with the client's address, so that it trusts that address and nothing else. */
  secret: string;
  /** BERTH_PROXY_WORKERS. */
  workers: number;
  limits: ListenerLimits;
  /** BERTH_PROXY_DOMAIN names a port: the Host's port is then part of the match. */
  domainHasPort: boolean;
  /** `load_module` lines for the Lua module, when nginx does not have it built in. */
  modules: readonly string[];
}

/** Seconds for nginx, never 0 (which nginx reads as "no wait at all" for some directives). */
const seconds = (ms: number) => `${Math.max(1, Math.ceil(ms / 1000))}s`;

/** A Lua block inside nginx's config: `}` balanced, no `$` read as a variable. */
const block = (lua: string) => `{${lua}}`;

/**
 * The edge's nginx.conf. The public listener forwards a ready route itself
 * (a keep-alive pool per backend, bodies streamed both ways, WebSockets
 * relayed) and hands every other request to berth's proxy, unchanged; the
 * admin socket is where berth's proxy writes routes and reads activity.
 */
export function renderEdgeConf(o: EdgeConfOptions): string {
  const listen = o.host.includes(':') ? `[${o.host}]:${o.port}` : `${o.host}:${o.port}`;
  // BERTH_MAX_CONNECTIONS clients, each with a connection to its backend, and room for the pools.
  // (nginx's limit_conn would cap connections per client too, but counts every request under a
  // shared lock: 5–10 % of the edge's throughput. The edge leaves that cap out; docs/security.md.)
  const connections = o.limits.maxConnections * 2 + 512;
  return `# Written by berth at start (proxy/edge/nginx-conf.ts); rewritten at every start.
${o.modules.map((path) => `load_module ${path};`).join('\n')}
worker_processes ${o.workers};
worker_rlimit_nofile ${connections * 2};
pid ${o.prefix}/nginx.pid;
error_log ${o.prefix}/error.log warn;
events { worker_connections ${connections}; }
http {
  access_log off;
  server_tokens off;
  client_body_temp_path ${o.prefix}/client_body;
  proxy_temp_path ${o.prefix}/proxy;
  fastcgi_temp_path ${o.prefix}/fastcgi;
  uwsgi_temp_path ${o.prefix}/uwsgi;
  scgi_temp_path ${o.prefix}/scgi;
  lua_shared_dict tokens 64m;
  lua_shared_dict backends 8m;
  lua_shared_dict activity 8m;
  init_worker_by_lua_block ${block(INIT_WORKER_LUA)}

  # What berth's own listener allows (src/core/listener-guard.ts), in nginx's terms.
  client_header_timeout ${seconds(o.limits.headerTimeoutMs)};
  client_body_timeout ${seconds(o.limits.idleTimeoutMs)};
  keepalive_timeout ${seconds(o.limits.idleTimeoutMs)};
  keepalive_requests 1000000;
  send_timeout ${seconds(o.limits.idleTimeoutMs)};
  large_client_header_buffers 4 16k;
  client_max_body_size 0;
  underscores_in_headers on;
  merge_slashes off;

  map $http_upgrade $berth_connection { default upgrade; '' ''; }

  upstream berth_backends {
    server 0.0.0.1;
    balancer_by_lua_block ${block(BALANCER_LUA)}
    keepalive 256;
    keepalive_requests 1000000;
    keepalive_timeout 4s;
  }
  upstream berth_proxy {
    server 127.0.0.1:${o.berthPort};
    keepalive 64;
  }

  server {
    listen ${listen} backlog=4096;
    set $berth_backend '';
    set $berth_path '';
${VERIFIED_HEADER_NAMES.map((name) => `    set $${headerVariable(name)} '';`).join('\n')}
    proxy_http_version 1.1;
    proxy_buffering off;
    proxy_request_buffering off;
    proxy_pass_header Server;
    proxy_pass_header Date;
    # The app decides how long an answer takes (long polls, event streams, WebSockets).
    proxy_read_timeout 24h;
    proxy_send_timeout 24h;
    proxy_connect_timeout 10s;
    log_by_lua_block ${block(LOG_LUA)}

    location / {
      rewrite_by_lua_block ${block(routeLua(!o.domainHasPort))}
      proxy_pass http://berth_backends$berth_path;
      proxy_set_header Host $http_host;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection $berth_connection;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Berth-Edge '';
      # Hop-by-hop headers of the client's connection (those its Connection header names go in Lua).
      proxy_set_header Keep-Alive '';
      proxy_set_header Proxy-Connection '';
      # Set from the token's route; one left empty is not sent, and the client's of that name never is.
${VERIFIED_HEADER_NAMES.map((name) => `      proxy_set_header ${name} $${headerVariable(name)};`).join('\n')}
      # A backend that does not answer: berth's proxy tries once more, and answers 502 or 410 as it would.
      error_page 502 = @berth;
    }

    # Everything the edge does not forward itself: berth's proxy answers it as it would without the edge.
    location @berth {
      proxy_pass http://berth_proxy$request_uri;
      proxy_set_header Host $http_host;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection $http_connection;
      proxy_set_header X-Berth-Edge '${o.secret} $remote_addr';
      error_page 502 504 = @berth_down;
    }
    location @berth_down {
      content_by_lua_block ${block(errorLua(503, 'unavailable_error', 'proxy_unavailable', 'the proxy could not look up this connection token; retry later'))}
    }
  }

  server {
    listen unix:${o.prefix}/admin.sock;
    client_body_buffer_size 16m;
    client_max_body_size 16m;
    set $berth_secret '${o.secret}';
    location = /routes { content_by_lua_block ${block(ROUTES_LUA)} }
    location = /activity { content_by_lua_block ${block(ACTIVITY_LUA)} }
    location = /ping { return 204; }
  }
}
`;
}
