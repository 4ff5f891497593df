-- GET phases: wrk's prebuilt request (no per-request Lua), plus the report.
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "report.lua")
