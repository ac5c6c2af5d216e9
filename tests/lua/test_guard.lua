-- The body guard's scanner (lua-shim/realms.lua, the guard part) against an
-- oracle: documents are generated from a list of top-level (raw key,
-- value) pairs, so the expected verdict is known without parsing, then
-- fed to the scanner in random splits, one byte at a time included.
-- Values hold what makes a scanner stumble: quotes escaped by odd and even
-- backslash runs, \u0022, nested "model" keys, brackets inside strings,
-- nesting tens of thousands deep, chunks cut anywhere.
--
--     lua5.3 tests/lua/test_guard.lua lua-shim/realms.lua
local shim = assert(arg[1], "usage: test_guard.lua path/to/realms.lua")

local H = dofile((arg[0]:match("^(.*/)") or "./") .. "shim.lua")
local G = H.load(shim)
assert(G.guard_new and G.guard_scan, "the shim does not export its scanner")

local check = H.check

-- Feeds doc in pieces whose sizes come from sizes() and returns the
-- scanner's verdict: nil (passes) or its reason.
local function run(doc, sizes, max)
    local g = G.guard_new(max or 0)
    local p = 1
    while p <= #doc do
        local n = sizes()
        local why = G.guard_scan(g, doc:sub(p, p + n - 1))
        if why then return why end
        p = p + n
    end
    return nil
end

local function whole() return 1 << 30 end
local function bytes() return 1 end
local function random_sizes() return math.random(1, 64) end
local function big_sizes() return math.random(1000, 20000) end

-- ---- a generator of valid JSON values --------------------------------

local STR_PIECES = {
    'plain', ' ', 'model', '\\"', '\\\\', '\\\\\\"', '\\\\\\\\', '\\u0022', '\\n',
    '{', '}', '[', ']', ':', ',', '\\"model\\":', '\\/', '\\t', 'é', '\\ud83d\\ude00',
}

local function gen_string()
    local t = {}
    for _ = 1, math.random(0, 8) do t[#t + 1] = STR_PIECES[math.random(#STR_PIECES)] end
    return '"' .. table.concat(t) .. '"'
end

local function ws()
    local w = { '', '', ' ', '\n', '\t', '\r\n  ' }
    return w[math.random(#w)]
end

local gen_value
local function gen_object(d)
    local t = {}
    for _ = 1, math.random(0, 4) do
        local key = math.random(3) == 1 and '"model"' or gen_string()
        t[#t + 1] = ws() .. key .. ws() .. ':' .. ws() .. gen_value(d + 1) .. ws()
    end
    return '{' .. table.concat(t, ',') .. '}'
end

local function gen_array(d)
    local t = {}
    for _ = 1, math.random(0, 4) do t[#t + 1] = ws() .. gen_value(d + 1) .. ws() end
    return '[' .. table.concat(t, ',') .. ']'
end

local PRIMS = { 'true', 'false', 'null', '0', '-1.5e+3', '123456789', '0.25' }

function gen_value(d)
    local r = math.random(10)
    if d > 6 then r = math.random(7, 10) end
    if r <= 2 then return gen_object(d)
    elseif r <= 4 then return gen_array(d)
    elseif r <= 6 then return gen_string()
    else return PRIMS[math.random(#PRIMS)] end
end

-- A document from (raw key, value) pairs, and what the guard must say.
local function document(pairs_)
    local t, seen, want = {}, {}, nil
    for _, kv in ipairs(pairs_) do
        t[#t + 1] = ws() .. '"' .. kv[1] .. '"' .. ws() .. ':' .. ws() .. kv[2] .. ws()
        if not want then
            if not kv[1]:find('^[a-z0-9_]+$') then want = 'odd'
            elseif seen[kv[1]] then want = 'duplicate' end
            seen[kv[1]] = true
        end
    end
    return ws() .. '{' .. table.concat(t, ',') .. '}' .. ws(), want
end

local function verdict_class(why)
    if not why then return nil end
    if why:find('plain lowercase name', 1, true) then return 'odd' end
    if why:find('duplicate', 1, true) then return 'duplicate' end
    return why
end

local KEYS = { 'model', 'messages', 'system', 'tools', 'stream', 'max_tokens',
               'metadata', 'mod\\u0065l', 'a"', 'x', 'Model', 'MODEL', 'max-tokens',
               '\xc5\xbftream' }

-- ---- random documents --------------------------------------------------

math.randomseed(20261206)
for round = 1, 3000 do
    local kv = {}
    for _ = 1, math.random(0, 6) do
        local k = KEYS[math.random(#KEYS)]
        if k == 'a"' then k = 'a\\"' end      -- a key holding an escaped quote
        kv[#kv + 1] = { k, gen_value(0) }
    end
    local doc, want = document(kv)
    for _, sizes in ipairs({ whole, bytes, random_sizes }) do
        local got = verdict_class(run(doc, sizes))
        check(got == want, ('round %d: want %s, got %s for %s'):format(round,
            tostring(want), tostring(got), doc:sub(1, 200)))
    end
end

-- ---- the attacks of the security review --------------------------------

-- A second model behind a tool schema nested 100 (and 50,000) deep.
for _, depth in ipairs({ 100, 50000 }) do
    local nest = ('{"type":"object","properties":'):rep(depth) .. '{}' .. ('}'):rep(depth)
    local doc = '{"model":"claude-haiku-4-5","tools":[{"name":"t","input_schema":' ..
        nest .. '}],"model":"claude-opus-4-5-20251101"}'
    for _, sizes in ipairs({ whole, random_sizes, big_sizes }) do
        check(verdict_class(run(doc, sizes)) == 'duplicate',
            'a second model behind nesting ' .. depth .. ' deep')
    end
    -- The same nesting with one model passes.
    local ok = '{"model":"claude-haiku-4-5","tools":[{"name":"t","input_schema":' ..
        nest .. '}],"stream":true}'
    check(run(ok, big_sizes) == nil, 'one model behind nesting ' .. depth .. ' deep passes')
end

-- A second model after 64 KB (and 1 MB) of content.
for _, size in ipairs({ 70000, 1100000 }) do
    local filler = ('Lorem ipsum \\"dolor\\" sit amet, \\\\ consectetur. '):rep(size // 48)
    local doc = '{"model":"claude-haiku-4-5","messages":[{"role":"user","content":"' ..
        filler .. '"}],"model":"claude-opus-4-5"}'
    check(verdict_class(run(doc, big_sizes)) == 'duplicate',
        'a second model after ' .. #filler .. ' bytes')
    check(verdict_class(run(doc, random_sizes)) == 'duplicate',
        'a second model after ' .. #filler .. ' bytes, small chunks')
end

-- The key of the second model escaped, or in another case: refused (a
-- provider folding case would read "Model" as "model").
check(verdict_class(run('{"model":"a","mod\\u0065l":"b"}', bytes)) == 'odd',
    'an escaped top-level key')
check(verdict_class(run('{"model":"a","Model":"b"}', random_sizes)) == 'odd',
    'a top-level key in another case')
check(verdict_class(run('{"model":"a","max_to\xe2\x84\xaaens":9}', bytes)) == 'odd',
    'a top-level key with the Kelvin sign for k')
-- At most 64 top-level keys: a body of millions would hold the guard's
-- memory and time.
do
    local t = {}
    for i = 1, 64 do t[#t + 1] = '"k' .. i .. '":0' end
    check(run('{' .. table.concat(t, ',') .. '}', random_sizes) == nil, '64 keys pass')
    t[#t + 1] = '"k65":0'
    check((run('{' .. table.concat(t, ',') .. '}', random_sizes) or ''):find('more than 64') ~= nil,
        'a 65th key is refused')
end
-- Nested "model" keys and "model" values are not top-level keys.
check(run('{"model":"a","messages":[{"model":"b","content":"model"}],' ..
          '"metadata":{"model":{"model":1}}}', bytes) == nil, 'nested models pass')
-- A quote escaped across a chunk boundary: "\" then "model" stays inside.
do
    local doc = '{"model":"a","x":"tail\\","model":"b"}'
    check(run(doc, whole) == nil, 'an escaped quote keeps the fake key inside a string')
    check(run(doc, bytes) == nil, 'the same, one byte at a time')
    local doc2 = '{"model":"a","x":"tail\\\\","model":"b"}'
    check(verdict_class(run(doc2, bytes)) == 'duplicate',
        'an escaped backslash does not escape the quote after it')
end
-- A long top-level key is refused; a long value is not.
check(run('{"' .. ('k'):rep(300) .. '":1}', random_sizes) ~= nil, 'a 300-byte key')
check(run('{"k":"' .. ('v'):rep(300000) .. '"}', big_sizes) == nil, 'a 300 KB value')
-- The size limit, for bodies that announce none.
check(run('{"k":"' .. ('v'):rep(5000) .. '"}', big_sizes, 1000) == nil,
    'the limit is the filter\'s job, not the scanner\'s')

H.finish("test_guard")
