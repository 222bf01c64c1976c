#include "cli/common.h"

#include <signal.h>

#include <unistd.h>
#include <cstring>

#include <cstdlib>
#include <system_error>
#include <thread>

#include "capforge/env.h"
#include "core/log.h"

namespace capforge::cli {

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

void add_decode_options(CLI::App* app, DecodeParams& p) {
  const char* g = "Images";
  app->add_option("--max-pixels", p.max_pixels, "refuse larger images (decompression-bomb guard)")
      ->capture_default_str()
      ->check(CLI::PositiveNumber)
      ->group(g);
  app->add_option("--max-image-bytes", p.max_bytes, "refuse larger encoded images")
      ->capture_default_str()
      ->check(CLI::PositiveNumber)
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

int default_threads() { return std::max(1u, std::thread::hardware_concurrency()); }

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
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  return &g_interrupted;
}

}  // namespace capforge::cli
