// capforge filter IN_DIR --top-fraction F --out NEW_DIR: DataComp's global CLIP-score quantile, as a
// second pass over a finished output set. The threshold is one DuckDB quantile_disc over every
// shard's successful, scored rows (the whole run, not per shard); each {shard}.parquet is rewritten
// into NEW_DIR with the rows below it marked filtered (or left out), and its stats updated.
#include <fmt/format.h>

#include <algorithm>
#include <filesystem>

#include "capforge/env.h"
#include "cli/common.h"
#include "cli/filter_options.h"
#include "core/log.h"
#include "io/duckdb_util.h"

namespace fs = std::filesystem;

namespace capforge::cli {

namespace {

struct FilterCmdOptions {
  std::string in, out, by = "org_clip_score";
  double top_fraction = 0;
  bool drop = false;
};

std::vector<fs::path> shard_parquets(const std::string& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) throw UsageError(dir + " is not a directory", "pass a caption run's --out");
  std::vector<fs::path> out;
  for (auto& e : fs::directory_iterator(dir, ec))
    if (e.is_regular_file() && e.path().extension() == ".parquet" && e.path().filename().string()[0] != '.')
      out.push_back(e.path());
  std::sort(out.begin(), out.end());
  if (out.empty())
    throw UsageError("no {shard}.parquet in " + dir, "filter rewrites a caption run's parquet outputs");
  return out;
}

std::string file_list(const std::vector<fs::path>& files) {
  std::string s = "[";
  for (auto& f : files) s += (s.size() > 1 ? ", " : "") + duck::quote_string(f.string());
  return s + "]";
}

// Atomic and durable (temp file, fsync, rename, fsync the directory).
void write_json(const fs::path& path, const Json& j) { write_file_atomic(path.string(), j.dump(2) + "\n"); }

// --out may be new, empty, or an interrupted run's: only files this command writes (the shards'
// parquet and stats, temp files) and no filter.json, which is written last. Such a rerun redoes
// every shard; the outputs are the same, so it is idempotent.
void check_out_dir(const std::string& out, const std::vector<fs::path>& files) {
  std::error_code ec;
  if (!fs::exists(out, ec)) return;
  if (!fs::is_directory(out, ec)) throw UsageError("--out " + out + " is not a directory", "pass a new one");
  if (fs::exists(fs::path(out) / "filter.json", ec))
    throw UsageError("--out " + out + " already holds a finished filter run (filter.json)",
                     "pass a new or empty directory");
  std::vector<std::string> ours = {kTempDirName};
  for (auto& f : files)
    ours.push_back(f.filename().string()), ours.push_back(f.stem().string() + "_stats.json");
  for (auto& e : fs::directory_iterator(out, ec)) {
    std::string name = e.path().filename().string();
    if (std::find(ours.begin(), ours.end(), name) == ours.end())
      throw UsageError("--out " + out + " is not empty (" + name + " is not a filter output)",
                       "pass a new or empty directory, or an interrupted filter run's --out");
  }
}

int run_filter(const FilterCmdOptions& o) {
  auto files = shard_parquets(o.in);
  std::error_code ec;
  if (fs::weakly_canonical(o.in, ec) == fs::weakly_canonical(o.out, ec))
    throw UsageError("--out is the input directory", "filter never changes its input: pass a new --out");
  check_out_dir(o.out, files);
  duck::Database db;
  const std::string all = "read_parquet(" + file_list(files) + ", union_by_name = true)";
  const std::string col = duck::quote_ident(o.by);
  std::string type;
  for (auto& r : db.rows("SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM " + all + ")"))
    if (r[0] && *r[0] == o.by) type = r[1].value_or("");
  static const std::vector<std::string> kNumeric = {"DOUBLE",   "FLOAT",   "REAL",    "INTEGER", "BIGINT",
                                                    "SMALLINT", "TINYINT", "HUGEINT", "UBIGINT", "UINTEGER"};
  if (type.empty() ||
      (std::find(kNumeric.begin(), kNumeric.end(), type) == kNumeric.end() && type.rfind("DECIMAL", 0) != 0))
    throw UsageError(type.empty() ? fmt::format("the outputs have no column {}", o.by)
                                  : fmt::format("column {} is {}, not a number", o.by, type),
                     "--by names a score column, e.g. org_clip_score or re_clip_score");
  // the one threshold of the whole run, kept in a table so that no text round trip changes it
  db.exec(fmt::format(
      "CREATE TABLE thr AS SELECT quantile_disc(CAST({0} AS DOUBLE), 1 - CAST({1} AS DOUBLE)) AS t, "
      "count(*) AS n FROM {2} WHERE status = 'success' AND {0} IS NOT NULL",
      col, fmt::format("{:.17g}", o.top_fraction), all));
  auto thr = db.rows("SELECT t, n FROM thr");
  if (thr.empty() || !thr[0][0])
    throw UsageError(fmt::format("no successful row has a {} to rank by", o.by), "run caption with --rank");
  const std::string below =
      fmt::format("(status = 'success' AND ({0} IS NULL OR CAST({0} AS DOUBLE) < (SELECT t FROM thr)))", col);
  // --by is a column's name (checked above) but may hold any character: a quoted literal here
  const std::string reason = fmt::format(
      "{} || coalesce(printf('%.4f', CAST({} AS DOUBLE)), 'none') || "
      "printf(' < %.4f, top {:g}%%)', (SELECT t FROM thr))",
      duck::quote_string("filtered: top_fraction (" + o.by + " "), col, o.top_fraction * 100);
  fs::create_directories(o.out);
  remove_stale_temp_files(o.out);
  int64_t total_kept = 0, total_filtered = 0;
  for (auto& f : files) {
    const std::string src = "read_parquet(" + duck::quote_string(f.string()) + ")";
    auto counts = db.rows(fmt::format("SELECT count(*) FILTER (WHERE {}) FROM {}", below, src));
    int64_t newly = std::stoll(counts[0][0].value_or("0"));
    fs::path dst = fs::path(o.out) / f.filename();
    const std::string tmp = temp_path_for(dst.string());
    // coalesce: a row whose status is NULL is not below the threshold, and is kept
    std::string where =
        o.drop ? fmt::format(" WHERE NOT coalesce({}, false) AND status IS DISTINCT FROM 'filtered'", below)
               : "";
    db.exec(fmt::format(
        "COPY (SELECT * REPLACE (CASE WHEN {0} THEN 'filtered' ELSE status END AS status, CASE WHEN {0} THEN "
        "{1} || coalesce('; ' || error_message, '') ELSE error_message END AS error_message) FROM {2}{3}) "
        "TO {4} (FORMAT parquet)",
        below, reason, src, where, duck::quote_string(tmp)));
    commit_file(tmp, dst.string());
    total_filtered += newly;
    total_kept += std::stoll(db.rows(fmt::format("SELECT count(*) FROM {} WHERE status = 'success'",
                                                 duck::quote_string(dst.string())))[0][0]
                                 .value_or("0"));
    // the shard's stats, counts moved from success to filtered
    fs::path stats_in = f.parent_path() / (f.stem().string() + "_stats.json");
    if (fs::exists(stats_in)) {
      std::string text;
      if (read_input_file(stats_in.string(), text).empty()) {
        Json st = Json::parse(text, nullptr, false);
        if (st.is_object()) {
          st["successes"] = st.value("successes", (int64_t)0) - newly;
          st["filtered"] = st.value("filtered", (int64_t)0) + newly;
          Json& sd = st["status_dict"];
          if (!sd.is_object()) sd = Json::object();
          sd["success"] = sd.value("success", (int64_t)0) - newly;
          sd["filtered"] = sd.value("filtered", (int64_t)0) + newly;
          Json& fr = st["filter_reasons"];
          if (!fr.is_object()) fr = Json::object();
          fr["top_fraction"] = fr.value("top_fraction", (int64_t)0) + newly;
          write_json(fs::path(o.out) / stats_in.filename(), st);
        }
      }
    }
  }
  auto t = db.rows("SELECT CAST(t AS VARCHAR), n FROM thr")[0];
  Json summary = {{"by", o.by},
                  {"top_fraction", o.top_fraction},
                  {"threshold", std::stod(t[0].value_or("0"))},
                  {"scored", std::stoll(t[1].value_or("0"))},
                  {"kept", total_kept},
                  {"filtered", total_filtered},
                  {"shards", files.size()},
                  {"dropped", o.drop}};
  write_json(fs::path(o.out) / "filter.json", summary);  // last: marks the run finished
  remove_own_temp_dir(o.out);
  logging::event("filter", summary);
  info("{} >= {} (top {:g}% of {} scored rows over {} shard(s)): kept {}, filtered {}; outputs in {}", o.by,
       *t[0], o.top_fraction * 100, *t[1], files.size(), total_kept, total_filtered, o.out);
  return 0;
}

}  // namespace

void add_filter_command(CLI::App& app, std::function<int()>& action) {
  auto o = std::make_shared<FilterCmdOptions>();
  auto* cmd = app.add_subcommand(
      "filter",
      "Keep the top fraction of a finished run by a score (DataComp's global CLIP-score quantile); "
      "rewrites its parquet outputs into a new directory with the rest marked filtered");
  cmd->add_option("in", o->in, "a caption run's output directory ({shard}.parquet)")->required();
  cmd->add_option("--out", o->out,
                  "new output directory (new, empty, or an interrupted filter run's, which is redone)")
      ->required();
  cmd->add_option("--top-fraction", o->top_fraction,
                  "keep successful rows whose score is >= the run-wide quantile_disc at 1 - F (e.g. 0.3)")
      ->required()
      ->check(number_range(0, 1, /*lo_open=*/true));
  cmd->add_option("--by", o->by, "the score column")->capture_default_str();
  cmd->add_flag("--drop-filtered", o->drop, "leave filtered rows (these and earlier ones) out");
  cmd->callback([o, &action] { action = [o] { return run_filter(*o); }; });
}

}  // namespace capforge::cli
