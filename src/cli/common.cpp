#include "cli/common.h"

#include <signal.h>

#include <unistd.h>
#include <cstring>

#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <system_error>
#include <thread>

#include <fmt/format.h>

#include "capforge/env.h"
#include "core/cpus.h"
#include "core/log.h"

namespace capforge::cli {

namespace {
// Shows a bound without CLI11's 300-digit doubles: 1, 0.5, 1e+06.
std::string num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}
}  // namespace

CLI::Validator int_range(long long lo, long long hi) {
  const bool open_end = hi == (1ll << 31) - 1;
  std::string want =
      open_end ? fmt::format("an integer >= {}", lo) : fmt::format("an integer from {} to {}", lo, hi);
  std::string brief = open_end ? fmt::format(">={}", lo) : fmt::format("{}..{}", lo, hi);
  return CLI::Validator(
      [lo, hi, want](std::string& v) -> std::string {
        long long x = 0;
        auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), x);
        if (ec != std::errc() || end != v.data() + v.size() || x < lo || x > hi)
          return fmt::format("must be {}, got {}", want, v);
        return "";
      },
      brief);
}

CLI::Validator positive_int() { return int_range(1, (1ll << 31) - 1); }
CLI::Validator non_negative_int() { return int_range(0, (1ll << 31) - 1); }

CLI::Validator number_range(double lo, double hi, bool lo_open) {
  std::string want = fmt::format("a number {} {}", lo_open ? ">" : ">=", num(lo));
  if (std::isfinite(hi)) want += fmt::format(" and <= {}", num(hi));
  std::string brief = std::isfinite(hi) ? fmt::format("{}{}..{}", lo_open ? ">" : "", num(lo), num(hi))
                                        : fmt::format("{}{}", lo_open ? ">" : ">=", num(lo));
  return CLI::Validator(
      [lo, hi, lo_open, want](std::string& v) -> std::string {
        char* end = nullptr;
        double x = std::strtod(v.c_str(), &end);
        bool ok = !v.empty() && end == v.c_str() + v.size() && std::isfinite(x) && x <= hi &&
                  (lo_open ? x > lo : x >= lo);
        return ok ? "" : fmt::format("must be {}, got {}", want, v);
      },
      brief);
}

CLI::Validator prob01() { return number_range(0, 1); }
CLI::Validator threads_count() {
  return int_range(0, 4096).description("0..4096, 0: the CPUs this process may use");
}
CLI::Validator port_number() { return int_range(0, 65535); }
CLI::Validator seed_value() {
  return CLI::Validator(
      [](std::string& v) -> std::string {
        unsigned long long x = 0;
        auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), x);
        if (ec != std::errc() || end != v.data() + v.size())
          return "must be an integer from 0 to 18446744073709551615, got " + v;
        return "";
      },
      "0..2^64-1");
}
CLI::Validator lease_seconds() {
  CLI::Validator range = number_range(kMinLeaseSeconds, 7 * 86400.0);
  return CLI::Validator(
      [range](std::string& v) -> std::string {
        std::string err = range(v);
        if (err.empty()) return "";
        return fmt::format(
            "must be seconds from {} to 604800 (heartbeats renew the lease every third of it, "
            "so a shorter one expires under its own holder), got {}",
            num(kMinLeaseSeconds), v);
      },
      fmt::format("{}..604800 s", num(kMinLeaseSeconds)));
}

void one_value_per_use(CLI::App& app) {
  for (CLI::Option* opt : app.get_options()) {
    if (!opt->nonpositional() || opt->get_items_expected_max() <= 1) continue;
    opt->expected(1)->allow_extra_args(false)->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  }
  for (CLI::App* sub : app.get_subcommands({})) one_value_per_use(*sub);
}

std::string unknown_command(const CLI::App& app, int argc, char** argv) {
  const CLI::App* at = &app;
  std::string path;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a.empty() || a[0] == '-') continue;  // global flags take no values
    const CLI::App* next = nullptr;
    std::vector<std::string> names;
    for (const CLI::App* sub : at->get_subcommands({})) {
      names.push_back(sub->get_name());
      if (sub->check_name(a)) next = sub;
    }
    if (!next)
      return fmt::format("unknown command '{}{}'; the commands are: {}", path, a, fmt::join(names, ", "));
    // only a command that requires a subcommand (queue, rate) reads the next word as a command
    if (next->get_subcommands({}).empty() || next->get_require_subcommand_min() == 0) return "";
    at = next;
    path += a + " ";
  }
  return "";
}

CLI::Validator rank_spec() {
  return CLI::Validator(
      [](std::string& v) -> std::string {
        size_t colon = v.rfind(':');
        if (colon == std::string::npos || v.find('/', colon) != std::string::npos) return "";
        std::error_code ec;
        if (std::filesystem::is_directory(v, ec)) return "";  // a directory whose name has a ':'
        std::string k = v.substr(colon + 1);
        long long x = 0;
        auto [end, err] = std::from_chars(k.data(), k.data() + k.size(), x);
        if (err != std::errc() || end != k.data() + k.size() || x < 1 || x > (1 << 20))
          return fmt::format("K in DIR:K (candidates the ranker keeps) must be a positive integer, got '{}'",
                             k);
        return "";
      },
      "DIR[:K]");
}

std::string read_input_file(const std::string& path, std::string& bytes) {
  bytes.clear();
  std::error_code ec;
  auto st = std::filesystem::status(path, ec);
  if (ec) return "cannot read file: " + ec.message();
  if (std::filesystem::is_directory(st)) return "is a directory, not an image file";
  if (!std::filesystem::is_regular_file(st)) return "not a regular file";
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) return std::string("cannot read file: ") + std::strerror(errno);
  char buf[1 << 16];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) bytes.append(buf, n);
  bool failed = std::ferror(f);
  std::fclose(f);
  return failed ? "cannot read file: read error" : "";
}

void add_reader_options(CLI::App* app, ReaderParams& p) {
  const char* g = "Input columns (parquet/csv/jsonl)";
  app->add_option("--url-col", p.url_col, "URL column (default: url or URL)")->group(g);
  app->add_option("--caption-col", p.caption_col, "caption column (default: caption, text or TEXT)")
      ->group(g);
  app->add_option("--key-col", p.key_col, "key column (default: key or uid; else {shard}_{index})")->group(g);
  app->add_option("--image-col", p.image_col,
                  "image column: BLOB, HF struct{bytes,path} or *_base64 text (default: image, jpg, ...)")
      ->group(g);
}

// Opens only the first input of each table format (the next one when that one cannot be read at
// all): shards of one dataset share their columns, so that is enough to find a missing or mistyped
// named column up front, without prescanning thousands of shards here, single-threaded, before the
// run. A later shard that differs fails on its own when the run reads it.
void check_reader_columns(const std::vector<ShardInput>& inputs, const ReaderParams& p) {
  if (p.url_col.empty() && p.caption_col.empty() && p.key_col.empty() && p.image_col.empty() &&
      p.keep_cols.empty())
    return;
  std::vector<InputFormat> checked;
  for (auto& in : inputs) {
    if (in.format == InputFormat::webdataset || in.format == InputFormat::folder) continue;
    bool seen = false;
    for (auto f : checked) seen = seen || f == in.format;
    if (seen) continue;
    try {
      open_reader(in, p);
      checked.push_back(in.format);
    } catch (const ColumnError& e) {
      throw UsageError(e.what(),
                       "--url-col, --caption-col, --key-col and --image-col name columns of table inputs");
    } catch (const std::exception&) {  // a broken file: the run reports it for that shard
    }
  }
}

void add_decode_options(CLI::App* app, DecodeParams& p) {
  const char* g = "Images";
  app->add_option("--max-pixels", p.max_pixels, "refuse larger images (decompression-bomb guard)")
      ->capture_default_str()
      ->check(int_range(1, 1ll << 50))
      ->group(g);
  app->add_option("--max-image-bytes", p.max_bytes, "refuse larger encoded images")
      ->capture_default_str()
      ->check(int_range(1, 1ll << 50))
      ->group(g);
}

void add_progress_option(CLI::App* app, ProgressMode& mode) {
  static const std::map<std::string, ProgressMode> modes = {{"auto", ProgressMode::automatic},
                                                            {"bar", ProgressMode::bar},
                                                            {"lines", ProgressMode::lines},
                                                            {"off", ProgressMode::off}};
  app->add_option("--progress", mode,
                  "progress display: auto (bar on a TTY, lines otherwise), bar, lines, off")
      ->transform(CLI::CheckedTransformer(modes, CLI::ignore_case))
      ->default_str("auto");
}

int default_threads() { return available_cpus(); }

namespace {
std::atomic<bool> g_interrupted{false};
const char* g_message = "";

void on_signal(int) {
  if (g_interrupted.exchange(true)) _exit(130);
  ssize_t ignored = write(STDERR_FILENO, g_message, strlen(g_message));
  (void)ignored;
}
}  // namespace

void install_debug_faults() {
  const char* full = std::getenv("CAPFORGE_DEBUG_FULL_DISK");
  if (!full || !*full) return;
  static std::unique_ptr<Env> env = make_full_disk_env(full);
  set_env(env.get());
  warn("CAPFORGE_DEBUG_FULL_DISK={}: outputs matching it fail with ENOSPC (fault testing)", full);
}

const std::atomic<bool>* install_interrupt_handler(const char* message) {
  g_message = message;
  if (logging::format() == logging::Format::json) {  // prepared now: the handler may not allocate
    static std::string json;
    std::string m = message;
    while (!m.empty() && (m.front() == '\n' || m.front() == ' ')) m.erase(0, 1);
    while (!m.empty() && (m.back() == '\n' || m.back() == ' ')) m.pop_back();
    json = logging::json_line("warning", m);
    g_message = json.c_str();
  }
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  return &g_interrupted;
}

}  // namespace capforge::cli
