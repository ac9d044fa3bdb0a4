/*
 * The C module of the LuaRocks build (chatapp-dev-1.rockspec): chatapp.so.
 *
 * Everything is in the installed static library libchatapp.a, built
 * position-independent for this; this file only makes the linker take the
 * Lua entry points from the archive.  luaopen_chatapp makes require find
 * "chatapp.core" and the module's Lua files, which are compiled into the
 * library, so the rock needs no Lua file of its own and cannot drift from
 * the library it was built against.  Like every Lua C module, the rock
 * does not link liblua: the interpreter that loads it provides Lua.
 *
 *   require "chatapp"       -> chatapp.so, luaopen_chatapp
 *   require "chatapp.core"  -> chatapp.so, luaopen_chatapp_core (Lua's
 *                              all-in-one loader)
 */
#include <chatapp.h>

__attribute__((used)) static int (*const entries[])(struct lua_State *) = {
  luaopen_chatapp,
  luaopen_chatapp_core,
};
