-- Realms Lua shim for HAProxy 2.6 (load with lua-load-per-thread): four
-- parts, each described where it begins, run by one filter per stream:
--   realms-guard-tap-rewrite-outcome  on fe_realms (haproxy/realms.cfg)
--     guard    the body guard: a second top-level key, the size limit
--     tap      the response mirror's frames to the agent, for billing
--     rewrite  splices the model name the agent chose into the request
--     outcome  each upstream attempt's result to the agent's breakers
--   realms-rewrite-outcome            on fe_relay, for the relay's attempts
-- One filter per stream rather than one per part or per proxy: HAProxy 2.6
-- gives every Lua filter of a stream two coroutines of its own, and every
-- callback a new txn object (a dozen tables), so a part that shares a
-- filter costs a branch where a filter of its own cost callbacks
-- (docs/benchmarks.md, "Lua filters"). On the pool's path the rewrite and
-- the outcome of fe_realms find nothing to do (the agent gave them no
-- attempt); the relay's filter does them for each attempt.
-- Any set of parts loads under "realms-" and their names joined by "-", in
-- the order above (realms-guard-tap, realms-rewrite, ...: the names of
-- configurations written before). The rewrite and the outcome act once per
-- stream whichever filter comes first: each takes its instructions out of
-- the transaction's variables, so that a channel part rendered before,
-- with a filter of its own in up_<channel>, adds no second splice and no
-- second report.
-- I/O inside HAProxy (filters, core.tcp); the guard's scanner and the
-- tap's framing are pure and tested outside HAProxy (tests/lua).
--
-- rewrite: on fe_realms for the requests sent straight to their channel,
-- on fe_relay for the relay's attempts, replaces the body's "model" JSON
-- string token with the one the agent chose for this attempt.
-- The agent gives the token's offset and length in the body and the new
-- token (already JSON-escaped); nothing else in the body changes. The new
-- Content-Length was set by an http-request rule before the headers left,
-- since 2.6 cannot change it from a filter. A chunked body keeps no
-- Content-Length and HAProxy re-frames it.
--
-- Filter callbacks cannot yield; this one only inspects and splices what
-- is already in the buffer, and holds back at most the bytes up to the end
-- of the model token (it sits at the start of real bodies).

-- The request's headers, once they went through the http-request rules
-- (start_analyze runs before them, when the agent has not answered yet):
-- whether the body is to be rewritten (f is the filter instance). The
-- instruction is taken: no later filter of the stream splices it again.
local function rewrite_headers(f, txn)
    local new = txn:get_var("txn.realms.model_new")
    if not new then return false end
    local off = tonumber(txn:get_var("txn.realms.model_off"))
    local len = tonumber(txn:get_var("txn.realms.model_len"))
    if off and len then
        txn:unset_var("txn.realms.model_new")
        f.rw_new, f.rw_off, f.rw_len, f.rw_pos = new, off, len, 0
        return true
    end
    return false
end

-- Forwards bytes up to the token, splices it once it is whole (and then
-- clears f.rw_new). Returns how many bytes may leave now. A splice that
-- does not fit stops the request (a Lua error, as the guard's below): a -1
-- would forward the body unchanged under the new Content-Length.
local function rewrite_payload(f, txn, msg)
    local avail = msg:input()
    local rel = f.rw_off - f.rw_pos          -- token start in this input
    if rel + f.rw_len > avail then
        -- Not all of the token is here yet: release what precedes it (as
        -- much of it as is here: HAProxy reads a larger count as all).
        local k = math.min(rel, avail)
        f.rw_pos = f.rw_pos + k
        return k
    end
    if msg:set(f.rw_new, rel, f.rw_len) < 0 then
        f.rw_new = nil
        local why = "the gateway could not rewrite the request's model name"
        txn:set_var("txn.realms_body_err", why)
        error("realms-rewrite: request " .. tostring(txn:get_var("txn.realms_rid")) ..
            ": " .. why, 0)
    end
    f.rw_new = nil
    return msg:input()
end

-- guard: on fe_realms, the body guard. The agent reads the model
-- (and refuses duplicate top-level keys) in the first agent.body_prefix
-- bytes of a body; the upstream acts on all of it, and keeps the LAST of
-- duplicated keys. A second top-level "model" past the prefix, or behind
-- a deep nest, would be served while the first was authorised and billed.
-- So every body the agent did not read whole (txn.realms.whole unset) is
-- scanned here, every byte, before it is forwarded: a top-level key given
-- twice, or one that is not a plain lowercase name (the Messages API's are
-- all [a-z0-9_]: anything else an upstream folding case or Unicode could
-- read as another key), or a 65th key, stops the request, and so does a
-- body past agent.max_body
-- (chunked bodies announce no size). The scan keeps O(1) state whatever
-- the nesting depth (one counter), so it holds for every depth and size.
--
-- The upstream never acts on a cut body: the bytes that would complete it
-- are never forwarded. Stopping is a Lua error: HAProxy 2.6 clamps a -1
-- returned by http_payload to the whole input (an unsigned comparison),
-- while an error aborts the stream; the client gets a 400 whose message
-- comes from txn.realms_body_err (the http-error of haproxy/realms.cfg).
--
-- It reads strict JSON only as far as it needs (strings, escapes,
-- brackets, the colon after a top-level key): any body a strict parser
-- accepts is read exactly as that parser reads it; a body it does not
-- accept is refused by the upstream.

local GUARD_KEY_MAX = 256   -- top-level key bytes kept; longer ones are refused
local GUARD_KEYS_MAX = 64   -- top-level keys at most (INSPECT_KEYS_MAX in the agent)

local find, byte, sub = string.find, string.byte, string.sub

-- Scans one chunk; returns nil, or the reason to refuse.
local function guard_scan(g, s)
    local i, n = 1, #s
    local depth, instr = g.depth, g.instr
    while i <= n do
        if instr then
            local j = find(s, '"', i, true)
            if not j then
                -- The string goes on: keep a top-level one's bytes (bounded)
                -- and how many backslashes end the chunk (an odd run
                -- escapes the quote that may start the next one).
                if g.kb and #g.kb <= GUARD_KEY_MAX then g.kb = g.kb .. sub(s, i) end
                local k = n
                while k >= i and byte(s, k) == 92 do k = k - 1 end
                if k < i then g.bs = g.bs + (n - i + 1) else g.bs = n - k end
                break
            end
            local k = j - 1
            while k >= i and byte(s, k) == 92 do k = k - 1 end
            local nb = j - 1 - k
            if k < i then nb = nb + g.bs end
            g.bs = 0
            if nb % 2 == 1 then
                -- An escaped quote: still in the string.
                if g.kb and #g.kb <= GUARD_KEY_MAX then g.kb = g.kb .. sub(s, i, j) end
                i = j + 1
            else
                if g.kb then
                    -- A string at the top level ended: a key if a colon follows.
                    g.cand = g.kb .. sub(s, i, j - 1)
                    g.kb = nil
                end
                instr = false
                i = j + 1
            end
        else
            if g.cand then
                local k = find(s, '[^ \t\r\n]', i)
                if not k then break end
                if byte(s, k) == 58 then   -- ':'
                    local key = g.cand
                    if #key > GUARD_KEY_MAX then
                        return "request body has a top-level key longer than " ..
                            GUARD_KEY_MAX .. " bytes"
                    end
                    -- Plain lowercase names only, as the agent requires: a
                    -- provider folding case or Unicode would read "Model"
                    -- as "model"; an escape would need decoding.
                    if not find(key, "^[a-z0-9_]+$") then
                        return "request body has a top-level key that is not a plain " ..
                            "lowercase name (a-z 0-9 _, no escape)"
                    end
                    if g.keys[key] then
                        return "request body has a duplicate top-level key"
                    end
                    g.nkeys = g.nkeys + 1
                    if g.nkeys > GUARD_KEYS_MAX then
                        return "request body has more than " .. GUARD_KEYS_MAX ..
                            " top-level keys"
                    end
                    g.keys[key] = true
                end
                g.cand = nil
                i = k
            end
            local j = find(s, '[][{}"]', i)
            if not j then break end
            local c = byte(s, j)
            if c == 34 then
                instr = true
                if depth == 1 then g.kb = "" end
            elseif c == 123 or c == 91 then
                depth = depth + 1
            else
                depth = depth - 1
            end
            i = j + 1
        end
    end
    g.depth, g.instr = depth, instr
    return nil
end

local function guard_new(max)
    return { depth = 0, instr = false, bs = 0, kb = nil, cand = nil, keys = {}, nkeys = 0,
             seen = 0, max = max }
end

-- The request's headers, after the http-request rules (the agent's
-- verdict is known): whether the body is to be scanned.
local function guard_headers(f, txn)
    if txn:get_var("txn.realms.verdict") ~= "allow" or txn:get_var("txn.realms.whole") then
        return false
    end
    f.g = guard_new(tonumber(txn:get_var("txn.realms.body_max")) or 0)
    return true
end

-- Scans the first n bytes of this call's input, the ones that leave now,
-- or stops the request (a Lua error, above). shrunk: how many bytes
-- shorter than the client's they are (a model name spliced in them).
local function guard_payload(f, txn, msg, n, shrunk)
    local g = f.g
    if n == 0 then return end
    local data = msg:body(0, n)
    if not data then return end
    g.seen = g.seen + #data + shrunk
    local why
    if g.max > 0 and g.seen > g.max then
        why = "request body is larger than the " .. g.max .. " bytes this gateway accepts"
    else
        why = guard_scan(g, data)
    end
    if why then
        f.g = nil
        txn:set_var("txn.realms_body_err", why)
        error("realms-guard: request " .. tostring(txn:get_var("txn.realms_rid")) ..
            " refused: " .. why, 0)
    end
end

-- For tests outside HAProxy (tests/lua/test_guard.lua): the
-- scanner alone, when the loader asks for it.
if core.realms_export then
    core.realms_export.guard_new = guard_new
    core.realms_export.guard_scan = guard_scan
end

-- tap: on fe_realms, copies every billable response to the agent's mirror
-- listener, without ever delaying or altering what the client receives.
--
-- Filter callbacks cannot yield, so they only append to a per-thread table;
-- a per-thread task (core.register_task) drains it over core.tcp().
--
-- Wire format: agent/include/realms/mframe.h is normative (docs/architecture.md,
-- "Wire format", repeats it). Frames one after another, each a header line
-- then exactly <n> payload bytes; meta payloads are "key=value\n" lines:
--     "B <rid> <n>\n"     meta: status ctype token token_id group model server
--                         ts_ms ttfb_ms req_bytes
--     "D <rid> <n>\n"     body bytes, as forwarded to the client
--     "G <rid> <n>\n"     meta: skipped
--     "E <rid> <n>\n"     meta: reason duration_ms lost
--     "O <server> <n>\n"  meta: status retry_after rid   (the outcome part)
--     "X <rid> <n>\n"     meta: token group           (admitted, no answer)
--     "S <seq>\n"         sync, no payload
-- From the agent: "A <rid>\n" once the record is durable, "S <seq>\n" echoing
-- each sync. Limits (any breach closes the connection): rid 1-63 bytes of
-- [A-Za-z0-9._:-]; server 1-130 bytes of [A-Za-z0-9._-]; seq 1-20 digits;
-- meta payload <= 8192; D <= 64 MB; header line <= 160; at most 16384
-- requests open (B without E) per connection.
-- A request is kept until acknowledged; when the connection drops (agent restart), every unacknowledged request is sent
-- again from its start, and the agent's per-request idempotency makes the
-- repeat harmless.
--
-- Event streams are not copied whole: usage sits in message_start (the
-- first event) and in the last message_delta (with the end states:
-- message_stop, or an error event), while the content deltas between them
-- are most of the bytes (the agent measures the ones it gets, to estimate
-- what a stream cut before its usage delivered). So the tap sends
-- the first TAP_HEAD bytes of a stream as they come and holds a window of
-- its last TAP_TAIL bytes (whole chunks, dropping the oldest, the first
-- one cut at the end); if anything was dropped, the end of the response
-- sends one "G" frame (skipped=<n>) and then the window. The agent's SSE
-- parser resumes at the next event after a gap. A 200 KB stream costs
-- 16 KB of copying, a 5 KB one all of it. JSON answers are copied whole
-- (their usage object comes last, and the agent parses the document).
--
-- Memory is bounded per thread (TAP_MAX_BYTES). Past it, new body bytes are
-- dropped, the request is flagged lost=1 in its E frame (the agent records
-- it as partial, reason tap_overflow) and a warning is logged.

local TAP_MAX_BYTES = 64 * 1024 * 1024   -- per HAProxy thread
local TAP_HEAD = 8 * 1024                -- event streams: first bytes sent
local TAP_TAIL = 8 * 1024                -- and at least the last ones
local TAP_BATCH = 256 * 1024            -- bytes per socket send
local TAP_IDLE_MS = 20                   -- task sleep when idle
-- After a round that sent frames, the next wait for acknowledgements is
-- this short, doubling up to TAP_IDLE_MS while nothing new comes: under a
-- steady flow the agent gets a request or two at a time, not everything
-- that gathered in TAP_IDLE_MS at once (a burst of parsing and billing
-- that kept the gateway's own processes from a core: time to first byte
-- at p99, docs/benchmarks.md).
local TAP_ACK_MS = 2
local TAP_RETRY_MS = 500                 -- reconnect back-off
-- An idle connection is closed after this long: HAProxy's soft stop waits
-- for every stream, Lua sockets included, so a connection kept open would
-- keep an old worker alive for ever after a reload.
local TAP_IDLE_CLOSE_MS = 1000

local TAP_OUTCOMES_MAX = 4096            -- attempt results kept per thread
local TAP_RESENDS_MAX = 50               -- connections a request may be resent on

local tap = {
    outcomes = {},    -- "O" and "X" frames not yet sent (never acknowledged)
    reqs = {},        -- requests not yet acknowledged, in arrival order
    by_rid = {},
    nacked = 0,       -- acknowledged, still to be removed from reqs
    bytes = 0,        -- bytes held for them
    dropped = 0,      -- body bytes given up (memory bound)
    warned = false,
}

-- HAProxy's internal clock, for durations: both ends of one are read from
-- it (the request's start when its headers pass the tap), never mixed with
-- date(), which is the record's wall-clock timestamp only.
local function now_ms()
    local t = core.now()
    return t.sec * 1000 + math.floor(t.usec / 1000)
end

local function frame(kind, rid, payload)
    return kind .. " " .. rid .. " " .. #payload .. "\n" .. payload
end

-- Meta values come partly from the upstream (Content-Type): each is cut to
-- TAP_META_VALUE_MAX bytes with control characters replaced, so no answer
-- can make a frame the agent must refuse (which would close the mirror
-- connection on every resend, and stop billing for everyone).
local TAP_META_VALUE_MAX = 256

local function meta(t)
    local out = {}
    for k, v in pairs(t) do
        v = tostring(v):gsub("%c", " ")
        if #v > TAP_META_VALUE_MAX then v = v:sub(1, TAP_META_VALUE_MAX) end
        out[#out + 1] = k .. "=" .. v .. "\n"
    end
    return table.concat(out)
end

-- What is held for a request, in order (r.frames): whole frames (B, G and
-- E strings) and runs of body bytes. A run is a table { header, chunk,
-- chunk, ..., n = the chunks' bytes }: the chunks as HAProxy gave them,
-- never copied here; its "D <rid> <n>\n" header is written when it
-- closes: when the task is about to send it, when another frame follows,
-- or at TAP_RUN_MAX bytes. So an answer costs one D frame per send round
-- rather than a string built for every chunk (the agent reads
-- consecutive D frames as one body); the task's send buffer is the only
-- copy.
local TAP_RUN_MAX = TAP_BATCH

local function run_close(r)
    local d = r.run
    if d then
        d[1] = "D " .. r.rid .. " " .. d.n .. "\n"
        tap.bytes = tap.bytes + #d[1]
        r.run = nil
    end
end

-- The bytes held for an entry of r.frames.
local function held(f)
    if type(f) == "string" then return #f end
    return f.n + (f[1] and #f[1] or 0)
end

local function hold(r, f)
    run_close(r)
    r.frames[#r.frames + 1] = f
    tap.bytes = tap.bytes + #f
end

local function hold_data(r, data)
    local d = r.run
    if not d then
        d = { false, n = 0 }
        r.frames[#r.frames + 1] = d
        r.run = d
    end
    d[#d + 1] = data
    d.n = d.n + #data
    tap.bytes = tap.bytes + #data
    if d.n >= TAP_RUN_MAX then run_close(r) end
end

-- sse: whether the answer is an event stream (its middle may be left out).
local function tap_begin(rid, m, sse)
    if tap.by_rid[rid] then
        return nil    -- same id twice on this thread: keep the first
    end
    local r = { rid = rid, frames = {}, sent = 0, lost = false }
    if sse then
        r.head = 0
        r.tail = { first = 1, last = 0, len = 0 }
        r.skipped = 0
    end
    hold(r, frame("B", rid, meta(m)))
    tap.reqs[#tap.reqs + 1] = r
    tap.by_rid[rid] = r
    return r
end

-- An event stream past its head: the chunk joins the tail window, and
-- the oldest chunks leave it while the rest still holds TAP_TAIL bytes.
local function tail_add(r, data)
    local t = r.tail
    t.last = t.last + 1
    t[t.last] = data
    t.len = t.len + #data
    tap.bytes = tap.bytes + #data
    while t.len - #t[t.first] >= TAP_TAIL do
        local d = t[t.first]
        t[t.first] = nil
        t.first = t.first + 1
        t.len = t.len - #d
        tap.bytes = tap.bytes - #d
        r.skipped = r.skipped + #d
    end
end

local function tap_data(r, data)
    -- Given up (tap_task) while its answer still streams: nothing is held
    -- for it any more.
    if r.acked then
        return
    end
    if tap.bytes + #data > TAP_MAX_BYTES then
        r.lost = true
        tap.dropped = tap.dropped + #data
        if not tap.warned then
            core.Warning("realms-tap: mirror buffer full (" .. TAP_MAX_BYTES ..
                " bytes on this thread); usage of some requests will be partial")
            tap.warned = true
        end
        return
    end
    if r.tail then
        -- An event stream: what is past its head joins the tail window.
        local room = TAP_HEAD - r.head
        if room <= 0 then
            return tail_add(r, data)
        elseif #data > room then
            r.head = TAP_HEAD
            hold_data(r, data:sub(1, room))
            return tail_add(r, data:sub(room + 1))
        end
        r.head = r.head + #data
    end
    hold_data(r, data)
end

local function tap_end(r, reason, m)
    local t = r.tail
    if t then
        -- The window holds whole chunks (no copy per chunk); its first one
        -- is cut once, here, so that TAP_TAIL bytes are sent.
        if t.len > TAP_TAIL then
            local cut = t.len - TAP_TAIL
            tap.bytes = tap.bytes - cut
            t[t.first] = t[t.first]:sub(cut + 1)
            t.len = TAP_TAIL
            r.skipped = r.skipped + cut
        end
        if r.skipped > 0 then
            hold(r, frame("G", r.rid, "skipped=" .. r.skipped .. "\n"))
        end
        for i = t.first, t.last do
            tap.bytes = tap.bytes - #t[i]
            hold_data(r, t[i])
        end
        r.tail = nil
    end
    m.reason = reason
    if r.lost then m.lost = 1 end
    hold(r, frame("E", r.rid, meta(m)))
    r.ended = true
end

-- The result of one attempt on a credential, for the agent's breakers.
-- Best effort: kept (bounded) until sent, never resent.
local function tap_outcome(server, rid, status, retry_after)
    if #tap.outcomes >= TAP_OUTCOMES_MAX then return end
    local m = "status=" .. status .. "\n"
    if rid then m = m .. "rid=" .. rid .. "\n" end
    if retry_after then m = m .. "retry_after=" .. retry_after .. "\n" end
    tap.outcomes[#tap.outcomes + 1] = frame("O", server, m)
end

-- A request admitted under limits that ended without an answer the tap
-- saw: no record will settle it, so the agent releases its reservation and
-- in-flight slot at once instead of at their lease's end. Best effort, like
-- the outcomes (an X lost with its connection leaves the lease to do it).
local function tap_release(rid, token, group)
    if #tap.outcomes >= TAP_OUTCOMES_MAX then return end
    tap.outcomes[#tap.outcomes + 1] = frame("X", rid, meta({ token = token, group = group }))
end

-- An acknowledged request leaves by_rid at once and tap.reqs at the next
-- round of the task (tap_compact): one pass per round, not one per ack.
local function tap_ack(rid)
    local r = tap.by_rid[rid]
    if not r or not r.ended then return end
    tap.by_rid[rid] = nil
    for _, f in ipairs(r.frames) do tap.bytes = tap.bytes - held(f) end
    r.frames = nil
    r.run = nil
    r.acked = true
    tap.nacked = tap.nacked + 1
    if tap.bytes < TAP_MAX_BYTES / 2 then tap.warned = false end
end

local function tap_compact()
    local keep = {}
    for _, r in ipairs(tap.reqs) do
        if not r.acked then keep[#keep + 1] = r end
    end
    tap.reqs = keep
    tap.nacked = 0
end

-- The task: connect, send what is pending, collect acknowledgements.
--
-- HAProxy's Lua sockets abort the connection when a read times out, so
-- the task never polls: every round ends with a sync frame "S <seq>\n",
-- which the agent echoes after whatever acknowledgements it has ready;
-- reading lines up to that echo collects them. A read that takes longer
-- than TAP_READ_TIMEOUT_S means the agent is stuck: reconnect, resend.
local TAP_READ_TIMEOUT_S = 30

-- The agent's mirror listener: a unix socket path (the agent checks that
-- the peer is HAProxy's user), or host:port when the agent allows TCP.
-- Without it nothing is queued (the filter stays out of the way) and the
-- task is not started.
local TAP_ADDR = os.getenv("REALMS_MIRROR") or ""
local TAP_HOST, TAP_PORT = TAP_ADDR:match("^%[?([^%]]+)%]?:(%d+)$")
if TAP_ADDR:find("^/") then
    TAP_HOST, TAP_PORT = "unix@" .. TAP_ADDR, nil
elseif TAP_ADDR:find("^unix@/") or TAP_ADDR:find("^unix:/") then
    TAP_HOST, TAP_PORT = "unix@" .. TAP_ADDR:sub(6), nil
end
if TAP_ADDR == "" then
    core.Warning("realms-tap: REALMS_MIRROR is not set; usage is not recorded")
elseif not TAP_HOST then
    core.Alert("realms-tap: REALMS_MIRROR must be a socket path or host:port, not '" ..
        TAP_ADDR .. "'; usage is not recorded")
end

-- A new connection starts every request over. A request that was already
-- sent whole TAP_RESENDS_MAX times without an acknowledgement is one the
-- agent cannot take: it is given up, loudly, rather than cut every
-- connection.
local function tap_restart()
    for _, r in ipairs(tap.reqs) do
        if r.sent > 0 then r.resends = (r.resends or 0) + 1 end
        r.sent = 0
        if r.resends and r.resends > TAP_RESENDS_MAX and not r.acked then
            core.Alert("realms-tap: request " .. r.rid .. " refused by the agent " ..
                TAP_RESENDS_MAX .. " times; its usage is not recorded")
            r.ended = true
            tap_ack(r.rid)
        end
    end
end

-- One send round: the attempt results, then what each request has not
-- sent yet, in arrival order, until TAP_BATCH bytes (a run or a frame may
-- go past it; a run is never split, so no other frame lands inside its
-- payload). Returns the pieces (a list of strings) and their size.
local function tap_batch()
    local batch, size = {}, 0
    -- Attempt results first: breakers want them early.
    local outcomes = tap.outcomes
    if #outcomes > 0 then
        tap.outcomes = {}
        batch[1] = table.concat(outcomes)
        size = #batch[1]
    end
    for _, r in ipairs(tap.reqs) do
        while r.sent < #r.frames and size < TAP_BATCH do
            r.sent = r.sent + 1
            local f = r.frames[r.sent]
            if type(f) == "string" then
                batch[#batch + 1] = f
                size = size + #f
            else
                -- A run: its header, then its chunks.
                if f == r.run then run_close(r) end
                table.move(f, 1, #f, #batch + 1, batch)
                size = size + #f[1] + f.n
            end
        end
        if size >= TAP_BATCH then break end
    end
    return batch, size
end

local function tap_task()
    local host, port = TAP_HOST, TAP_PORT
    local sock
    local seq = 0
    local busy_at = now_ms()
    local wait_ms = TAP_ACK_MS
    while true do
        if tap.nacked > 0 then tap_compact() end
        if #tap.reqs == 0 and #tap.outcomes == 0 then
            if sock and now_ms() - busy_at >= TAP_IDLE_CLOSE_MS then
                sock:close()
                sock = nil
            end
            core.msleep(TAP_IDLE_MS)
        elseif not sock then
            busy_at = now_ms()
            sock = core.tcp()
            local ok
            if port then ok = sock:connect(host, tonumber(port)) else ok = sock:connect(host) end
            if ok then
                sock:settimeout(TAP_READ_TIMEOUT_S)
                tap_restart()
            else
                sock:close()
                sock = nil
                core.msleep(TAP_RETRY_MS)
            end
        else
            busy_at = now_ms()
            local batch, size = tap_batch()
            if size == 0 then
                -- Only acknowledgements are awaited: let them gather, a
                -- little longer each round nothing new comes.
                core.msleep(wait_ms)
                wait_ms = math.min(wait_ms * 2, TAP_IDLE_MS)
            else
                wait_ms = TAP_ACK_MS
            end
            seq = seq + 1
            batch[#batch + 1] = "S " .. seq .. "\n"
            local ok = sock:send(table.concat(batch)) ~= nil
            while ok do
                local line = sock:receive("*l")
                if not line then
                    ok = false
                elseif line == "S " .. seq then
                    break
                else
                    local rid = line:match("^A (%S+)$")
                    if rid then tap_ack(rid) end
                end
            end
            if not ok then
                sock:close()
                sock = nil
                core.msleep(TAP_RETRY_MS)
            end
        end
    end
end

-- For tests outside HAProxy (tests/lua/test_tap.lua): the tap's state and
-- the steps that make its frames, when the loader asks for them.
if core.realms_export then
    local e = core.realms_export
    e.tap, e.tap_begin, e.tap_data, e.tap_end = tap, tap_begin, tap_data, tap_end
    e.tap_ack, e.tap_compact, e.tap_restart, e.tap_batch = tap_ack, tap_compact, tap_restart,
        tap_batch
    e.TAP_HEAD, e.TAP_TAIL, e.TAP_RUN_MAX, e.TAP_RESENDS_MAX = TAP_HEAD, TAP_TAIL, TAP_RUN_MAX,
        TAP_RESENDS_MAX
end

-- A runtime error must not end the task (billing would silently stop):
-- log it and start over.
if TAP_HOST then core.register_task(function()
    while true do
        local ok, err = pcall(tap_task)
        if not ok then
            core.Alert("realms-tap: " .. tostring(err) .. "; restarting the mirror task")
            core.msleep(TAP_RETRY_MS)
        end
    end
end) end

-- The response's headers and status, read once per callback for the tap
-- and the outcome (kept in f.hd and f.st; http_headers clears f.hd). An upstream
-- 429/529 travels as 425 between the relay and fe_realms (so that HAProxy
-- retries it), the real status alongside: the real one is kept.
local function resp_head(f, msg)
    if not f.hd then
        local hdrs = msg:get_headers()
        local code = tonumber(msg:get_stline().code) or 0
        local orig = hdrs["x-realms-orig-status"] and tonumber(hdrs["x-realms-orig-status"][0])
        if code == 425 and orig then code = orig end
        f.hd, f.st = hdrs, code
    end
    return f.hd, f.st
end

-- The response's headers: only billable requests (txn.realms_bill, set by
-- fe_realms for allowed /v1/messages) are mirrored. Returns whether the
-- body is to be copied (f.r then holds the request's copy).
local function tap_headers(f, txn, msg)
    if f.r then
        return false
    end
    local rid = txn:get_var("txn.realms_rid")
    if not txn:get_var("txn.realms_bill") or not rid then
        return false
    end
    local hdrs, status = resp_head(f, msg)
    local ct = hdrs["content-type"] and hdrs["content-type"][0] or ""
    local now = now_ms()
    f.t0 = f.t0 or now
    f.r = tap_begin(rid, {
        status = status,
        ctype = ct,
        token = txn:get_var("txn.realms.token") or "",
        token_id = txn:get_var("txn.realms.token_id") or "",
        group = txn:get_var("txn.realms.group") or "",
        model = txn:get_var("txn.realms.model") or "",
        server = txn:get_var("txn.realms_srv") or "",
        ts_ms = tonumber(txn:get_var("txn.realms_t0")) or now,
        ttfb_ms = math.max(0, now - f.t0),
        req_bytes = tonumber(txn:get_var("txn.realms_req_bytes")) or 0,
    }, ct:lower():find("^%s*text/event%-stream") ~= nil)
    return f.r ~= nil
end

-- A call's response bytes: all of them leave.
local function tap_payload(r, msg)
    local n = msg:input()
    if n > 0 then
        -- body() with no argument: every incoming byte of this call. It can
        -- be nil when the input holds no data block (only the end of the
        -- message), which is nothing to mirror.
        local data = msg:body()
        if data and #data > 0 then
            tap_data(r, data)
        end
    end
    return n
end

-- The end of a channel's analysis (resp: which one).
local function tap_end_analyze(f, txn, resp)
    if resp and f.r and not f.r.ended then
        tap_end(f.r, "aborted", { duration_ms = math.max(0, now_ms() - f.t0) })
    end
    -- HTTP keeps both channels' analysis open until the transaction ends,
    -- so no answer has reached the tap here only when none ever will
    -- (an error HAProxy answered itself, a client gone before the headers).
    if not f.r and not f.released and txn:get_var("txn.realms.held") then
        f.released = true
        local rid = txn:get_var("txn.realms_rid")
        local token = txn:get_var("txn.realms.token")
        if rid and token and #rid <= 63 and rid:find("^[%w._:-]+$") then
            tap_release(rid, token, txn:get_var("txn.realms.group") or "")
        end
    end
end

-- Once the answer's headers passed (the outcome is reported then), the
-- stream's last callbacks (http_end, end_analyze) have work left only for
-- the tap: an answer still passing through it, or none (the release of a
-- request whose answer is not billed). Otherwise the instance turns them
-- off: HAProxy (2.6 as 3.0) looks a callback up on the instance and skips
-- one that is not a function before it builds the callback's txn object
-- (a dozen tables), so an answer costs three Lua calls fewer on fe_realms
-- and two on fe_relay (docs/benchmarks.md, "Lua filters").
local function ends_off(f)
    if not (f.with_tap and not (f.r and f.r.ended)) then
        f.http_end, f.end_analyze = false, false
    end
end

-- The answer passed whole: the end of its message went through the
-- filter (in the last http_payload, or in http_end when it came alone).
-- The callbacks after it have nothing left to do.
local function tap_finish(f)
    tap_end(f.r, "complete", { duration_ms = math.max(0, now_ms() - f.t0) })
    ends_off(f)
end

-- outcome: on fe_realms for the requests sent straight to their channel,
-- on fe_relay for the relay's attempts, reports the result of each
-- attempt (the upstream's status and retry-after, or no response at all)
-- to the agent, which feeds the credential's breaker. Sent over the tap's
-- connection as
--     "O <server> <n>\n" + n bytes of
--     "status=<code>\n[rid=<request id>\n][retry_after=<s>\n]"
-- (status 0: no response: connection failure, timeout, reset). Nothing is
-- delayed or changed.

-- The credential the agent chose for this attempt, and the request id.
local function outcome_server(txn)
    -- Only attempts the agent prepared: a refusal by the relay itself is
    -- not the credential's fault.
    if not txn:get_var("txn.realms.backend") then return nil end
    local srv = txn:get_var("txn.realms.server")
    if srv and #srv <= 130 and srv:find("^[%w._-]+$") then
        local rid = txn:get_var("txn.realms_rid")
        if rid and (#rid > 63 or not rid:find("^[%w._:-]+$")) then rid = nil end
        return srv, rid
    end
    return nil
end

-- The request's headers: the attempt to report, if the agent prepared one
-- (taken: no later filter of the stream reports it again), and whether the
-- request's end is to be watched (the filter's http_end then sets
-- f.req_done). "No response" counts against the
-- credential only when the whole request reached the upstream. A client
-- that leaves mid-upload is not the credential's failure (else any token
-- could open every breaker, for free). A body the agent read whole (SPOE
-- wait-for-body) is all here already and nothing refuses it any more: no
-- need to watch it pass (a data filter costs a Lua call per chunk of
-- every request: 45 us of HAProxy's CPU per request). A body merely
-- buffered whole is not enough: past the agent's prefix the guard may
-- still refuse it, and that refusal is the client's doing.
local function outcome_request(f, txn, msg)
    local srv, rid = outcome_server(txn)
    if not srv then return false end
    txn:unset_var("txn.realms.backend")
    f.oc_srv, f.oc_rid = srv, rid
    if msg:eom() and txn:get_var("txn.realms.whole") then
        f.req_done = true
        return false
    end
    return true
end

-- The response's headers: the attempt's result.
local function outcome_headers(f, msg)
    local srv = f.oc_srv
    if f.sent or not srv then return end
    f.sent = true
    -- After the http-response rules: a 429/529 may travel as 425 already.
    local hdrs, code = resp_head(f, msg)
    local ra = hdrs["retry-after"] and hdrs["retry-after"][0]
    -- delta-seconds only; an HTTP-date falls back to the cooldown
    ra = ra and ra:match("^%s*(%d+)%s*$")
    tap_outcome(srv, f.oc_rid, code, ra and tonumber(ra))
end

local function outcome_end_analyze(f, resp)
    if resp and not f.sent and f.oc_srv then
        -- The response channel ends without headers: no response. Only
        -- the upstream's failure if it had the whole request.
        f.sent = true
        if f.req_done then tap_outcome(f.oc_srv, f.oc_rid, 0) end
    end
end

-- The filter: each callback runs the parts its filter's name stands for,
-- fields of self's metatable (the registration below): with_guard,
-- with_tap, with_rewrite, with_outcome. The parts' state shares the
-- instance: the guard's g, the tap's r t0 released, the rewrite's
-- rw_*, the outcome's oc_srv oc_rid sent req_done watch_end, and the
-- response head both read (hd st).
local Realms = {
    id = "realms",
    flags = filter.FLT_CFG_FL_HTX,
}

-- self: HAProxy's copy of the class for this filter line.
function Realms:new()
    return setmetatable({}, self)
end

function Realms:http_headers(txn, msg)
    local chn = msg.channel
    if chn:is_resp() then
        if self.with_tap and tap_headers(self, txn, msg) then
            filter.register_data_filter(self, chn)
        end
        if self.with_outcome then outcome_headers(self, msg) end
        self.hd = nil
        ends_off(self)
        return filter.CONTINUE
    end
    -- The request: one data filter for every part that reads its body.
    local data = false
    if self.with_guard and guard_headers(self, txn) then data = true end
    if self.with_rewrite and rewrite_headers(self, txn) then data = true end
    if self.with_outcome and outcome_request(self, txn, msg) then
        self.watch_end = true
        data = true
    end
    if self.with_tap and not self.r then self.t0 = now_ms() end
    if data then filter.register_data_filter(self, chn) end
    return filter.CONTINUE
end

-- A data filter must say how much to forward (HAProxy 2.6 reads a missing
-- callback's leftovers as "nothing"). Only the tap reads the response.
-- Of the request, the rewrite says how much leaves (it holds back a model
-- token not yet whole), and the guard scans exactly those bytes, as they
-- leave: each byte once, the model name as the upstream gets it.
function Realms:http_payload(txn, msg)
    if msg.channel:is_resp() then
        local r = self.r
        if not r or r.ended then return msg:input() end
        local n = tap_payload(r, msg)
        -- The answer's last bytes: its record ends here. (eom() is the
        -- message's: a data filter declared before this one that held
        -- bytes back would end the record early; realms.cfg says to keep
        -- this filter first.)
        if msg:eom() then tap_finish(self) end
        return n
    end
    local n, shrunk = nil, 0
    if self.rw_new then
        local grow = #self.rw_new - self.rw_len
        n = rewrite_payload(self, txn, msg)
        if not self.rw_new then shrunk = -grow end
    else
        n = msg:input()
    end
    if self.g then guard_payload(self, txn, msg, n, shrunk) end
    -- Nothing more to do on this body once spliced, unless it is scanned
    -- or its end is watched.
    if not self.rw_new and not self.g and not self.watch_end then
        filter.unregister_data_filter(self, msg.channel)
    end
    return n
end

-- Called for data filters only: the tap's response (when its end came
-- after its last bytes), or a watched request.
function Realms:http_end(txn, msg)
    if msg.channel:is_resp() then
        if self.r and not self.r.ended then tap_finish(self) end
    else
        self.req_done = true
    end
    return filter.CONTINUE
end

function Realms:end_analyze(txn, chn)
    local resp = chn:is_resp()
    if self.with_tap then tap_end_analyze(self, txn, resp) end
    if self.with_outcome then outcome_end_analyze(self, resp) end
    return filter.CONTINUE
end

-- The filters HAProxy knows: "realms-" and the names of the parts each
-- runs, joined by "-" in this order, for every set of parts. As shipped:
-- realms-guard-tap-rewrite-outcome (fe_realms), realms-rewrite-outcome
-- (fe_relay); the others are the names of configurations written before
-- (realms-guard-tap, realms-rewrite-outcome on up_<channel>, each part
-- alone) and of the benchmarks' variants. A name, not arguments of the
-- filter line: a misspelled name fails "haproxy -c" (realmsctl apply runs
-- it before a reload), while arguments reach Lua only once the threads
-- start.
local PARTS = { "guard", "tap", "rewrite", "outcome" }

for set = 1, (1 << #PARTS) - 1 do
    local name, parts = "realms", {}
    for i, part in ipairs(PARTS) do
        if set & (1 << (i - 1)) ~= 0 then
            name = name .. "-" .. part
            parts[#parts + 1] = part
        end
    end
    -- c: HAProxy's copy of the class for one filter line, what
    -- Realms:new() gets as self. Without the mirror the tap and the
    -- outcome have nothing to do.
    core.register_filter(name, Realms, function(c, args)
        for _, part in ipairs(parts) do
            if TAP_HOST or (part ~= "tap" and part ~= "outcome") then
                c["with_" .. part] = true
            end
        end
        c.__index = c
        return c
    end)
end
