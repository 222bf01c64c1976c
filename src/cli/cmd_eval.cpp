// capforge eval --pred OUT --refs REFS: COCO caption metrics (BLEU, ROUGE-L, CIDEr-D) of the new
// and the original captions, CLIP scores, length and vocabulary statistics, an HTML report.
#include <fmt/format.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>

#include "capforge/env.h"
#include "cli/captioner_options.h"
#include "cli/common.h"
#include "cli/out_guard.h"
#include "core/log.h"
#include "eval/evaluate.h"

namespace fs = std::filesystem;

namespace capforge::cli {

namespace {

struct EvalOptions {
  eval::EvalSources src;
  eval::EvalParams params;
  std::string report_dir;
  bool json = false;
  int threads = 0;
};

int run_eval(EvalOptions& o) {
  if (o.params.clip_dir == "demo") o.params.clip_dir = (fs::path(demo_models_dir()) / "clip").string();
  if (!o.params.clip_dir.empty() && o.params.image_paths.empty())
    throw UsageError("--clip computes CLIP scores against the images, which need --images",
                     "pass the shards the captions were made from, e.g. --images data/shards");
  o.params.clip.threads = o.threads > 0 ? o.threads : default_threads();
  std::vector<eval::EvalRow> rows;
  try {
    rows = eval::load_eval_rows(o.src);
  } catch (const std::exception& e) {
    throw UsageError(e.what(),
                     "--pred takes caption outputs (parquet); --refs COCO annotations (.json) or a table "
                     "with --refs-col and --refs-key-col");
  }
  if (rows.empty()) throw UsageError("no predictions in " + o.src.pred_paths.front());
  eval::ReportData report;
  report.title = "capforge eval";
  report.inputs.push_back("predictions: " + fmt::format("{}", fmt::join(o.src.pred_paths, ", ")));
  if (!o.src.refs_path.empty()) report.inputs.push_back("references: " + o.src.refs_path);
  auto res = eval::evaluate(rows, o.params, o.report_dir.empty() ? nullptr : &report);
  if (!o.src.refs_path.empty() && res.with_refs == 0)
    warn("no prediction key matched a reference key (--key-col {} vs --refs-key-col {})", o.src.key_col,
         o.src.refs_key_col);
  Json j = res.to_json();
  if (!o.report_dir.empty()) {
    std::string path = (fs::path(o.report_dir) / "report.html").string();
    std::vector<std::string> ins = o.src.pred_paths;
    ins.push_back(o.src.refs_path);
    refuse_files_on_inputs(ins, {path, path + ".partial"});
    env().make_dirs(o.report_dir);
    std::string tmp = path + ".partial";  // renamed into place: a reader never sees half a report
    env().write_file(tmp, eval::render_report(report));
    fs::rename(tmp, path);
    j["report"] = path;
  }
  if (o.json) {
    std::printf("%s\n", j.dump(-1, ' ', false, Json::error_handler_t::replace).c_str());
    return 0;
  }
  auto table = eval::summary_table(res);
  // columns as wide as their widest cell, so every row lines up whatever its values
  int wn = 28, wre = 12, worg = 12;
  for (auto& [name, re, org] : table) {
    wn = std::max(wn, (int)name.size());
    wre = std::max(wre, (int)re.size());
    worg = std::max(worg, (int)org.size());
  }
  std::printf("%-*s %*s %*s\n", wn, "", wre, "re", worg, "org");
  for (auto& [name, re, org] : table)
    std::printf("%-*s %*s %*s\n", wn, name.c_str(), wre, re.c_str(), worg, org.c_str());
  std::string st;
  for (auto& [s, n] : res.statuses) st += fmt::format("{}{} {}", st.empty() ? "" : ", ", s, n);
  std::printf("status: %s\n", st.c_str());
  if (!res.clip_source.empty()) std::printf("CLIP scores: %s\n", res.clip_source.c_str());
  if (j.contains("report")) std::printf("report: %s\n", j["report"].get<std::string>().c_str());
  return 0;
}

}  // namespace

void add_eval(CLI::App& app, Action& action) {
  auto o = std::make_shared<EvalOptions>();
  auto* cmd =
      app.add_subcommand("eval",
                         "Score captions against references as the COCO caption toolkit does (BLEU-1..4, "
                         "ROUGE-L, CIDEr-D), new vs original, with CLIP, length and vocabulary statistics");
  cmd->add_option("--pred", o->src.pred_paths,
                  "caption outputs (parquet, CSV or JSONL; files or directories)")
      ->required();
  cmd->add_option(
      "--refs", o->src.refs_path,
      "reference captions: COCO annotations .json, or a table (parquet/CSV/JSONL; may be the --pred "
      "files themselves) with --refs-col");
  cmd->add_option("--pred-col", o->src.pred_col, "column with the captions to score")->capture_default_str();
  cmd->add_option("--org-col", o->src.org_col, "column with the original captions")->capture_default_str();
  cmd->add_option("--key-col", o->src.key_col, "key column of --pred")->capture_default_str();
  cmd->add_option("--refs-col", o->src.refs_col, "table refs: a text column or a list of texts")
      ->capture_default_str();
  cmd->add_option("--refs-key-col", o->src.refs_key_col, "table refs: key column")->capture_default_str();
  cmd->add_option("--clip", o->params.clip_dir,
                  "compute CLIP scores with this model dir (`demo`: the demo CLIP)");
  cmd->add_option("--images", o->params.image_paths,
                  "shards with the images, matched by key (CLIP, thumbnails)");
  cmd->add_option("--threads", o->threads, "CPU threads for --clip (0: the CPUs this process may use)")
      ->capture_default_str()
      ->check(threads_count());
  cmd->add_flag("--json", o->json, "print the results as one JSON object");
  cmd->add_option("--report", o->report_dir, "write DIR/report.html: charts and a gallery, one offline file");
  cmd->add_option("--gallery", o->params.gallery, "samples shown in the report")
      ->capture_default_str()
      ->check(int_range(0, 100000));
  cmd->callback([o, &action] { action = [o] { return run_eval(*o); }; });
}

}  // namespace capforge::cli
