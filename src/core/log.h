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
// Nothing under -q (events are info-level).
void event(const std::string& type, Json fields);

// A hint after an error, in the log's format so --log-json output stays JSON lines only:
// "hint: <text>" in text mode, {"time","level":"hint","msg"} in JSON mode. Always shown.
void hint(const std::string& text);
// Whether info-level output is shown (false under -q).
bool shows_info();
// One JSON log line (with a trailing newline) for `msg` at `level`, without a time: for messages
// prepared ahead of time, e.g. printed from a signal handler.
std::string json_line(const std::string& level, const std::string& msg);

}  // namespace capforge::logging

namespace capforge {
using spdlog::debug;
using spdlog::error;
using spdlog::info;
using spdlog::warn;
}  // namespace capforge
