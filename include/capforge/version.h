#pragma once
#include <string>

namespace capforge {
const char* version();          // "0.1.0"
std::string version_details();  // capforge, llama.cpp, ggml, DuckDB and libvips versions
}  // namespace capforge
