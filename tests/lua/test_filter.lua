-- The filter class of lua-shim/realms.lua, driven as HAProxy 2.6 drives it
-- (callbacks, data filters, forwarding what http_payload releases), with
-- stand-ins for the txn, the HTTP message and its buffer:
--   - every set of parts loads under its name, as the configurations use;
--   - one filter runs the guard and the rewrite of a body together: what
--     leaves is the body with the model name spliced in, for every way of
--     cutting it in chunks; the guard still refuses a second top-level key
--     and a body past the limit, counted in the client's bytes;
--   - a splice that does not fit stops the request (an error), never
--     forwards the body unchanged;
--   - two filters of a stream (fe_realms's, and up_<channel>'s of a
--     channel part rendered before) splice once and report once.
--
--     lua5.3 tests/lua/test_filter.lua lua-shim/realms.lua
local shim = assert(arg[1], "usage: test_filter.lua path/to/realms.lua")

local H = dofile((arg[0]:match("^(.*/)") or "./") .. "shim.lua")
local check = H.check

-- The shim with a mirror address (so that the tap and the outcome are on),
-- every filter registration kept.
local registered = {}
local getenv = os.getenv
os.getenv = function(k)
    if k == "REALMS_MIRROR" then return "/nonexistent/mirror.sock" end
    return getenv(k)
end
local X = H.load(shim, function(name, class, init)
    registered[name] = { class = class, init = init }
end)
os.getenv = getenv
function core.now() return { sec = 1000, usec = 0 } end

-- HAProxy's copy of the class for one filter line, then an instance.
local function instance(name)
    local reg = assert(registered[name], name)
    local c = {}
    for k, v in pairs(reg.class) do c[k] = v end
    c = reg.init(c, {})
    return c:new()
end

-- ---- names -----------------------------------------------------------------
local PARTS = { "guard", "tap", "rewrite", "outcome" }
local n = 0
for _ in pairs(registered) do n = n + 1 end
check(n == 15, "every set of parts is a filter (15), got " .. n)
for _, name in ipairs({ "realms-guard-tap-rewrite-outcome", "realms-rewrite-outcome",
    "realms-guard-tap", "realms-guard", "realms-tap", "realms-rewrite", "realms-outcome",
    "realms-guard-rewrite-outcome" }) do
    local f = registered[name] and instance(name)
    check(f ~= nil, name .. " is registered")
    if f then
        for _, part in ipairs(PARTS) do
            local want = name:find("-" .. part, 1, true) ~= nil
            check((f["with_" .. part] == true) == want, name .. ": with_" .. part)
        end
    end
end
check(registered["realms-tap-guard"] == nil, "parts in another order are not a name")

-- ---- stand-ins ---------------------------------------------------------------
local function new_txn(vars)
    local t = { vars = vars }
    function t:get_var(k) return self.vars[k] end
    function t:set_var(k, v) self.vars[k] = v end
    function t:unset_var(k) self.vars[k] = nil end
    return t
end

-- A request message whose buffer holds `input` (bytes not yet forwarded).
local function new_msg(resp)
    local m = { input_buf = "", eom_flag = false, setfail = false }
    m.channel = { is_resp = function() return resp end }
    function m:input() return #self.input_buf end
    function m:body(off, len)
        if #self.input_buf == 0 then return nil end
        off, len = off or 0, len or #self.input_buf
        return self.input_buf:sub(off + 1, off + len)
    end
    function m:set(s, off, len)
        if self.setfail then return -1 end
        self.input_buf = self.input_buf:sub(1, off) .. s .. self.input_buf:sub(off + len + 1)
        return #s
    end
    function m:eom() return self.eom_flag end
    return m
end

-- A callback as HAProxy (2.6, 3.0) makes it: looked up on the instance,
-- and skipped unless it is a function there. Returns whether it ran.
local function cb(f, name, txn, arg)
    if type(f[name]) ~= "function" then return false end
    f[name](f, txn, arg)
    return true
end

filter.register_data_filter = function(f) f._data = true end
filter.unregister_data_filter = function(f) f._data = false end

-- Sends body through the filters fs (in the stream's order) in chunks
-- whose sizes come from sizes(): every data filter sees the input not yet
-- forwarded, and what leaves is the least any of them releases (what is
-- held comes back in the next call). Returns what left, or nil and the
-- error.
local function run(fs, txn, body, sizes)
    local msg = new_msg(false)
    msg.eom_flag = false
    for _, f in ipairs(fs) do f:http_headers(txn, msg) end
    local out, p = {}, 1
    local guard = 0
    while (p <= #body or #msg.input_buf > 0) and guard < 100000 do
        guard = guard + 1
        if p <= #body then
            local k = sizes()
            msg.input_buf = msg.input_buf .. body:sub(p, p + k - 1)
            p = p + k
        end
        -- (a splice changes the input's length: the count is taken after)
        local release = math.huge
        for _, f in ipairs(fs) do
            if f._data then
                local ok, r = pcall(f.http_payload, f, txn, msg)
                if not ok then return nil, r end
                if r < release then release = r end
            end
        end
        release = math.min(release, #msg.input_buf)
        out[#out + 1] = msg.input_buf:sub(1, release)
        msg.input_buf = msg.input_buf:sub(release + 1)
        if release == 0 and p > #body then return nil, "stuck" end
    end
    return table.concat(out)
end

local function vars_for(body, new, extra)
    local off = body:find('"claude-x"', 1, true) - 1
    local v = {
        ["txn.realms.verdict"] = "allow",
        ["txn.realms.body_max"] = 0,
        ["txn.realms.model_new"] = new,
        ["txn.realms.model_off"] = off,
        ["txn.realms.model_len"] = #'"claude-x"',
        ["txn.realms_rid"] = "req_1",
    }
    for k, x in pairs(extra or {}) do v[k] = x end
    return v
end

local function splitter(kind)
    if kind == 1 then return function() return 1 end end
    if kind == 2 then return function() return math.random(1, 7) end end
    if kind == 3 then return function() return math.random(1, 300) end end
    return function() return 1 << 20 end
end

math.randomseed(tonumber(os.getenv("TEST_SEED") or "") or 20261206)

-- ---- guard and rewrite in one filter ---------------------------------------
local pad = string.rep("x", 700)
local body = '{"model":"claude-x","max_tokens":10,"messages":[{"role":"user","content":"' ..
    pad .. '"}],"stream":true}'
for _, new in ipairs({ '"claude-sonnet-4-5-20250929"', '"m"', '"claude-y"' }) do
    local want = body:gsub('"claude%-x"', new, 1)
    for kind = 1, 4 do
        for _ = 1, 5 do
            local f = instance("realms-guard-tap-rewrite-outcome")
            local txn = new_txn(vars_for(body, new))
            local out, err = run({ f }, txn, body, splitter(kind))
            check(out == want, ("guard+rewrite %s, chunks %d: the body leaves spliced (%s)")
                :format(new, kind, tostring(err)))
            -- each byte scanned once as it left, counted in the client's bytes
            check(f.g and f.g.seen == #body, ("chunks %d: the guard counted %s bytes of %d")
                :format(kind, tostring(f.g and f.g.seen), #body))
            check(txn.vars["txn.realms.model_new"] == nil, "the instruction is taken")
        end
    end
end

-- the guard still refuses a second "model" past the splice
local dup = body:gsub('"stream":true', '"stream":true,"model":"claude-opus"', 1)
for kind = 1, 4 do
    local f = instance("realms-guard-tap-rewrite-outcome")
    local txn = new_txn(vars_for(dup, '"claude-sonnet-4-5-20250929"'))
    local out, err = run({ f }, txn, dup, splitter(kind))
    check(out == nil and tostring(err):find("duplicate top%-level key") ~= nil,
        ("chunks %d: a second model key stops the request (%s)"):format(kind, tostring(err)))
    check(txn.vars["txn.realms_body_err"] == "request body has a duplicate top-level key",
        "and says why")
end

-- the size limit counts the client's bytes, not the rewritten ones
for _, new in ipairs({ '"claude-sonnet-4-5-20250929"', '"m"' }) do
    for _, d in ipairs({ 0, -1 }) do
        local f = instance("realms-guard-tap-rewrite-outcome")
        local txn = new_txn(vars_for(body, new, { ["txn.realms.body_max"] = #body + d }))
        local out, err = run({ f }, txn, body, splitter(3))
        if d == 0 then
            check(out ~= nil, ("a body of exactly the limit passes, rewritten to %d bytes (%s)")
                :format(#new, tostring(err)))
        else
            check(out == nil and tostring(err):find("larger than") ~= nil,
                ("a body one byte past the limit is refused, rewritten to %d bytes"):format(#new))
        end
    end
end

-- a splice that does not fit stops the request
do
    local f = instance("realms-rewrite-outcome")
    local txn = new_txn(vars_for(body, '"claude-sonnet-4-5-20250929"'))
    local msg = new_msg(false)
    f:http_headers(txn, msg)
    msg.input_buf = body
    msg.setfail = true
    local ok, err = pcall(f.http_payload, f, txn, msg)
    check(not ok and tostring(err):find("could not rewrite") ~= nil,
        "a failed splice is an error, not a -1 (" .. tostring(err) .. ")")
    check(txn.vars["txn.realms_body_err"] ~= nil, "and says why")
end

-- ---- two filters of a stream: one splice, one report -------------------------
do
    local fe = instance("realms-guard-tap-rewrite-outcome")
    local be = instance("realms-rewrite-outcome")
    local txn = new_txn(vars_for(body, '"claude-y"', {
        ["txn.realms.backend"] = "up_a", ["txn.realms.server"] = "a--k1",
        ["txn.realms.whole"] = 1 }))
    local out, err = run({ fe, be }, txn, body, splitter(2))
    check(out == body:gsub('"claude%-x"', '"claude-y"', 1),
        "fe_realms's filter and an older up_<channel> filter splice once (" ..
        tostring(err) .. ")")
    check(fe.oc_srv == "a--k1" and be.oc_srv == nil, "the first filter takes the attempt")
    check(not be._data and be.rw_new == nil, "the second filter has nothing to splice")
    local before = #X.tap.outcomes
    local res = new_msg(true)
    res.get_headers = function() return { ["retry-after"] = { [0] = "7" } } end
    res.get_stline = function() return { code = "429" } end
    fe:http_headers(txn, res)
    check(fe.hd == nil, "no response headers kept past their callback")
    be:http_headers(txn, res)
    cb(fe, "end_analyze", txn, res.channel)
    cb(be, "end_analyze", txn, res.channel)
    check(#X.tap.outcomes == before + 1, "one outcome for the attempt, not two")
    local o = X.tap.outcomes[#X.tap.outcomes] or ""
    check(o:find("^O a%-%-k1 ") and o:find("status=429\n", 1, true) and
        o:find("retry_after=7\n", 1, true) and o:find("rid=req_1\n", 1, true),
        "the outcome names the server, status, request and retry-after: " .. o)
end

-- no response at all: reported once, and only if the whole request left
for _, whole in ipairs({ true, false }) do
    local f = instance("realms-guard-tap-rewrite-outcome")
    local txn = new_txn({ ["txn.realms.backend"] = "up_a", ["txn.realms.server"] = "a--k1",
        ["txn.realms.whole"] = whole and 1 or nil, ["txn.realms_rid"] = "req_2" })
    local msg = new_msg(false)
    msg.eom_flag = true
    f:http_headers(txn, msg)
    local before = #X.tap.outcomes
    check(cb(f, "end_analyze", txn, { is_resp = function() return false end }) and
        cb(f, "end_analyze", txn, { is_resp = function() return true end }),
        "no answer: the ends are still called")
    local o = X.tap.outcomes[#X.tap.outcomes]
    if whole then
        check(#X.tap.outcomes == before + 1 and o:find("status=0\n", 1, true),
            "no response to a whole request: status 0")
    else
        check(#X.tap.outcomes == before, "no response to a request still watched: nothing")
    end
end

-- given the pool's verdict (the agent names realms_pool and no attempt:
-- no backend, no model_new), fe_realms's filter rewrites and reports
-- nothing
do
    local f = instance("realms-guard-tap-rewrite-outcome")
    local txn = new_txn({ ["txn.realms.verdict"] = "allow", ["txn.realms.whole"] = 1,
        ["txn.realms.pool"] = "realms_pool", ["txn.realms.server"] = "a--k1" })
    local msg = new_msg(false)
    msg.eom_flag = true
    f:http_headers(txn, msg)
    check(not f._data and f.oc_srv == nil and f.rw_new == nil,
        "the pool's verdict: no data filter, no attempt in fe_realms")
end

-- ---- an answer's end: once, and the callbacks after it turned off -----------
-- The bytes held for a request, frames and runs, as the task would send them.
local function held_text(rid)
    local r = X.tap.by_rid[rid]
    if not r then return "" end
    local out = {}
    for _, f in ipairs(r.frames) do
        if type(f) == "string" then out[#out + 1] = f
        else for i = 2, #f do out[#out + 1] = f[i] end end
    end
    return table.concat(out)
end

local REQ, RES = { is_resp = function() return false end }, { is_resp = function() return true end }

-- A billable answer through fe_realms's filter: its headers, then its body
-- in the given pieces; eom_at: the piece that carries the end of the
-- message (nil: none does). Returns the filter, txn and response message.
local answers = 0
local function answer(pieces, eom_at, extra)
    answers = answers + 1
    local rid = "req_end_" .. answers
    local v = { ["txn.realms_bill"] = 1, ["txn.realms_rid"] = rid, ["txn.realms.token"] = "t",
        ["txn.realms.backend"] = "up_a", ["txn.realms.server"] = "a--k1",
        ["txn.realms.whole"] = 1 }
    for k, x in pairs(extra or {}) do v[k] = x end
    local txn = new_txn(v)
    local f = instance("realms-guard-tap-rewrite-outcome")
    local req = new_msg(false)
    req.eom_flag = true
    cb(f, "http_headers", txn, req)
    local res = new_msg(true)
    res.get_headers = function() return { ["content-type"] = { [0] = "text/event-stream" } } end
    res.get_stline = function() return { code = "200" } end
    cb(f, "http_headers", txn, res)
    for i, p in ipairs(pieces) do
        res.input_buf = p
        res.eom_flag = (i == eom_at)
        if f._data then
            local n = f:http_payload(txn, res)
            check(n == #p, "the tap forwards every byte of a piece")
        end
    end
    return f, txn, res, rid
end

local function count(s, pat)
    local n = 0
    for _ in s:gmatch(pat) do n = n + 1 end
    return n
end

-- the end of the message with the last bytes
do
    local f, txn, res, rid = answer({ "event: a\n\n", "event: b\n\n" }, 2)
    local t = held_text(rid)
    check(count(t, "\nreason=complete\n") == 1 and count(t, "\nE ") + count(t, "^E ") == 1,
        "the last bytes' end of message ends the record, complete: " .. t:gsub("\n", "|"))
    check(t:find("event: a\n\nevent: b\n\n", 1, true) ~= nil, "with both pieces")
    check(not cb(f, "http_end", txn, res) and not cb(f, "end_analyze", txn, REQ) and
        not cb(f, "end_analyze", txn, RES), "http_end and both end_analyze are turned off")
    res.input_buf = "late"
    f:http_payload(txn, res)
    check(held_text(rid) == t, "bytes after the end are not added to the record")
end

-- the end of the message alone, in http_end
do
    local f, txn, res, rid = answer({ "event: a\n\n" }, nil)
    check(not held_text(rid):find("reason=", 1, true), "no end while the message goes on")
    check(type(f.end_analyze) == "function", "end_analyze still on while the answer streams")
    res.input_buf = ""
    check(cb(f, "http_end", txn, res), "http_end is called")
    local t = held_text(rid)
    check(count(t, "reason=complete\n") == 1, "the end in http_end: complete")
    check(not cb(f, "end_analyze", txn, RES), "and end_analyze is turned off then")
end

-- an answer cut short: end_analyze says so
do
    local f, txn, _, rid = answer({ "event: a\n\n" }, nil)
    check(cb(f, "end_analyze", txn, REQ) and cb(f, "end_analyze", txn, RES),
        "a cut answer: both end_analyze called")
    local t = held_text(rid)
    check(count(t, "reason=aborted\n") == 1 and not t:find("reason=complete", 1, true),
        "a cut answer ends aborted, once: " .. t:gsub("\n", "|"))
end

-- an answer not billed, of a request admitted under limits: its release
-- still goes from end_analyze
do
    local before = #X.tap.outcomes
    local f, txn = answer({ "x" }, 1, { ["txn.realms_bill"] = false, ["txn.realms.held"] = 1 })
    check(f.r == nil and type(f.end_analyze) == "function",
        "an answer not billed keeps end_analyze")
    cb(f, "end_analyze", txn, RES)
    local o = X.tap.outcomes[#X.tap.outcomes] or ""
    check(#X.tap.outcomes == before + 2 and o:find("^X req_end_") ~= nil,
        "its outcome and its release are sent: " .. o:gsub("\n", "|"))
end

-- the relay's filter: once the attempt is reported, its ends are off; with
-- no answer they stay, and report status 0
do
    local txn = new_txn({ ["txn.realms.backend"] = "up_a", ["txn.realms.server"] = "a--k1",
        ["txn.realms.whole"] = 1, ["txn.realms_rid"] = "req_relay" })
    local f = instance("realms-rewrite-outcome")
    local req = new_msg(false)
    req.eom_flag = true
    cb(f, "http_headers", txn, req)
    check(type(f.end_analyze) == "function", "the relay: ends on until the answer")
    local res = new_msg(true)
    res.get_headers = function() return {} end
    res.get_stline = function() return { code = "529" } end
    local before = #X.tap.outcomes
    cb(f, "http_headers", txn, res)
    check(#X.tap.outcomes == before + 1 and not cb(f, "end_analyze", txn, RES) and
        not cb(f, "http_end", txn, req), "the relay: reported once, then its ends are off")
end

H.finish("test_filter")
