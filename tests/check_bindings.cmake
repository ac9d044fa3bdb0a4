# The bindings (lca_*) never call libcurl or OpenSSL: versions and every
# other fact about them come from the core (ca_client.h, ca_crypto.h), so
# the C core stays the one user of both.  Run as:
#   cmake -DSRC=<source dir> -P check_bindings.cmake
file(GLOB_RECURSE bindings ${SRC}/runtime/lua/*.c ${SRC}/runtime/lua/*.h)
list(LENGTH bindings n)
if(n LESS 5)
  message(FATAL_ERROR "found only ${n} lca_ files under ${SRC}/runtime")
endif()
set(bad "")
foreach(f ${bindings})
  file(STRINGS ${f} hits REGEX
    "#[ \t]*include[ \t]*<(curl|openssl)/|(^|[^A-Za-z0-9_])curl_[a-z_]+[ \t]*\\(|OPENSSL_VERSION|OpenSSL_version|EVP_|HMAC\\(")
  if(hits)
    string(APPEND bad "\n  ${f}: ${hits}")
  endif()
endforeach()
if(bad)
  message(FATAL_ERROR "bindings call libcurl or OpenSSL directly; ask the "
    "core (a ca_ function) instead:${bad}")
endif()
message(STATUS "${n} binding files: no libcurl or OpenSSL call")
