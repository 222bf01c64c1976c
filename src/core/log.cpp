#include "core/log.h"

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_sinks.h>

#include <chrono>
#include <cstdio>
#include <mutex>

namespace capforge::logging {

namespace {
Format g_format = Format::text;
std::mutex g_mu;

// %* in the pattern: the message as a JSON string literal.
class JsonMessageFlag : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& msg, const std::tm&, spdlog::memory_buf_t& dest) override {
    std::string s = Json(std::string(msg.payload.data(), msg.payload.size()))
                        .dump(-1, ' ', false, Json::error_handler_t::replace);
    dest.append(s.data(), s.data() + s.size());
  }
  std::unique_ptr<custom_flag_formatter> clone() const override {
    return std::make_unique<JsonMessageFlag>();
  }
};
}  // namespace

void init(Format format, bool verbose, bool quiet) {
  std::lock_guard lock(g_mu);
  g_format = format;
  auto logger =
      std::make_shared<spdlog::logger>("capforge", std::make_shared<spdlog::sinks::stderr_sink_mt>());
  auto formatter = std::make_unique<spdlog::pattern_formatter>();
  if (format == Format::json) {
    formatter->add_flag<JsonMessageFlag>('*').set_pattern(
        R"({"time":"%Y-%m-%dT%H:%M:%S.%e","level":"%l","msg":%*})");
  } else {
    formatter->set_pattern("%^%l%$: %v");
  }
  logger->set_formatter(std::move(formatter));
  logger->set_level(quiet ? spdlog::level::warn : verbose ? spdlog::level::debug : spdlog::level::info);
  logger->flush_on(spdlog::level::trace);
  spdlog::set_default_logger(logger);
}

Format format() { return g_format; }

void event(const std::string& type, Json fields) {
  if (g_format != Format::json) return;
  Json line = Json::object();
  line["event"] = type;
  line["time"] = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  for (auto& [k, v] : fields.items()) line[k] = v;
  std::string s = line.dump(-1, ' ', false, Json::error_handler_t::replace);
  std::lock_guard lock(g_mu);
  std::fprintf(stderr, "%s\n", s.c_str());
}

}  // namespace capforge::logging
