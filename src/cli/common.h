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

// Range checks for numeric flags, with human messages ("must be an integer >= 1, got 0"). They run
// on each element of a list flag and reject text that is not a number of that kind.
CLI::Validator int_range(long long lo, long long hi);  // an integer in [lo, hi]
CLI::Validator positive_int();                         // an integer >= 1 (up to 2^31 - 1)
CLI::Validator non_negative_int();                     // an integer >= 0 (up to 2^31 - 1)
// A number in [lo, hi]; with lo_open, lo itself is refused ("> lo").
CLI::Validator number_range(double lo, double hi, bool lo_open = false);
CLI::Validator prob01();         // a number in [0, 1]
CLI::Validator threads_count();  // 0 (all cores) .. 4096
CLI::Validator port_number();    // 0 .. 65535
CLI::Validator seed_value();     // 0 .. 2^64 - 1 (no wrap-around of -1, no silent overflow)
// Seconds for a job lease: >= kMinLeaseSeconds, since heartbeats renew it every lease / 3.
inline constexpr double kMinLeaseSeconds = 1.0;
CLI::Validator lease_seconds();

// Every list option of `app` and its subcommands takes exactly one value per use (repeat the flag
// or use commas), so a list flag never swallows the positional arguments after it.
void one_value_per_use(CLI::App& app);

// "unknown command 'bogus'; the commands are: ..." when argv's command word (or the word after a
// command that requires a subcommand, like `queue`) names no command; else "".
std::string unknown_command(const CLI::App& app, int argc, char** argv);

// `--rank DIR[:K]`: K, when given, must be a positive integer (an existing DIR is taken whole).
CLI::Validator rank_spec();

// Reads a whole input file named on the command line into `bytes`. Returns "" or why not ("is a
// directory", "cannot read file: No such file or directory"); never throws.
std::string read_input_file(const std::string& path, std::string& bytes);

void add_reader_options(CLI::App* app, ReaderParams& p);
// When a column flag is set, opens the first input of each table format so that a missing or
// unusable named column is bad usage (UsageError, exit 2) before any work starts; other read errors
// are left to the run.
void check_reader_columns(const std::vector<ShardInput>& inputs, const ReaderParams& p);
void add_decode_options(CLI::App* app, DecodeParams& p);
void add_progress_option(CLI::App* app, ProgressMode& mode);
int default_threads();

// Test hook: CAPFORGE_DEBUG_FULL_DISK=PATTERN makes durable writes of matching paths fail with
// ENOSPC (the fault tests' disk-full scenario). No effect when unset.
void install_debug_faults();

// SIGINT/SIGTERM set the returned flag and print `message` (static storage; as a JSON line under
// --log-json); a second signal exits at once with 130.
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
void add_dedup(CLI::App& app, Action& action);
void add_repair(CLI::App& app, Action& action);  // cmd_repair.cpp (docs/repair.md)

}  // namespace capforge::cli
