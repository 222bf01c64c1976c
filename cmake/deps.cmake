# Third-party dependencies. Debian packages are found through pkg-config / find_package; llama.cpp
# and DuckDB come from scripts/bootstrap's cache unless the user points at their own:
#   CAPFORGE_LLAMA_DIR   a llama.cpp source tree (built here as static libraries)
#   CAPFORGE_DUCKDB_DIR  a dir with include/duckdb.h and lib/libduckdb.so
# Either may also be given as an environment variable of the same name.

find_package(PkgConfig REQUIRED)
find_package(Threads REQUIRED)
find_package(ZLIB REQUIRED)
pkg_check_modules(VIPS REQUIRED IMPORTED_TARGET vips-cpp)
pkg_check_modules(ARCHIVE REQUIRED IMPORTED_TARGET libarchive)
pkg_check_modules(CURL REQUIRED IMPORTED_TARGET libcurl)
pkg_check_modules(SQLITE3 REQUIRED IMPORTED_TARGET sqlite3)
pkg_check_modules(LIBPQ REQUIRED IMPORTED_TARGET libpq)
pkg_check_modules(CRYPTO REQUIRED IMPORTED_TARGET libcrypto)
pkg_check_modules(UTF8PROC REQUIRED IMPORTED_TARGET libutf8proc)
pkg_check_modules(SENTENCEPIECE REQUIRED IMPORTED_TARGET sentencepiece)
pkg_check_modules(HTTPLIB REQUIRED IMPORTED_TARGET cpp-httplib)
find_package(nlohmann_json 3.10 REQUIRED)
find_package(CLI11 REQUIRED)
find_package(fmt REQUIRED)
find_package(spdlog REQUIRED)

if(DEFINED ENV{CAPFORGE_CACHE})
  set(_capforge_cache "$ENV{CAPFORGE_CACHE}")
else()
  set(_capforge_cache "$ENV{HOME}/.cache/capforge")
endif()

# ---- DuckDB (C API)
if(NOT CAPFORGE_DUCKDB_DIR AND DEFINED ENV{CAPFORGE_DUCKDB_DIR})
  set(CAPFORGE_DUCKDB_DIR "$ENV{CAPFORGE_DUCKDB_DIR}")
endif()
if(NOT CAPFORGE_DUCKDB_DIR)
  set(CAPFORGE_DUCKDB_DIR "${_capforge_cache}/deps/duckdb")
endif()
set(CAPFORGE_DUCKDB_DIR "${CAPFORGE_DUCKDB_DIR}" CACHE PATH "DuckDB install (include/duckdb.h, lib/libduckdb.so)")
find_path(DUCKDB_INCLUDE_DIR duckdb.h HINTS "${CAPFORGE_DUCKDB_DIR}/include" NO_DEFAULT_PATH)
find_path(DUCKDB_INCLUDE_DIR duckdb.h)
find_library(DUCKDB_LIBRARY duckdb HINTS "${CAPFORGE_DUCKDB_DIR}/lib" NO_DEFAULT_PATH)
find_library(DUCKDB_LIBRARY duckdb)
if(NOT DUCKDB_INCLUDE_DIR OR NOT DUCKDB_LIBRARY)
  message(FATAL_ERROR "DuckDB not found in ${CAPFORGE_DUCKDB_DIR}. Run scripts/bootstrap, "
                      "or set CAPFORGE_DUCKDB_DIR to a dir with include/duckdb.h and lib/libduckdb.so.")
endif()
add_library(capforge_duckdb SHARED IMPORTED GLOBAL)
set_target_properties(capforge_duckdb PROPERTIES IMPORTED_LOCATION "${DUCKDB_LIBRARY}"
                                                 INTERFACE_INCLUDE_DIRECTORIES "${DUCKDB_INCLUDE_DIR}")
message(STATUS "capforge: DuckDB ${DUCKDB_LIBRARY}")

# ---- llama.cpp / ggml / libmtmd, built from source as static libraries
if(NOT CAPFORGE_LLAMA_DIR AND DEFINED ENV{CAPFORGE_LLAMA_DIR})
  set(CAPFORGE_LLAMA_DIR "$ENV{CAPFORGE_LLAMA_DIR}")
endif()
if(NOT CAPFORGE_LLAMA_DIR)
  set(CAPFORGE_LLAMA_DIR "${_capforge_cache}/deps/llama.cpp")
endif()
set(CAPFORGE_LLAMA_DIR "${CAPFORGE_LLAMA_DIR}" CACHE PATH "llama.cpp source tree")
if(NOT EXISTS "${CAPFORGE_LLAMA_DIR}/tools/mtmd/mtmd.h")
  message(FATAL_ERROR "llama.cpp source not found at ${CAPFORGE_LLAMA_DIR}. Run scripts/bootstrap, "
                      "or set CAPFORGE_LLAMA_DIR to a llama.cpp source tree.")
endif()

set(BUILD_SHARED_LIBS OFF CACHE BOOL "" FORCE)
set(GGML_NATIVE ON CACHE BOOL "")
set(GGML_CUDA ${CAPFORGE_CUDA} CACHE BOOL "" FORCE)
if(CAPFORGE_CUDA AND NOT CMAKE_CUDA_ARCHITECTURES)
  set(CMAKE_CUDA_ARCHITECTURES "${CAPFORGE_CUDA_ARCHITECTURES}")
endif()
set(LLAMA_BUILD_COMMON ON CACHE BOOL "")   # llama-mtmd-cli / llama-server serve as test and bench peers
set(LLAMA_BUILD_TOOLS ON CACHE BOOL "")
set(LLAMA_BUILD_SERVER ON CACHE BOOL "")
set(LLAMA_BUILD_TESTS OFF CACHE BOOL "")
set(LLAMA_BUILD_EXAMPLES OFF CACHE BOOL "")
set(LLAMA_BUILD_APP OFF CACHE BOOL "")
set(LLAMA_BUILD_UI OFF CACHE BOOL "")
set(LLAMA_USE_PREBUILT_UI OFF CACHE BOOL "")   # never download at build time
set(LLAMA_OPENSSL OFF CACHE BOOL "")
set(LLAMA_CURL OFF CACHE BOOL "")
set(LLAMA_ALL_WARNINGS OFF CACHE BOOL "")
set(MTMD_VIDEO OFF CACHE BOOL "")
# Only the targets capforge links (and peers the tests ask for) get built.
add_subdirectory("${CAPFORGE_LLAMA_DIR}" "${CMAKE_BINARY_DIR}/llama.cpp" EXCLUDE_FROM_ALL)
execute_process(COMMAND git -C "${CAPFORGE_LLAMA_DIR}" rev-parse --short HEAD
                OUTPUT_VARIABLE CAPFORGE_LLAMA_COMMIT OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
if(NOT CAPFORGE_LLAMA_COMMIT)
  set(CAPFORGE_LLAMA_COMMIT "unknown")
endif()
message(STATUS "capforge: llama.cpp ${CAPFORGE_LLAMA_DIR} (${CAPFORGE_LLAMA_COMMIT})")
