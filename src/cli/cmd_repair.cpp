// capforge repair --pred OUT... --out NEW [--col re_caption]: repairs one text column of existing
// output sets (a caption run's parquet files) with a repair model into a new output set: the same
// file names, every row and column in order, the column replaced by the repaired text, plus
// COL_unrepaired, COL_repair_status and COL_repair_note after the last column. Only the edit guard
// applies (no images). The inputs are only read (docs/repair.md).
#include <fmt/format.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <map>
#include <set>

#include "capforge/env.h"
#include "cli/common.h"
#include "cli/out_guard.h"
#include "cli/repair_options.h"
#include "core/log.h"
#include "io/duckdb_util.h"

namespace fs = std::filesystem;

namespace capforge::cli {

namespace {

struct RepairCmdOptions {
  std::vector<std::string> pred;
  std::string out, col = "re_caption";
  RepairCli rm;
  int threads = 0, batch_size = 64;
};

struct Counts {
  int64_t rows = 0, null = 0;
  std::map<std::string, int64_t> by;  // repair status -> rows
};

// The parquet files of the --pred arguments: a directory's top-level *.parquet (sorted), or a file.
std::vector<std::string> pred_files(const std::vector<std::string>& args) {
  std::vector<std::string> out;
  for (auto& a : args) {
    std::error_code ec;
    if (fs::is_directory(a, ec)) {
      std::vector<std::string> found;
      for (auto& e : fs::directory_iterator(a, ec))
        if (e.is_regular_file() && e.path().extension() == ".parquet") found.push_back(e.path().string());
      if (found.empty())
        throw UsageError("--pred " + a + " holds no .parquet files", "pass a caption run's --out directory");
      std::sort(found.begin(), found.end());
      out.insert(out.end(), found.begin(), found.end());
    } else if (!fs::exists(a, ec)) {
      throw UsageError("--pred " + a + " does not exist");
    } else if (fs::path(a).extension() != ".parquet") {
      throw UsageError("--pred " + a + " is not a parquet file",
                       "repair reads the parquet files of an output set");
    } else {
      out.push_back(a);
    }
  }
  return out;
}

// Refuses an --out that is an input directory or lies inside one, and output files that are
// input files or share a name.
void check_out(const RepairCmdOptions& o, const std::vector<std::string>& files) {
  std::error_code ec;
  fs::path out = fs::weakly_canonical(fs::absolute(o.out), ec);
  for (auto& a : o.pred) {
    if (!fs::is_directory(a, ec)) continue;
    fs::path in = fs::weakly_canonical(fs::absolute(a), ec);
    auto rel = out.lexically_relative(in);
    if (!rel.empty() && *rel.begin() != "..")
      throw UsageError(fmt::format("--out {} is {} input {}: inputs are never modified", o.out,
                                   rel == "." ? "the" : "inside the", a),
                       "write the repaired set to a new directory");
  }
  std::set<std::string> names;
  std::vector<ShardInput> inputs;
  std::vector<std::string> outputs;
  for (auto& f : files) {
    std::string name = fs::path(f).filename().string();
    if (!names.insert(name).second)
      throw UsageError("two inputs are both named " + name + ": their outputs would collide",
                       "repair them into separate --out directories");
    inputs.push_back({f, name, InputFormat::parquet});
    outputs.push_back((fs::path(o.out) / name).string());
  }
  refuse_outputs_on_inputs(o.pred, inputs, o.out, outputs);
}

std::string source(const std::string& file) {
  return "read_parquet(" + duck::quote_string(file) + ", file_row_number = true)";
}

// --col must be a text column of every file, and the new columns must not be there yet.
void check_columns(duck::Database& db, const RepairCmdOptions& o, const std::vector<std::string>& files) {
  for (auto& f : files) {
    std::map<std::string, std::string> types;
    std::string names;
    for (auto& r : db.rows("SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM read_parquet(" +
                           duck::quote_string(f) + "))")) {
      types[r[0].value_or("")] = r[1].value_or("");
      names += (names.empty() ? "" : ", ") + r[0].value_or("");
    }
    auto it = types.find(o.col);
    if (it == types.end())
      throw UsageError(fmt::format("{} has no column '{}' (--col)", f, o.col), "its columns: " + names);
    if (it->second != "VARCHAR")
      throw UsageError(fmt::format("--col {} is {} in {}, not text", o.col, it->second, f));
    for (const char* suffix : {"_unrepaired", "_repair_status", "_repair_note"})
      if (types.count(o.col + suffix))
        throw UsageError(
            fmt::format("{} already has a column {}{}: it was repaired before", f, o.col, suffix),
            "repair the original output set, or name another --col");
    if (types.count("file_row_number"))
      throw UsageError(f + " has a column named file_row_number, which repair uses to keep the row order");
  }
}

// Repairs one file into `final_path`. Returns false when interrupted (nothing published).
bool repair_file(const RepairCmdOptions& o, const std::string& file, const std::string& final_path,
                 Repairer& repairer, Counts& counts, const std::atomic<bool>* cancel) {
  duck::Database db(2, "1GB");
  std::vector<std::optional<std::string>> before;
  {
    duck::Stream s(
        db, "SELECT " + duck::quote_ident(o.col) + " FROM " + source(file) + " ORDER BY file_row_number");
    while (s.next_chunk())
      for (size_t r = 0; r < s.rows(); ++r) {
        auto v = s.str(0, r);
        before.push_back(v ? std::optional<std::string>(std::string(*v)) : std::nullopt);
      }
  }
  std::vector<size_t> todo;
  for (size_t i = 0; i < before.size(); ++i)
    if (before[i]) todo.push_back(i);
  std::vector<std::optional<std::string>> text = before;
  std::vector<std::string> status(before.size()), note(before.size());
  auto last = std::chrono::steady_clock::now();
  for (size_t k = 0; k < todo.size(); k += (size_t)o.batch_size) {
    std::vector<std::string> batch;
    for (size_t j = k; j < todo.size() && j < k + (size_t)o.batch_size; ++j)
      batch.push_back(*before[todo[j]]);
    std::vector<RepairOutput> outs;
    try {
      outs = repairer.repair(batch);
    } catch (const std::exception& e) {  // the engine broke: these rows keep their text, flagged
      outs.assign(batch.size(), RepairOutput{});
      for (auto& x : outs) x.error = e.what();
    }
    if (cancel && cancel->load()) return false;
    outs.resize(batch.size());
    for (size_t j = 0; j < batch.size(); ++j) {
      size_t i = todo[k + j];
      RepairVerdict v = judge_repair(batch[j], outs[j], o.rm.guard);
      status[i] = v.status;
      note[i] = v.note;
      if (v.status == kRepaired) text[i] = outs[j].text;
      counts.by[v.status]++;
    }
    if (std::chrono::steady_clock::now() - last > std::chrono::seconds(5)) {
      last = std::chrono::steady_clock::now();
      info("repair {}: {}/{} captions", fs::path(file).filename().string(),
           std::min(k + batch.size(), todo.size()), todo.size());
    }
  }
  counts.rows += (int64_t)before.size();
  counts.null += (int64_t)(before.size() - todo.size());

  db.exec("CREATE TABLE r (idx BIGINT, v VARCHAR, u VARCHAR, st VARCHAR, note VARCHAR)");
  duckdb_appender app = nullptr;
  if (duckdb_appender_create(db.conn(), nullptr, "r", &app) != DuckDBSuccess)
    throw std::runtime_error("cannot create DuckDB appender");
  auto str = [&](const std::string* v) {
    return v ? duckdb_append_varchar_length(app, v->data(), v->size()) : duckdb_append_null(app);
  };
  bool ok = true;
  for (size_t i = 0; ok && i < before.size(); ++i) {
    bool done = !status[i].empty();
    ok = duckdb_appender_begin_row(app) == DuckDBSuccess &&
         duckdb_append_int64(app, (int64_t)i) == DuckDBSuccess &&
         str(text[i] ? &*text[i] : nullptr) == DuckDBSuccess &&
         str(done ? &*before[i] : nullptr) == DuckDBSuccess &&
         str(done ? &status[i] : nullptr) == DuckDBSuccess &&
         str(note[i].empty() ? nullptr : &note[i]) == DuckDBSuccess &&
         duckdb_appender_end_row(app) == DuckDBSuccess;
  }
  ok = ok && duckdb_appender_flush(app) == DuckDBSuccess;
  std::string app_error = ok ? "" : (duckdb_appender_error(app) ? duckdb_appender_error(app) : "unknown");
  duckdb_appender_destroy(&app);
  if (!ok) throw std::runtime_error(fmt::format("cannot buffer rows for {}: {}", final_path, app_error));

  std::string c = duck::quote_ident(o.col);
  std::string tmp = temp_path_for(final_path);
  try {
    db.exec(
        fmt::format("COPY (SELECT t.* EXCLUDE (file_row_number) REPLACE (r.v AS {0}), r.u AS {1}, r.st AS "
                    "{2}, r.note AS {3} "
                    "FROM {4} t JOIN r ON t.file_row_number = r.idx ORDER BY t.file_row_number) TO {5} "
                    "(FORMAT parquet, COMPRESSION zstd)",
                    c, duck::quote_ident(o.col + "_unrepaired"), duck::quote_ident(o.col + "_repair_status"),
                    duck::quote_ident(o.col + "_repair_note"), source(file), duck::quote_string(tmp)));
    commit_file(tmp, final_path);
  } catch (const std::exception& e) {
    env().remove_file(tmp);
    throw std::runtime_error(fmt::format("cannot write {}: {}", final_path, e.what()));
  }
  return true;
}

int run_repair(RepairCmdOptions& o, CLI::App* cmd) {
  if (o.threads <= 0) o.threads = default_threads();
  resolve_repair_options(o.rm, cmd, "none", o.threads);
  auto files = pred_files(o.pred);
  check_out(o, files);
  {
    duck::Database db;
    check_columns(db, o, files);
  }
  auto model = load_repair_model_checked(o.rm);  // a broken model stops before any file is written
  const std::atomic<bool>* cancel = install_interrupt_handler(
      "\ninterrupted: stopping after the captions in flight; files already written stay (press Ctrl-C again "
      "to quit now)\n");
  RepairParams rp = o.rm.params;
  rp.cancel = cancel;
  std::unique_ptr<Repairer> repairer;
  try {
    repairer = std::make_unique<Repairer>(model, rp);
  } catch (const std::invalid_argument& e) {
    throw UsageError(e.what(), "see `capforge repair --help`");
  }
  env().make_dirs(o.out);
  if (int n = remove_stale_temp_files(o.out)) info("removed {} temp file(s) left by an interrupted run", n);
  Counts counts;
  auto t0 = std::chrono::steady_clock::now();
  bool interrupted = false;
  for (size_t i = 0; i < files.size() && !interrupted; ++i) {
    std::string name = fs::path(files[i]).filename().string();
    interrupted = !repair_file(o, files[i], (fs::path(o.out) / name).string(), *repairer, counts, cancel);
    if (!interrupted) info("[{}/{}] {} repaired", i + 1, files.size(), name);
  }
  remove_own_temp_dir(o.out);
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  auto n = [&](const char* s) { return counts.by.count(s) ? counts.by.at(s) : 0; };
  logging::event("summary", {{"rows", counts.rows},
                             {"repaired", n(kRepaired)},
                             {"unchanged", n(kUnchanged)},
                             {"rejected_drift", n(kRejectedDrift)},
                             {"failed", n(kRepairFailed)},
                             {"skipped", n(kSkipped)},
                             {"null", counts.null},
                             {"seconds", secs}});
  if (logging::format() != logging::Format::json)
    std::fprintf(stderr,
                 "summary: %lld rows, %lld repaired, %lld unchanged, %lld rejected_drift, %lld failed, "
                 "%lld skipped (blank) (%lld null, not repaired) in %.1fs; outputs in %s\n",
                 (long long)counts.rows, (long long)n(kRepaired), (long long)n(kUnchanged),
                 (long long)n(kRejectedDrift), (long long)n(kRepairFailed), (long long)n(kSkipped),
                 (long long)counts.null, secs, o.out.c_str());
  return interrupted ? 130 : 0;
}

}  // namespace

void add_repair(CLI::App& app, Action& action) {
  auto o = std::make_shared<RepairCmdOptions>();
  auto* cmd = app.add_subcommand(
      "repair", "Repair a text column of existing output sets with a repair model into a new output set");
  cmd->add_option("--pred", o->pred, "output sets: a caption run's --out directories or parquet files")
      ->required()
      ->expected(1)
      ->allow_extra_args(false)
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  cmd->add_option("--out", o->out, "directory for the new output set (same file names)")->required();
  cmd->add_option("--col", o->col, "the text column to repair")->capture_default_str();
  cmd->add_option("--repair-model", o->rm.params.model,
                  "the repair model GGUF (T5 / Flan-T5 or decoder-only)")
      ->required();
  add_repair_model_options(cmd, o->rm, "Repair model (docs/repair.md)", /*with_model=*/false,
                           /*with_clip_guard=*/false);
  cmd->add_option("--threads", o->threads, "threads for the model (0: the CPUs this process may use)")
      ->capture_default_str()
      ->check(threads_count());
  cmd->add_option("--batch-size", o->batch_size, "captions per repair call")
      ->capture_default_str()
      ->check(int_range(1, 65536));
  cmd->callback([o, cmd, &action] { action = [o, cmd] { return run_repair(*o, cmd); }; });
}

}  // namespace capforge::cli
