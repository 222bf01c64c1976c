// The curation filter flags of `capforge caption` (src/curate/filters.h holds the criteria).
#pragma once

#include <CLI/CLI.hpp>

#include <functional>
#include <string>

#include "capforge/sample.h"
#include "curate/filters.h"

namespace capforge::cli {

struct FilterCli {
  std::string preset = "none";  // --filter: none or basic
  FilterParams params;
  bool drop = false;  // --drop-filtered
};

void add_filter_options(CLI::App* cmd, FilterCli& f);
// Fills the criteria --filter's preset sets and no flag of its own overrode.
void resolve_filter_options(FilterCli& f, CLI::App* cmd);
// The settings that change the output (for the run's config fingerprint); null when none are set.
Json filter_fingerprint(const FilterCli& f);

// `capforge filter`: the run-wide top-fraction pass over finished outputs (cmd_filter.cpp).
void add_filter_command(CLI::App& app, std::function<int()>& action);

}  // namespace capforge::cli
