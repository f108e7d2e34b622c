/**
 * The Lua that runs inside the nginx edge (proxy/edge/nginx-conf.ts writes it
 * into the config). What it knows comes from berth's proxy process, through
 * the admin listener, into three shared dictionaries:
 *
 *   tokens    token → route: backend id, the Host it is served on ("" for
 *             any), then header name/value pairs, all separated by NUL
 *             (values never hold NUL: headers.ts replaces control characters)
 *   backends  backend id → "ip NUL port", present only while it is ready
 *   activity  "o:{id}" open requests and sockets, "s:{id}" seen since the last
 *             poll, "n:{status class}" requests answered since the last poll
 *
 * A request whose token and backend are both there is forwarded by nginx
 * alone; anything else (an unknown token, a backend not ready or gone, a
 * Host that does not match, a backend that does not answer) goes to berth's
 * proxy process, which answers exactly as it does without the edge and
 * teaches the edge the route once it is ready.
 *
 * Per request, a worker reads shared memory twice at most (its own cache of
 * parsed routes first, then the backend's readiness) and writes none: it
 * counts activity in its own tables and adds them to the dictionary four
 * times a second.
 */

/** How often a worker adds what it counted to the shared dictionary. */
const FLUSH_SECONDS = 0.25;

/** init_worker: the worker's route cache and counters, and the timer that flushes them. */
export const INIT_WORKER_LUA = String.raw`
local edge = { routes = require("resty.lrucache").new(20000), open = {}, seen = {}, answered = {} }
package.loaded.berth_edge = edge
local function flush(premature)
  local activity = ngx.shared.activity
  local open, seen, answered = edge.open, edge.seen, edge.answered
  edge.open, edge.seen, edge.answered = {}, {}, {}
  for id, delta in pairs(open) do
    if delta ~= 0 then activity:incr("o:" .. id, delta, 0) end
  end
  for id in pairs(seen) do activity:set("s:" .. id, true) end
  for class, count in pairs(answered) do activity:incr("n:" .. class, count, 0) end
end
ngx.timer.every(${FLUSH_SECONDS}, flush)
`;

/**
 * rewrite phase of the public listener: route, strip and set headers, count
 * activity; or hand over to berth. `stripPort`: a Host's port is ignored when
 * BERTH_PROXY_DOMAIN names none, as the proxy process does.
 */
export const routeLua = (stripPort: boolean) => String.raw`
local strip_port = ${stripPort ? 'true' : 'false'}
local find, sub, byte, lower = string.find, string.sub, string.byte, string.lower
local var = ngx.var
local edge = package.loaded.berth_edge

local uri = var.request_uri
if byte(uri, 1) ~= 47 then return ngx.exec("@berth") end
local stop = find(uri, "[/?]", 2)
local token = stop and sub(uri, 2, stop - 1) or sub(uri, 2)
if token == "" then return ngx.exec("@berth") end

-- A token's route never changes once issued: parsed once per worker, kept in its cache.
local route = edge.routes:get(token)
if not route then
  local raw = ngx.shared.tokens:get(token)
  if not raw then return ngx.exec("@berth") end
  local fields = {}
  local at = 1
  while true do
    local cut = find(raw, "\0", at, true)
    fields[#fields + 1] = sub(raw, at, (cut or 0) - 1)
    if not cut then break end
    at = cut + 1
  end
  route = { id = fields[1], host = fields[2], vars = {} }
  for i = 3, #fields - 1, 2 do
    route.vars[#route.vars + 1] = { "berth_" .. string.gsub(fields[i], "-", "_"), fields[i + 1] }
  end
  edge.routes:set(token, route)
end

local id = route.id
local address = ngx.shared.backends:get(id)
if not address then return ngx.exec("@berth") end
if route.host ~= "" then
  local sent = lower(var.http_host or "")
  local colon = strip_port and find(sent, ":[^:]*$")
  if colon and byte(sent, -1) ~= 93 then sent = sub(sent, 1, colon - 1) end
  if sent ~= route.host then return ngx.exec("@berth") end
end

-- The four x-verified headers are set by proxy_set_header, which also drops the client's of
-- those names. Any other x-verified-* or x_verified_*, whatever the case, goes too: looked for
-- in the raw head, so that the usual request pays one scan and no table.
if find(ngx.req.raw_header(true), "[xX][-_][vV][eE][rR][iI][fF][iI][eE][dD][-_]") then
  for name in pairs(ngx.req.get_headers(0, true)) do
    local p = sub(lower(name), 1, 11)
    if p == "x-verified-" or p == "x_verified_" then ngx.req.clear_header(name) end
  end
end
-- A plain request's hop-by-hop headers named by its Connection header (nginx drops the rest).
local connection = var.http_connection
if connection and not var.http_upgrade then
  for listed in string.gmatch(lower(connection), "[^,%s]+") do
    if listed ~= "close" and listed ~= "keep-alive" then ngx.req.clear_header(listed) end
  end
end
local vars = route.vars
for i = 1, #vars do
  local pair = vars[i]
  var[pair[1]] = pair[2]
end

local split = find(address, "\0", 1, true)
local ctx = ngx.ctx
ctx.ip = sub(address, 1, split - 1)
ctx.port = tonumber(sub(address, split + 1))
ctx.forwarded = true
var.berth_backend = id
local path = stop and sub(uri, stop) or "/"
if byte(path, 1) == 63 then path = "/" .. path end
var.berth_path = path
edge.open[id] = (edge.open[id] or 0) + 1
edge.seen[id] = true
`;

/** balancer phase: the peer the route chose; kept-alive connections are pooled per peer. */
export const BALANCER_LUA = String.raw`
local ctx = ngx.ctx
local ok, err = require("ngx.balancer").set_current_peer(ctx.ip, ctx.port)
if not ok then ngx.log(ngx.ERR, "berth edge: no peer: ", err) return ngx.exit(502) end
require("ngx.balancer").set_more_tries(0)
`;

/** log phase: the request or socket has ended. */
export const LOG_LUA = String.raw`
-- A variable, not ngx.ctx: it outlives the internal redirect of a failed forward to berth.
local id = ngx.var.berth_backend
if id ~= "" then
  local edge = package.loaded.berth_edge
  edge.open[id] = (edge.open[id] or 0) - 1
  edge.seen[id] = true
  -- Answered by the edge itself (ngx.ctx does not survive a hand-over to berth, which counts its own).
  if ngx.ctx.forwarded then
    local class = math.floor(ngx.status / 100)
    edge.answered[class] = (edge.answered[class] or 0) + 1
  end
end
`;

/**
 * The admin listener's POST /routes: one record per line.
 *   T{token}\t{route}   a token's route (route as in the tokens dictionary)
 *   R{id}\t{ip}\t{port} the backend is ready at ip:port
 *   G{id}               the backend is not ready (starting, gone): its requests go to berth
 */
export const ROUTES_LUA = String.raw`
if ngx.var.http_x_berth_edge ~= ngx.var.berth_secret then return ngx.exit(403) end
ngx.req.read_body()
local body = ngx.req.get_body_data()
if not body then return ngx.exit(400) end
local tokens, backends = ngx.shared.tokens, ngx.shared.backends
local find, sub, byte = string.find, string.sub, string.byte
local start = 1
local len = #body
while start <= len do
  local stop = find(body, "\n", start, true) or (len + 1)
  local kind = byte(body, start)
  local tab = find(body, "\t", start, true)
  if kind == 84 and tab and tab < stop then -- T
    tokens:set(sub(body, start + 1, tab - 1), sub(body, tab + 1, stop - 1))
  elseif kind == 82 and tab and tab < stop then -- R
    local tab2 = find(body, "\t", tab + 1, true)
    backends:set(sub(body, start + 1, tab - 1), sub(body, tab + 1, tab2 - 1) .. "\0" .. sub(body, tab2 + 1, stop - 1))
  elseif kind == 71 then -- G
    backends:delete(sub(body, start + 1, stop - 1))
  end
  start = stop + 1
end
ngx.status = 204
`;

/**
 * The admin listener's GET /activity: "{id}\t{open}\n" for every backend seen
 * since the last poll or still held open, and "#{status class}\t{count}\n" for
 * the requests the edge answered since. Both are cleared as they are read.
 */
export const ACTIVITY_LUA = String.raw`
if ngx.var.http_x_berth_edge ~= ngx.var.berth_secret then return ngx.exit(403) end
local activity = ngx.shared.activity
local out = {}
local ids = {}
for _, key in ipairs(activity:get_keys(0)) do
  local id = string.sub(key, 3)
  local kind = string.byte(key, 1)
  if kind == 115 then -- s:
    activity:delete(key)
    ids[id] = true
  elseif kind == 110 then -- n:
    local count = activity:get(key) or 0
    if count > 0 then
      activity:incr(key, -count)
      out[#out + 1] = "#" .. id .. "\t" .. count .. "\n"
    end
  else
    local open = activity:get(key)
    if open and open > 0 then ids[id] = true else activity:delete(key) end
  end
end
for id, _ in pairs(ids) do
  out[#out + 1] = id .. "\t" .. (activity:get("o:" .. id) or 0) .. "\n"
end
ngx.print(table.concat(out))
`;

/**
 * An answer of the edge's own, in berth's JSON error body (src/core/errors.ts):
 * when berth's proxy process cannot be reached, or a connection cap is hit.
 */
export function errorLua(status: number, type: string, code: string, message: string): string {
  return String.raw`
local chars = "0123456789abcdefghijklmnopqrstuvwxyz"
local id = {}
for i = 1, 16 do local n = math.random(1, 36) id[i] = string.sub(chars, n, n) end
local request_id = "req_" .. table.concat(id)
ngx.status = ${status}
ngx.header["Content-Type"] = "application/json"
ngx.header["Access-Control-Allow-Origin"] = "*"
ngx.header["Retry-After"] = "5"
ngx.header["X-Request-Id"] = request_id
ngx.print('{"error":{"message":${JSON.stringify(message)},"type":"${type}","code":"${code}","status":${status},"id":"' .. request_id .. '"}}')
`;
}
