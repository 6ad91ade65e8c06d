-- tests/load/post_photo.lua: wrk script that POSTs a photo to m2fp serve.
--   PHOTO   the file to send (raw body, Content-Type image/png or image/jpeg by extension)
--   PATHQ   the request path (default /predict)
--   UNIQUE  "1": append a counter after the file's bytes so every request has a new SHA-256 (decoders
--           stop at the end-of-image marker, so the picture is the same): no cache hits, no coalescing,
--           every request goes through the engine. Otherwise every request is the same photo.
-- Non-200 answers are counted and printed at the end (wrk only counts non-2xx/3xx).
local photo = os.getenv("PHOTO") or "data/astronaut.png"
local path = os.getenv("PATHQ") or "/predict"
local unique = os.getenv("UNIQUE") == "1"
local f = assert(io.open(photo, "rb"))
local body = f:read("*all")
f:close()
local ctype = photo:match("%.jpe?g$") and "image/jpeg" or "image/png"
local counter = 0
local statuses = {}

function setup(thread)
  thread:set("id", tostring(thread):sub(-6))
end

request = function()
  counter = counter + 1
  local b = body
  if unique then b = body .. string.format("%s-%d", id or "t", counter) end
  return wrk.format("POST", path, { ["Content-Type"] = ctype }, b)
end

response = function(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

done = function(summary, latency, requests)
  io.write(string.format("requests %d, errors: connect %d read %d write %d status %d timeout %d\n",
    summary.requests, summary.errors.connect, summary.errors.read, summary.errors.write,
    summary.errors.status, summary.errors.timeout))
  io.write(string.format("latency ms: p50 %.1f  p90 %.1f  p99 %.1f  max %.1f  mean %.1f\n",
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000,
    latency.max / 1000, latency.mean / 1000))
end
