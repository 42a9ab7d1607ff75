-- Pipelined GETs, as TechEmpower runs its plaintext test: each write to a connection carries
-- `depth` copies of the request for wrk's path, back to back, and wrk counts every response.
--
--   wrk -t1 -c256 -d10s --latency -s bench/wrk/pipeline.lua http://127.0.0.1:PORT/plaintext -- 16
--
-- depth is the first script argument (after `--`); default 16, TechEmpower's. An optional second
-- argument paces the load: each connection waits that many milliseconds after a batch's last
-- response before sending the next batch, so that two servers compared get the same request
-- rate instead of whatever the generator manages against each (bench/run's *-paced rows).

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
  local pace = tonumber(args[2] or 0)
  if pace == nil or pace < 0 then
    error("pace must be a number of milliseconds, not " .. tostring(args[2]))
  end
  if pace > 0 then
    -- wrk calls delay() after each request() batch is answered (wrk.c, response_complete)
    delay = function()
      return pace
    end
  end
end

request = function()
  return pipelined
end
