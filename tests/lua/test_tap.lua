-- The tap's frames (lua-shim/realms.lua, the tap part) as the agent reads
-- them. Answers are fed in random chunks (one byte at a time included),
-- several at once; send rounds are taken between chunks at random, the
-- agent acknowledges some records late, and connections drop (every
-- unacknowledged request is sent again from its B frame). The bytes of
-- every round are decoded as agent/include/realms/mframe.h defines them,
-- and each request's record must hold what the tap promises: a JSON answer
-- whole; an event stream whole up to TAP_HEAD + TAP_TAIL bytes, else its
-- first TAP_HEAD bytes, one G frame with the bytes left out, and its last
-- TAP_TAIL bytes. Then nothing may stay held.
--
--     lua5.3 tests/lua/test_tap.lua lua-shim/realms.lua
local shim = assert(arg[1], "usage: test_tap.lua path/to/realms.lua")

local H = dofile((arg[0]:match("^(.*/)") or "./") .. "shim.lua")
local T = H.load(shim)
assert(T.tap_batch and T.tap_data, "the shim does not export its tap")
local tap = T.tap

local check = H.check

-- ---- the agent's side: mframe.h's decoder, one connection at a time ----

local HDR_MAX, META_MAX, FRAME_MAX = 160, 8192, 64 * 1024 * 1024

local agent = {}

function agent.connect()
    agent.open = {}     -- rid -> { body pieces, skipped }
    agent.acks = {}     -- rids whose E came on this connection
end

-- Decodes one round's bytes: whole frames only (the tap never splits a
-- frame across rounds), ending with the round's sync.
function agent.read(bytes, records)
    local p, n = 1, #bytes
    local synced = false
    while p <= n do
        check(not synced, "nothing follows a round's sync")
        local nl = bytes:find("\n", p, true)
        if not nl then
            check(false, "a header line ends")
            return
        end
        local line = bytes:sub(p, nl - 1)
        check(#line + 1 <= HDR_MAX, "header line within " .. HDR_MAX .. " bytes")
        p = nl + 1
        local kind, id, len = line:match("^([BDGEOX]) ([%w._:-]+) (%d+)$")
        if not kind then
            check(line:match("^S %d+$") ~= nil, "a header or a sync: '" .. line .. "'")
            synced = true
        else
            len = tonumber(len)
            check(len <= (kind == "D" and FRAME_MAX or META_MAX), kind .. " length within its limit")
            local payload = bytes:sub(p, p + len - 1)
            check(#payload == len, kind .. " payload whole in its round")
            p = p + len
            local o = agent.open[id]
            if kind == "B" then
                agent.open[id] = { body = {}, size = 0, skipped = 0, gaps = 0, d = 0 }
            elseif kind == "D" and o then
                o.body[#o.body + 1] = payload
                o.size = o.size + len
                o.d = o.d + 1
            elseif kind == "G" and o then
                o.skipped = o.skipped + tonumber(payload:match("^skipped=(%d+)\n$"))
                o.gaps = o.gaps + 1
                o.gap_at = o.size
            elseif kind == "E" and o then
                o.reason = payload:match("reason=(%a+)")
                o.body = table.concat(o.body)
                records[id] = o
                agent.open[id] = nil
                agent.acks[#agent.acks + 1] = id
            end
        end
    end
    check(synced, "a round ends with its sync")
end

-- ---- answers ------------------------------------------------------------

local function gen_body(size)
    local t = {}
    for i = 1, size do t[i] = string.char(32 + (i * 7 + size) % 95) end
    return table.concat(t)
end

-- What the record of body must hold: its bytes, and the bytes left out.
local function expected(body, sse)
    local head, tail = T.TAP_HEAD, T.TAP_TAIL
    if not sse or #body <= head + tail then
        return body, 0
    end
    return body:sub(1, head) .. body:sub(#body - tail + 1), #body - head - tail
end

local function chunker(kind)
    if kind == "bytes" then return function() return 1 end end
    if kind == "small" then return function() return math.random(1, 64) end end
    if kind == "large" then return function() return math.random(1000, 70000) end end
    return function() return math.random(1, 20000) end
end

-- One scenario: n answers at once, random sizes and kinds, chunks from
-- chunks(); rounds taken with probability p_round after each chunk; a
-- connection dropped before a round with probability p_drop.
local function scenario(name, n, sizes, chunks, p_round, p_drop)
    agent.connect()
    local live, all = {}, {}
    for i = 1, n do
        local size = sizes()
        local a = {
            rid = "req_" .. name .. "_" .. i,
            body = gen_body(size),
            sse = math.random(2) == 1,
            pos = 1,
        }
        a.r = T.tap_begin(a.rid, { status = 200, ctype = a.sse and "text/event-stream" or
            "application/json" }, a.sse)
        check(a.r ~= nil, name .. ": request opened")
        live[#live + 1] = a
        all[#all + 1] = a
    end
    local records, drops, rounds = {}, 0, 0
    local function round()
        if tap.nacked > 0 then T.tap_compact() end
        if math.random() < p_drop and drops < 3 then
            drops = drops + 1
            agent.connect()
            T.tap_restart()
        end
        local batch = T.tap_batch()
        batch[#batch + 1] = "S " .. rounds .. "\n"
        rounds = rounds + 1
        agent.read(table.concat(batch), records)
        -- Some acknowledgements come a round late.
        local later = {}
        for _, rid in ipairs(agent.acks) do
            if math.random(3) == 1 then later[#later + 1] = rid else T.tap_ack(rid) end
        end
        agent.acks = later
    end
    while #live > 0 do
        local k = math.random(#live)
        local a = live[k]
        local c = chunks()
        T.tap_data(a.r, a.body:sub(a.pos, a.pos + c - 1))
        a.pos = a.pos + c
        if a.pos > #a.body then
            T.tap_end(a.r, "complete", { duration_ms = 1 })
            table.remove(live, k)
        end
        if math.random() < p_round then round() end
    end
    -- Until every record is in and acknowledged.
    for _ = 1, 1000 do
        round()
        if #tap.reqs == 0 or (tap.nacked == #tap.reqs) then break end
    end
    round()
    for _, a in ipairs(all) do
        local rec = records[a.rid]
        local want, skipped = expected(a.body, a.sse)
        check(rec ~= nil, name .. ": " .. a.rid .. " recorded")
        if rec then
            check(rec.body == want, name .. ": " .. a.rid .. " body (" .. #rec.body .. " of " ..
                #want .. " bytes)")
            check(rec.skipped == skipped, name .. ": " .. a.rid .. " skipped " .. rec.skipped ..
                ", not " .. skipped)
            check(rec.gaps == (skipped > 0 and 1 or 0), name .. ": " .. a.rid .. " one G frame at most")
            check(skipped == 0 or rec.gap_at == T.TAP_HEAD, name .. ": " .. a.rid ..
                " G after the head (at " .. tostring(rec.gap_at) .. ")")
            check(rec.reason == "complete", name .. ": " .. a.rid .. " complete")
        end
    end
    T.tap_compact()
    check(#tap.reqs == 0 and next(tap.by_rid) == nil, name .. ": every request forgotten")
    check(tap.bytes == 0, name .. ": nothing held (" .. tap.bytes .. " bytes)")
    return records
end

math.randomseed(tonumber(os.getenv("TEST_SEED") or "") or 20240611)
local function rnd(a, b) return function() return math.random(a, b) end end

for rep = 1, 3 do
    scenario("tiny" .. rep, 5, rnd(0, 300), chunker("bytes"), 0.05, 0)
    -- Every answer whole before the first round.
    scenario("held" .. rep, 8, rnd(0, 60000), chunker("mixed"), 0, 0)
    scenario("bytewise" .. rep, 3, rnd(15000, 20000), chunker("bytes"), 0.001, 0.01)
    scenario("small" .. rep, 20, rnd(0, 40000), chunker("small"), 0.02, 0.01)
    scenario("large" .. rep, 10, rnd(100000, 600000), chunker("large"), 0.3, 0.05)
    scenario("mixed" .. rep, 30, rnd(0, 300000), chunker("mixed"), 0.1, 0.02)
end

-- Body runs: an answer that came in many chunks between two rounds goes
-- out as one D frame per TAP_RUN_MAX bytes, not one per chunk.
do
    agent.connect()
    local r = T.tap_begin("req_runs", { status = 200, ctype = "application/json" }, false)
    local body = gen_body(T.TAP_RUN_MAX + 5000)
    for p = 1, #body, 100 do T.tap_data(r, body:sub(p, p + 99)) end
    T.tap_end(r, "complete", {})
    -- Two rounds: the first stops after TAP_BATCH bytes.
    local records = {}
    for i = 1, 2 do
        local batch = T.tap_batch()
        batch[#batch + 1] = "S " .. i .. "\n"
        agent.read(table.concat(batch), records)
    end
    local rec = records.req_runs
    check(rec and rec.body == body, "runs: body whole")
    check(rec and rec.d == 2, "runs: two D frames for " .. math.ceil(#body / 100) ..
        " chunks (" .. (rec and rec.d or 0) .. ")")
    T.tap_ack("req_runs")
    T.tap_compact()
    check(tap.bytes == 0, "runs: nothing held")
end

-- A request the agent refuses on every connection is given up; its answer
-- may still be streaming, and the tap takes no more of it.
do
    agent.connect()
    local r = T.tap_begin("req_refused", { status = 200, ctype = "application/json" }, false)
    T.tap_data(r, "{")
    for _ = 1, T.TAP_RESENDS_MAX + 1 do
        T.tap_batch()
        T.tap_restart()
    end
    check(r.acked, "given up: after " .. T.TAP_RESENDS_MAX .. " resends")
    local ok = pcall(T.tap_data, r, "more")
    check(ok, "given up: a later chunk is no error")
    T.tap_compact()
    check(#tap.reqs == 0 and tap.bytes == 0, "given up: nothing held (" .. tap.bytes .. " bytes)")
end

H.finish("test_tap")
