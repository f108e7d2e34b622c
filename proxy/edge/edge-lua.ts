/**
 * The Lua that runs inside the nginx edge (proxy/edge/nginx-conf.ts writes it
 * into the config). It keeps no state of its own beyond three shared
 * dictionaries, all written by berth's proxy process through the admin
 * listener:
 *
 *   tokens    token → route: backend id, the Host it is served on ("" for
 *             any), then header name/value pairs, all separated by NUL
 *             (values never hold NUL: headers.ts replaces control characters)
 *   backends  backend id → "ip NUL port", present only while it is ready
 *   activity  "o:{id}" open requests and sockets; "s:{id}" seen since the last poll
 *
 * A request whose token and backend are both there is forwarded by nginx
 * alone; anything else (an unknown token, a backend not ready or gone, a
 * Host that does not match, a backend that does not answer) goes to berth's
 * proxy process, which answers exactly as it does without the edge and
 * teaches the edge the route once it is ready.
 */

/**
 * rewrite phase of the public listener: route, strip and set headers, count
 * activity; or hand over to berth. `stripPort`: a Host's port is ignored when
 * BERTH_PROXY_DOMAIN names none, as the proxy process does.
 */
export const routeLua = (stripPort: boolean) => String.raw`
local strip_port = ${stripPort ? 'true' : 'false'}
local tokens, backends, activity = ngx.shared.tokens, ngx.shared.backends, ngx.shared.activity
local find, sub, byte, lower = string.find, string.sub, string.byte, string.lower
local var = ngx.var

local uri = var.request_uri
if byte(uri, 1) ~= 47 then return ngx.exec("@berth") end
local stop = find(uri, "[/?]", 2)
local token = stop and sub(uri, 2, stop - 1) or sub(uri, 2)
local route = token ~= "" and tokens:get(token)
if not route then return ngx.exec("@berth") end

local cut = find(route, "\0", 1, true)
local id = sub(route, 1, cut - 1)
local address = backends:get(id)
if not address then return ngx.exec("@berth") end
local next_cut = find(route, "\0", cut + 1, true)
local host = sub(route, cut + 1, (next_cut or 0) - 1)
if host ~= "" then
  local sent = lower(var.http_host or "")
  local colon = strip_port and find(sent, ":[^:]*$")
  if colon and byte(sent, -1) ~= 93 then sent = sub(sent, 1, colon - 1) end
  if sent ~= host then return ngx.exec("@berth") end
end

-- Every header named x-verified-* or x_verified_*, whatever the case, and (for a
-- plain request) every header the Connection header names, goes.
local upgrade = var.http_upgrade ~= nil
local headers = ngx.req.get_headers(0, true)
local clear = ngx.req.clear_header
for name, _ in pairs(headers) do
  local l = lower(name)
  local p = sub(l, 1, 11)
  if p == "x-verified-" or p == "x_verified_" then clear(name) end
end
if not upgrade then
  local connection = var.http_connection
  if connection then
    for listed in string.gmatch(lower(connection), "[^,%s]+") do
      if listed ~= "close" and listed ~= "keep-alive" then clear(listed) end
    end
  end
  clear("keep-alive")
  clear("proxy-connection")
end
local set = ngx.req.set_header
local at = next_cut
while at do
  local name_end = find(route, "\0", at + 1, true)
  local value_end = find(route, "\0", name_end + 1, true)
  set(sub(route, at + 1, name_end - 1), sub(route, name_end + 1, (value_end or 0) - 1))
  at = value_end
end

local split = find(address, "\0", 1, true)
local ctx = ngx.ctx
ctx.ip = sub(address, 1, split - 1)
ctx.port = tonumber(sub(address, split + 1))
var.berth_backend = id
local path = stop and sub(uri, stop) or "/"
if byte(path, 1) == 63 then path = "/" .. path end
var.berth_path = path
ngx.ctx.forwarded = true
activity:incr("o:" .. id, 1, 0)
activity:set("s:" .. id, true)
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
  local activity = ngx.shared.activity
  activity:incr("o:" .. id, -1, 1)
  activity:set("s:" .. id, true)
  -- Answered by the edge itself (ngx.ctx does not survive a hand-over to berth, which counts its own).
  if ngx.ctx.forwarded then activity:incr("n:" .. math.floor(ngx.status / 100), 1, 0) end
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
