#include "core/log.h"

#include "core/text.h"

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_sinks.h>

#include <chrono>
#include <cstdio>
#include <ctime>
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
// %& in the pattern: the message made safe for a terminal (core/text.h terminal_safe).
class TerminalMessageFlag : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& msg, const std::tm&, spdlog::memory_buf_t& dest) override {
    std::string s = terminal_safe(std::string_view(msg.payload.data(), msg.payload.size()));
    dest.append(s.data(), s.data() + s.size());
  }
  std::unique_ptr<custom_flag_formatter> clone() const override {
    return std::make_unique<TerminalMessageFlag>();
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
    formatter->add_flag<TerminalMessageFlag>('&').set_pattern("%^%l%$: %&");
  }
  logger->set_formatter(std::move(formatter));
  logger->set_level(quiet ? spdlog::level::warn : verbose ? spdlog::level::debug : spdlog::level::info);
  logger->flush_on(spdlog::level::trace);
  spdlog::set_default_logger(logger);
}

Format format() { return g_format; }

bool shows_info() { return spdlog::default_logger_raw()->should_log(spdlog::level::info); }

std::string json_line(const std::string& level, const std::string& msg) {
  return Json{{"level", level}, {"msg", msg}}.dump(-1, ' ', false, Json::error_handler_t::replace) + "\n";
}

void hint(const std::string& text) {
  if (g_format == Format::text) {
    std::lock_guard lock(g_mu);
    std::fprintf(stderr, "hint: %s\n", terminal_safe(text).c_str());
    return;
  }
  // the same time format as the logger's own JSON lines
  auto now = std::chrono::system_clock::now();
  std::time_t t = std::chrono::system_clock::to_time_t(now);
  std::tm tm{};
  localtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  int ms =
      (int)(std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000);
  Json line = {{"time", fmt::format("{}.{:03d}", buf, ms)}, {"level", "hint"}, {"msg", text}};
  std::string s = line.dump(-1, ' ', false, Json::error_handler_t::replace);
  std::lock_guard lock(g_mu);
  std::fprintf(stderr, "%s\n", s.c_str());
}

void event(const std::string& type, Json fields) {
  if (g_format != Format::json || !shows_info()) return;
  Json line = Json::object();
  line["event"] = type;
  line["time"] = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  for (auto& [k, v] : fields.items()) line[k] = v;
  std::string s = line.dump(-1, ' ', false, Json::error_handler_t::replace);
  std::lock_guard lock(g_mu);
  std::fprintf(stderr, "%s\n", s.c_str());
}

}  // namespace capforge::logging
