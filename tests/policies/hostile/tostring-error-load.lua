-- expect: load
-- Raises an error value whose __tostring never returns, while loading.
error(setmetatable({}, { __tostring = function() while true do end end }))
