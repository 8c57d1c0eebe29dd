-- Replays pre-signed requests from the file named by BENCH_REQUESTS, one per line:
--   METHOD <tab> PATH <tab> HEADERS <tab> BODY
-- HEADERS are "Name: value" fields separated by the unit separator (\31): the signature's
-- headers, version 1 (x-timestamp, x-signature) or version 2 (Signature-Input, Signature,
-- Content-Digest), and Content-Type when there is a body.
-- Thread k of n sends lines k, k+n, k+2n, ... so that no two threads share a signature; a list
-- of safe requests may be cycled, a list of unsafe ones (each accepted once) must be long enough.

local threads = {}
local counter = 0

function setup(thread)
  thread:set("index", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

function init(args)
  local stride = tonumber(os.getenv("BENCH_THREADS"))
  local mine = {}
  local line_number = 0
  for line in io.lines(os.getenv("BENCH_REQUESTS")) do
    if line_number % stride == index then
      local method, path, fields, body = line:match("^([^\t]*)\t([^\t]*)\t([^\t]*)\t(.*)$")
      local headers = {}
      for field in fields:gmatch("[^\31]+") do
        local name, value = field:match("^([^:]+): (.*)$")
        headers[name] = value
      end
      if body == "" then
        body = nil
      end
      mine[#mine + 1] = wrk.format(method, path, headers, body)
    end
    line_number = line_number + 1
  end
  requests = mine
  position = 0
end

function request()
  position = position + 1
  if position > #requests then
    position = 1
  end
  return requests[position]
end

function done(summary, latency, _requests)
  local errors = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"requests": %d, "duration_us": %d, "p50_us": %d, "p90_us": %d, ' ..
    '"p99_us": %d, "mean_us": %.1f, "max_us": %d, "errors": {"connect": %d, "read": %d, ' ..
    '"write": %d, "status": %d, "timeout": %d}}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.mean, latency.max, errors.connect, errors.read,
    errors.write, errors.status, errors.timeout))
end
