// `capforge rate report`: the LAION-COCO study's tables from the ratings, and CSV export.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "capforge/sample.h"
#include "rate/store.h"

namespace capforge::rate {

struct MeanSd {
  size_t n = 0;
  double mean = 0, sd = 0;  // sd: sample standard deviation (n - 1); 0 when n < 2
};

struct StudyTables {
  size_t ratings = 0, raters = 0;
  // keyed by "human" / "ai"
  std::map<std::string, MeanSd> by_true, by_believed, by_true_above_1, by_believed_above_1;
  size_t ai_rated = 0, ai_judged_human = 0, human_rated = 0, human_judged_human = 0;
  Json to_json() const;
};

MeanSd mean_sd(const std::vector<double>& v);
StudyTables summarize(const std::vector<RatingRow>& rows);
// The report as aligned text tables.
std::string format_tables(const StudyTables& t);
// One row per rating (RFC 4180 quoting). A cell that a spreadsheet would run as a formula
// (starting with = + - @, tab or CR) is prefixed with ' so hostile captions stay text.
std::string ratings_csv(const std::vector<RatingRow>& rows);

}  // namespace capforge::rate
