#include "capforge/version.h"

#include <duckdb.h>
#include <vips/vips.h>

#include <fmt/format.h>

#ifndef CAPFORGE_VERSION
#define CAPFORGE_VERSION "0.0.0"
#endif
#ifndef CAPFORGE_LLAMA_COMMIT
#define CAPFORGE_LLAMA_COMMIT "unknown"
#endif

namespace capforge {

const char* version() { return CAPFORGE_VERSION; }

std::string version_details() {
  return fmt::format("capforge {} (llama.cpp {}, DuckDB {}, libvips {})", CAPFORGE_VERSION,
                     CAPFORGE_LLAMA_COMMIT, duckdb_library_version(), vips_version_string());
}

}  // namespace capforge
