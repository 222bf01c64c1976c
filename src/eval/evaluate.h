// `capforge eval` as a library: caption metrics for new and original captions against references,
// CLIP scores (from the table, or computed with a ranker over the images), length, vocabulary and
// status statistics, and the report's data.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "capforge/clip.h"
#include "capforge/eval.h"
#include "capforge/sample.h"
#include "eval/eval_data.h"
#include "eval/report.h"

namespace capforge::eval {

struct EvalParams {
  std::string clip_dir;  // non-empty: compute CLIP scores with this model
  ClipParams clip;
  std::vector<std::string> image_paths;  // shards with the images (matched by key)
  size_t gallery = 60;                   // report samples (failures included, up to a fifth)
};

struct EvalResult {
  size_t samples = 0, with_refs = 0, scored = 0, images_found = 0;
  std::optional<CaptionMetrics> re, org;  // over `scored` rows: successes that have references
  TextStats re_text, org_text;
  std::optional<double> re_clip_mean, org_clip_mean;
  size_t re_clip_n = 0, org_clip_n = 0;
  std::string clip_source;  // "table", the model dir, or "" (none)
  std::map<std::string, size_t> statuses;
  Json to_json() const;
};

// (metric, re, org) rows: what `eval` prints and the report's summary table.
std::vector<std::tuple<std::string, std::string, std::string>> summary_table(const EvalResult& res);

// Scores `rows` (CLIP columns are filled in place when a model is given). Throws on unreadable
// images inputs or a model that does not load; undecodable images are counted, not fatal.
EvalResult evaluate(std::vector<EvalRow>& rows, const EvalParams& params, ReportData* report = nullptr);

}  // namespace capforge::eval
