# Install rules: `cmake --install BUILD [--prefix PREFIX]` puts in place
#
#   bin/         chatapp-run, chatapp-emulator
#   lib/         libchatapp.so.0 (SONAME) and libchatapp.a
#   include/     chatapp.h
#   lib/pkgconfig/chatapp.pc
#   lib/cmake/chatapp/   find_package(chatapp): chatapp::chatapp (shared),
#                        chatapp::chatapp_static
#   CHATAPP_INSTALL_LUA_CMOD/chatapp/core.so   (lib/lua/5.4)
#   CHATAPP_INSTALL_LUA_LMOD/chatapp/*.lua     (share/lua/5.4)
#   share/chatapp/types/     LuaLS ---@meta stubs
#   share/chatapp/policies/  example policies
#   share/man/man1/chatapp-run.1, share/doc/chatapp-run/
#
# The Lua folders are where Debian's lua5.4 looks by default for the
# /usr/local and /usr prefixes (package.path, package.cpath); packagers
# can move them with -DCHATAPP_INSTALL_LUA_CMOD=... / _LMOD=...
# docs/embedding.md describes the result.

include(CMakePackageConfigHelpers)

set(CHATAPP_LUA_VERSION 5.4)
set(CHATAPP_INSTALL_LUA_CMOD "${CMAKE_INSTALL_LIBDIR}/lua/${CHATAPP_LUA_VERSION}"
  CACHE STRING "Where chatapp/core.so goes (relative to the prefix)")
set(CHATAPP_INSTALL_LUA_LMOD "${CMAKE_INSTALL_DATADIR}/lua/${CHATAPP_LUA_VERSION}"
  CACHE STRING "Where chatapp/*.lua go (relative to the prefix)")
set(CHATAPP_INSTALL_CMAKEDIR "${CMAKE_INSTALL_LIBDIR}/cmake/chatapp"
  CACHE STRING "Where the CMake package goes (relative to the prefix)")
set(CHATAPP_INSTALL_SHAREDIR "${CMAKE_INSTALL_DATADIR}/chatapp")

# ---- programs -----------------------------------------------------------
install(TARGETS chatapp-run RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR}
  COMPONENT Runtime)
# The emulator lands in its own change; install it once it exists.
if(TARGET chatapp-emulator)
  install(TARGETS chatapp-emulator RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR}
    COMPONENT Runtime)
endif()

# ---- C library, header, CMake package -----------------------------------
install(TARGETS chatapp_shared chatapp_static EXPORT chatappTargets
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT Runtime
    NAMELINK_COMPONENT Development
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT Development)
install(FILES ${PROJECT_SOURCE_DIR}/runtime/include/chatapp.h
  DESTINATION ${CMAKE_INSTALL_INCLUDEDIR} COMPONENT Development)

install(EXPORT chatappTargets NAMESPACE chatapp::
  DESTINATION ${CHATAPP_INSTALL_CMAKEDIR} COMPONENT Development)
# chatappConfig.cmake and chatapp.pc ask for libcurl ${CHATAPP_CURL_MIN}
# (CMakeLists.txt) or newer, as the build does.
configure_package_config_file(
  ${PROJECT_SOURCE_DIR}/cmake/chatappConfig.cmake.in
  ${PROJECT_BINARY_DIR}/cmake/chatappConfig.cmake
  INSTALL_DESTINATION ${CHATAPP_INSTALL_CMAKEDIR}
  PATH_VARS CMAKE_INSTALL_INCLUDEDIR CHATAPP_INSTALL_LUA_CMOD
    CHATAPP_INSTALL_LUA_LMOD)
# Before 1.0 a minor release may change the API: only the same
# major.minor is compatible.
write_basic_package_version_file(
  ${PROJECT_BINARY_DIR}/cmake/chatappConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/cmake/chatappConfig.cmake
  ${PROJECT_BINARY_DIR}/cmake/chatappConfigVersion.cmake
  DESTINATION ${CHATAPP_INSTALL_CMAKEDIR} COMPONENT Development)

# ---- pkg-config ---------------------------------------------------------
# Folders relative to ${prefix} when they are relative to the prefix.
foreach(d CMAKE_INSTALL_LIBDIR CMAKE_INSTALL_INCLUDEDIR
    CHATAPP_INSTALL_LUA_CMOD CHATAPP_INSTALL_LUA_LMOD)
  if(IS_ABSOLUTE "${${d}}")
    set(CHATAPP_PC_${d} "${${d}}")
  else()
    set(CHATAPP_PC_${d} "\${prefix}/${${d}}")
  endif()
endforeach()
# The prefix is only known at install time (cmake --install --prefix P):
# configure everything else now and the prefix when installing.
set(CHATAPP_PC_PREFIX "@CHATAPP_PC_PREFIX@")
configure_file(${PROJECT_SOURCE_DIR}/cmake/chatapp.pc.in
  ${PROJECT_BINARY_DIR}/cmake/chatapp.pc.in @ONLY)
install(CODE "
  set(CHATAPP_PC_PREFIX \"\${CMAKE_INSTALL_PREFIX}\")
  configure_file(\"${PROJECT_BINARY_DIR}/cmake/chatapp.pc.in\"
    \"${PROJECT_BINARY_DIR}/cmake/chatapp.pc\" @ONLY)
  " COMPONENT Development)
install(FILES ${PROJECT_BINARY_DIR}/cmake/chatapp.pc
  DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig COMPONENT Development)

# ---- Lua module ---------------------------------------------------------
install(TARGETS chatapp_lua
  LIBRARY DESTINATION ${CHATAPP_INSTALL_LUA_CMOD}/chatapp COMPONENT Lua)
install(DIRECTORY ${PROJECT_SOURCE_DIR}/lua/chatapp/
  DESTINATION ${CHATAPP_INSTALL_LUA_LMOD}/chatapp COMPONENT Lua
  FILES_MATCHING PATTERN "*.lua")
install(DIRECTORY ${PROJECT_SOURCE_DIR}/lua/types/
  DESTINATION ${CHATAPP_INSTALL_SHAREDIR}/types COMPONENT Lua
  FILES_MATCHING PATTERN "*.lua" PATTERN "*.json")

# ---- documentation and examples -----------------------------------------
install(FILES ${PROJECT_SOURCE_DIR}/docs/chatapp-run.1
  DESTINATION ${CMAKE_INSTALL_MANDIR}/man1 COMPONENT Documentation)
install(DIRECTORY ${PROJECT_SOURCE_DIR}/docs/
  DESTINATION ${CMAKE_INSTALL_DOCDIR} COMPONENT Documentation
  FILES_MATCHING PATTERN "*.md")
install(DIRECTORY ${PROJECT_SOURCE_DIR}/scripts/policies/
  DESTINATION ${CHATAPP_INSTALL_SHAREDIR}/policies COMPONENT Examples
  FILES_MATCHING PATTERN "*.lua" PATTERN "*.json")
