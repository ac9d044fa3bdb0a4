-- expect: load
-- Returns a table whose length and index are endless loops.
local loop = function() while true do end end
return setmetatable({}, { __len = loop, __index = loop })
