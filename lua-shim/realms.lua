-- Realms Lua shim for HAProxy 2.6 (load with lua-load-per-thread).
--
-- realms-rewrite: a request filter on the relay that replaces the body's
-- "model" JSON string token with the one the agent chose for this attempt.
-- The agent gives the token's offset and length in the body and the new
-- token (already JSON-escaped); nothing else in the body changes. The new
-- Content-Length was set by an http-request rule before the headers left,
-- since 2.6 cannot change it from a filter. A chunked body keeps no
-- Content-Length and HAProxy re-frames it.
--
-- Filter callbacks cannot yield; this one only inspects and splices what
-- is already in the buffer, and holds back at most the bytes up to the end
-- of the model token (it sits at the start of real bodies).

local Rewrite = {
    id = "realms-rewrite",
    flags = filter.FLT_CFG_FL_HTX,
}
Rewrite.__index = Rewrite

function Rewrite:new()
    return setmetatable({ pos = 0, done = false }, Rewrite)
end

-- Called once the request's headers went through the http-request rules
-- (start_analyze runs before them, when the agent has not answered yet).
function Rewrite:http_headers(txn, msg)
    if msg.channel:is_resp() then
        return filter.CONTINUE
    end
    local new = txn:get_var("txn.realms.model_new")
    local off = tonumber(txn:get_var("txn.realms.model_off_r"))
    local len = tonumber(txn:get_var("txn.realms.model_len_r"))
    if new and off and len then
        self.new, self.off, self.len = new, off, len
        filter.register_data_filter(self, msg.channel)
    end
    return filter.CONTINUE
end

-- Forwards bytes up to the token, splices it once it is whole, then
-- forwards everything. Returns how many bytes may leave now.
function Rewrite:http_payload(txn, msg)
    local avail = msg:input()
    if self.done then
        return avail
    end
    local rel = self.off - self.pos          -- token start in this input
    if rel + self.len > avail then
        -- Not all of the token is here yet: release what precedes it.
        if rel > 0 then
            self.pos = self.pos + rel
            return rel
        end
        return 0
    end
    if msg:set(self.new, rel, self.len) < 0 then
        return -1
    end
    self.done = true
    filter.unregister_data_filter(self, msg.channel)
    return msg:input()
end

core.register_filter("realms-rewrite", Rewrite, function(rw, args)
    return rw
end)
