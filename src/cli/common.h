// Pieces shared by subcommands: option groups, signal handling, errors with hints.
#pragma once

#include <CLI/CLI.hpp>

#include <atomic>
#include <functional>
#include <stdexcept>
#include <string>

#include "capforge/image.h"
#include "capforge/io.h"
#include "capforge/pipeline.h"

namespace capforge::cli {

// A user-facing error: printed as "error: <what>" plus "hint: <hint>", exit code 2.
struct UsageError : std::runtime_error {
  UsageError(const std::string& what, std::string hint = "")
      : std::runtime_error(what), hint(std::move(hint)) {}
  std::string hint;
};

// What a subcommand runs after parsing; returns the process exit code.
using Action = std::function<int()>;

void add_reader_options(CLI::App* app, ReaderParams& p);
void add_decode_options(CLI::App* app, DecodeParams& p);
void add_progress_option(CLI::App* app, ProgressMode& mode);
int default_threads();

// Test hook: CAPFORGE_DEBUG_FULL_DISK=PATTERN makes durable writes of matching paths fail with
// ENOSPC (the fault tests' disk-full scenario). No effect when unset.
void install_debug_faults();

// SIGINT/SIGTERM set the returned flag and print `message` (static storage); a second signal
// exits at once with 130.
const std::atomic<bool>* install_interrupt_handler(
    const char* message =
        "\ninterrupted: stopping after in-flight samples; unfinished shards stay pending "
        "(press Ctrl-C again to quit now)\n");

// Subcommand registration: each adds itself to `app` and sets `action` when selected.
void add_inspect(CLI::App& app, Action& action);
void add_convert(CLI::App& app, Action& action);
void add_caption(CLI::App& app, Action& action);
void add_sql(CLI::App& app, Action& action);
void add_clip_commands(CLI::App& app, Action& action);  // tokenize, embed, score
void add_describe(CLI::App& app, Action& action);
void add_download(CLI::App& app, Action& action);
void add_synth(CLI::App& app, Action& action);
void add_eval(CLI::App& app, Action& action);
void add_tune(CLI::App& app, Action& action);
void add_rate(CLI::App& app, Action& action);   // serve, report
void add_queue(CLI::App& app, Action& action);  // queue init|status|retry-failed, worker

}  // namespace capforge::cli
