-- LuaRocks build of the chatapp Lua module against an installed chatapp
-- library (docs/embedding.md, "LuaRocks"):
--
--   cmake --install build --prefix /usr/local     # the library first
--   luarocks --lua-version=5.4 make chatapp-dev-1.rockspec CHATAPP_DIR=/usr/local
--
-- The rock is one C module, chatapp.so, linked from the installed
-- libchatapp.a (position-independent) and its dependencies; the Lua files
-- of the module are compiled into that library (lua/rock/core.c).  Never
-- from libchatapp.so, which links liblua for C hosts and would put a
-- second Lua into the interpreter.  Tested by the install/luarocks test
-- (tests/install) with Debian 12's luarocks 3.8.
rockspec_format = "3.0"
package = "chatapp"
version = "dev-1"
source = {
  url = "git+file:///dev/null", -- only `luarocks make` in a source tree
}
description = {
  summary = "Policies over Alibaba Cloud CAMS sender numbers: the Lua module",
  detailed = [[
require "chatapp": a CAMS client making signed, throttled, retried calls
(chatapp.client), typed PhoneNumber results, the policy helpers and JSON.]],
  license = "MIT",
}
dependencies = {
  "lua >= 5.4, < 5.5",
}
external_dependencies = {
  CHATAPP = { header = "chatapp.h", library = "chatapp" },
}
build = {
  type = "builtin",
  modules = {
    chatapp = {
      sources = { "lua/rock/core.c" },
      incdirs = { "$(CHATAPP_INCDIR)" },
      libdirs = { "$(CHATAPP_LIBDIR)" },
      -- -l:libchatapp.a: the static library even where the shared one is.
      libraries = { ":libchatapp.a", "curl", "crypto", "sqlite3", "hiredis", "m", "pthread" },
    },
  },
}
