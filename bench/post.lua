-- wrk script for bench/run.sh: POSTs the file named by $BENCH_BODY as a
-- Messages API request body. Read once per wrk thread, at start.
local path = os.getenv("BENCH_BODY")
assert(path, "BENCH_BODY is not set")
local f = assert(io.open(path, "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
wrk.headers["anthropic-version"] = "2023-06-01"
