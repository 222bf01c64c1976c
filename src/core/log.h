// Logging to stderr: human text by default, JSON lines with --log-json.
#pragma once

#include <spdlog/spdlog.h>

#include <string>

#include "capforge/sample.h"

namespace capforge::logging {

enum class Format { text, json };

// Configures the process-wide logger. Safe to call more than once.
void init(Format format, bool verbose = false, bool quiet = false);
Format format();

// In JSON mode, writes `event` (plus time) as one line to stderr; in text mode does nothing.
void event(const std::string& type, Json fields);

}  // namespace capforge::logging

namespace capforge {
using spdlog::debug;
using spdlog::error;
using spdlog::info;
using spdlog::warn;
}  // namespace capforge
