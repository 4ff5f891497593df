-- POST phases. Arguments after `--`: MODE then MODE's values.
--   create TOKEN...              POST {name, date} (a unique name per request), tokens in turn
--   status TOKEN...              POST {status} cycling Going / Maybe / Not Going, tokens in turn
--   token PASSWORD USERNAME...   POST {username, password}, usernames in turn
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "report.lua")

local threads = 0

function setup(thread)
  threads = threads + 1
  thread:set("thread_id", threads)
end

local mode, values, password, run_tag
local n = 0
local statuses = { "Going", "Maybe", "Not Going" }

function init(args)
  mode = args[1]
  values = {}
  local first = 2
  if mode == "token" then
    password = args[2]
    first = 3
  end
  for i = first, #args do
    table.insert(values, args[i])
  end
  assert(#values > 0, "no tokens / usernames given")
  math.randomseed(os.time() + (thread_id or 0))
  run_tag = string.format("%x", math.random(0, 0xffffff))
end

local function json_headers(token)
  local h = { ["Content-Type"] = "application/json" }
  if token then
    h["Authorization"] = "Bearer " .. token
  end
  return h
end

function request()
  n = n + 1
  local v = values[(n % #values) + 1]
  if mode == "create" then
    local body = string.format(
      '{"name":"wrk %s t%d #%d","date":"2027-%02d-%02d"}',
      run_tag, thread_id or 0, n, (n % 12) + 1, (n % 28) + 1)
    return wrk.format("POST", nil, json_headers(v), body)
  elseif mode == "status" then
    local body = '{"status":"' .. statuses[(n % 3) + 1] .. '"}'
    return wrk.format("POST", nil, json_headers(v), body)
  elseif mode == "token" then
    local body = '{"username":"' .. v .. '","password":"' .. password .. '"}'
    return wrk.format("POST", nil, json_headers(nil), body)
  end
  error("unknown mode " .. tostring(mode))
end
