-- Pipelined GETs, as TechEmpower runs its plaintext test: each write to a connection carries
-- `depth` copies of the request for wrk's path, back to back, and wrk counts every response.
--
--   wrk -t1 -c256 -d10s --latency -s bench/wrk/pipeline.lua http://127.0.0.1:PORT/plaintext -- 16
--
-- depth is the first script argument (after `--`); default 16, TechEmpower's.

local DEFAULT_DEPTH = 16

local pipelined

init = function(args)
  local depth = tonumber(args[1]) or DEFAULT_DEPTH
  if depth < 1 then
    error("pipeline depth must be at least 1, not " .. tostring(args[1]))
  end
  local one = wrk.format(nil, wrk.path)
  local r = {}
  for i = 1, depth do
    r[i] = one
  end
  pipelined = table.concat(r)
end

request = function()
  return pipelined
end
