#include <CLI/CLI.hpp>

#include <cstdio>

#include "capforge/version.h"
#include "cli/common.h"
#include "core/log.h"

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

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    if (rc == 0) return 0;  // --help, --version
    std::fprintf(stderr, "hint: run `capforge --help` or `capforge <command> --help`\n");
    return 2;  // bad usage, whatever CLI11's own code for it
  }
  logging::init(log_json ? logging::Format::json : logging::Format::text, verbose, quiet);
  cli::install_debug_faults();
  try {
    return action ? action() : 0;
  } catch (const cli::UsageError& e) {
    spdlog::error("{}", e.what());
    if (!e.hint.empty()) std::fprintf(stderr, "hint: %s\n", e.hint.c_str());
    return 2;
  } catch (const std::exception& e) {
    spdlog::error("{}", e.what());
    return 1;
  }
}
