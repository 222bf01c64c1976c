// capforge's entry point: parses the command line and maps outcomes to exit codes
// (0 ok, 1 failed work, 2 bad usage, 130 interrupted).
#include <CLI/CLI.hpp>

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "capforge/version.h"
#include "cli/captioner_options.h"
#include "cli/common.h"
#include "cli/embed_options.h"
#include "cli/filter_options.h"
#include "core/cpus.h"
#include "core/log.h"
#include "core/omp_waits.h"

namespace {
const char* kHelpHint = "run `capforge --help` or `capforge <command> --help`";
// Commands that run no model: they keep libgomp's defaults (no re-exec at start).
const std::array<const char*, 9> kLight = {"inspect",  "convert", "sql",    "synth",   "rate",
                                           "download", "queue",   "filter", "tokenize"};

bool has_arg(int argc, char** argv, const char* flag) {
  for (int i = 1; i < argc; ++i)
    if (std::strcmp(argv[i], flag) == 0) return true;
  return false;
}
}  // namespace

int main(int argc, char** argv) {
  using namespace capforge;
  CLI::App app{"capforge: re-caption web-scale image-text datasets (LAION-COCO / Recap-DataComp-1B style)",
               "capforge"};
  app.require_subcommand(1);
  app.set_version_flag("--version", version_details());
  bool log_json = false, verbose = false, quiet = false;
  app.add_flag("--log-json", log_json, "log as JSON lines on stderr (machine-readable)");
  app.add_flag("-v,--verbose", verbose, "debug logging");
  app.add_flag("-q,--quiet", quiet, "warnings and errors only");
  app.fallthrough();

  cli::Action action;
  cli::add_inspect(app, action);
  cli::add_convert(app, action);
  cli::add_caption(app, action);
  cli::add_sql(app, action);
  cli::add_clip_commands(app, action);
  cli::add_describe(app, action);
  cli::add_download(app, action);
  cli::add_synth(app, action);
  cli::add_eval(app, action);
  cli::add_tune(app, action);
  cli::add_rate(app, action);
  cli::add_queue(app, action);
  cli::add_dedup(app, action);
  cli::add_repair(app, action);
  cli::add_filter_command(app, action);
  cli::add_embed_shards(app, action);
  cli::one_value_per_use(app);

  // Usage errors found while parsing are logged in the format asked for, before the flags are read.
  const bool json_asked = has_arg(argc, argv, "--log-json");
  logging::init(json_asked ? logging::Format::json : logging::Format::text);
  if (std::string unknown = cli::unknown_command(app, argc, argv);
      !unknown.empty() && !has_arg(argc, argv, "--help") && !has_arg(argc, argv, "-h") &&
      !has_arg(argc, argv, "--version")) {
    spdlog::error("{}", unknown);
    logging::hint(kHelpHint);
    return 2;
  }
  try {
    // `--max-new-tokens@detailed 128` -> `--prompt-opt detailed:max-new-tokens=128`
    std::vector<std::string> args = cli::rewrite_prompt_flags(argc, argv);
    std::reverse(args.begin(), args.end());  // CLI11 takes them last first
    app.parse(args);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help, --version
    if (json_asked)
      spdlog::error("{}", e.what());
    else
      app.exit(e);
    logging::hint(kHelpHint);
    return 2;  // bad usage, whatever CLI11's own code for it
  }
  // commands that run models: short spin-waits for the compute threads (core/omp_waits.h), by
  // re-running this process with GOMP_SPINCOUNT set before anything is done
  if (std::none_of(kLight.begin(), kLight.end(), [&](const char* c) { return app.got_subcommand(c); }))
    exec_with_short_waits(argv);
  logging::init(log_json ? logging::Format::json : logging::Format::text, verbose, quiet);
  cli::install_debug_faults();
  spdlog::debug("CPUs for default thread counts: {}", describe_cpus());
  const char* policy = std::getenv("OMP_WAIT_POLICY");
  const char* spin = std::getenv("GOMP_SPINCOUNT");
  spdlog::debug("compute threads' waits: OMP_WAIT_POLICY={} GOMP_SPINCOUNT={}", policy ? policy : "(unset)",
                spin ? spin : "(unset)");
  try {
    return action ? action() : 0;
  } catch (const cli::UsageError& e) {
    spdlog::error("{}", e.what());
    if (!e.hint.empty()) logging::hint(e.hint);
    return 2;
  } catch (const std::exception& e) {
    spdlog::error("{}", e.what());
    return 1;
  }
}
