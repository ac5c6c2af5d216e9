-- What the Lua tests share: HAProxy's core and filter stood in for (the
-- stand-ins only record), the shim loaded, and checks counted.
--
--     local H = dofile((arg[0]:match("^(.*/)") or "./") .. "shim.lua")
--     local X = H.load(arg[1])       -- the shim's exports
--     H.check(ok, what) ... H.finish("test_x")
local H = { failures = 0, checks = 0 }

-- register_filter: optional, called with each filter's name, class and
-- init function as the shim registers it.
function H.load(path, register_filter)
    core = { realms_export = {} }
    core.register_filter = register_filter or function() end
    function core.register_task() end
    function core.Warning() end
    function core.Alert() end
    filter = { FLT_CFG_FL_HTX = 1, CONTINUE = 1 }
    dofile(path)
    return core.realms_export
end

function H.check(ok, what)
    H.checks = H.checks + 1
    if not ok then
        H.failures = H.failures + 1
        io.stderr:write("FAIL - " .. what .. "\n")
    end
end

function H.finish(name)
    print(("%s: %d checks, %d failed"):format(name, H.checks, H.failures))
    os.exit(H.failures == 0 and 0 or 1)
end

return H
