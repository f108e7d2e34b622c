-- wrk script for the benches: every request is a POST of WRK_BODY (JSON),
-- with WRK_TOKEN as bearer token when set. Values come from the environment so
-- that this file stays data-free.
wrk.method = "POST"
wrk.body = os.getenv("WRK_BODY") or "{}"
wrk.headers["Content-Type"] = "application/json"
local token = os.getenv("WRK_TOKEN")
if token and token ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. token
end
