#include "rate/tables.h"

#include <fmt/format.h>

#include <cmath>
#include <set>

namespace capforge::rate {

MeanSd mean_sd(const std::vector<double>& v) {
  MeanSd m;
  m.n = v.size();
  if (v.empty()) return m;
  for (double x : v) m.mean += x;
  m.mean /= (double)v.size();
  if (v.size() < 2) return m;
  double ss = 0;
  for (double x : v) ss += (x - m.mean) * (x - m.mean);
  m.sd = std::sqrt(ss / (double)(v.size() - 1));
  return m;
}

StudyTables summarize(const std::vector<RatingRow>& rows) {
  StudyTables t;
  std::map<std::string, std::vector<double>> tr, be, tr1, be1;
  std::set<std::string> raters;
  for (auto& r : rows) {
    raters.insert(r.rater);
    tr[r.source].push_back(r.score);
    be[r.believed].push_back(r.score);
    if (r.score > 1) {
      tr1[r.source].push_back(r.score);
      be1[r.believed].push_back(r.score);
    }
    bool judged_human = r.believed == "human";
    if (r.source == "ai") t.ai_rated++, t.ai_judged_human += judged_human;
    if (r.source == "human") t.human_rated++, t.human_judged_human += judged_human;
  }
  for (const char* k : {"human", "ai"}) {
    t.by_true[k] = mean_sd(tr[k]);
    t.by_believed[k] = mean_sd(be[k]);
    t.by_true_above_1[k] = mean_sd(tr1[k]);
    t.by_believed_above_1[k] = mean_sd(be1[k]);
  }
  t.ratings = rows.size();
  t.raters = raters.size();
  return t;
}

namespace {

Json table_json(const std::map<std::string, MeanSd>& m) {
  Json j = Json::object();
  for (auto& [k, v] : m) j[k] = {{"n", v.n}, {"mean", v.mean}, {"sd", v.sd}};
  return j;
}

double pct(size_t a, size_t b) { return b ? 100.0 * (double)a / (double)b : 0.0; }

void table(std::string& out, const std::string& title, const std::string& what,
           const std::map<std::string, MeanSd>& m) {
  out += fmt::format("{}\n  {:<22} {:>6} {:>14}\n", title, what, "n", "rating");
  for (auto [k, label] : {std::pair{"human", "human"}, std::pair{"ai", "AI"}}) {
    auto& v = m.at(k);
    std::string cell = v.n ? fmt::format("{:.2f} ± {:.2f}", v.mean, v.sd) : "-";
    out += fmt::format("  {:<22} {:>6} {:>14}\n", label, v.n, cell);
  }
  out += "\n";
}

std::string csv_cell(const std::string& s) {
  std::string v = s;
  if (!v.empty() &&
      (v[0] == '=' || v[0] == '+' || v[0] == '-' || v[0] == '@' || v[0] == '\t' || v[0] == '\r'))
    v = "'" + v;
  if (v.find_first_of(",\"\r\n") == std::string::npos) return v;
  std::string q = "\"";
  for (char c : v) {
    if (c == '"') q += '"';
    q += c;
  }
  return q + "\"";
}

}  // namespace

Json StudyTables::to_json() const {
  return {{"ratings", ratings},
          {"raters", raters},
          {"by_true_source", table_json(by_true)},
          {"by_believed_source", table_json(by_believed)},
          {"by_true_source_excluding_0_1", table_json(by_true_above_1)},
          {"by_believed_source_excluding_0_1", table_json(by_believed_above_1)},
          {"ai_captions_rated", ai_rated},
          {"ai_judged_human", ai_judged_human},
          {"ai_judged_human_pct", pct(ai_judged_human, ai_rated)},
          {"human_captions_rated", human_rated},
          {"human_judged_human", human_judged_human},
          {"human_judged_human_pct", pct(human_judged_human, human_rated)}};
}

std::string format_tables(const StudyTables& t) {
  std::string out =
      fmt::format("{} ratings by {} raters (scores 0-5, mean ± stdev)\n\n", t.ratings, t.raters);
  table(out, "By true source", "caption written by", t.by_true);
  table(out, "By believed source", "rater believed", t.by_believed);
  table(out, "By true source, excluding ratings 0-1", "caption written by", t.by_true_above_1);
  table(out, "By believed source, excluding ratings 0-1", "rater believed", t.by_believed_above_1);
  out += fmt::format("AI captions judged human:    {:.1f}% ({} of {})\n", pct(t.ai_judged_human, t.ai_rated),
                     t.ai_judged_human, t.ai_rated);
  out += fmt::format("human captions judged human: {:.1f}% ({} of {})\n",
                     pct(t.human_judged_human, t.human_rated), t.human_judged_human, t.human_rated);
  return out;
}

std::string ratings_csv(const std::vector<RatingRow>& rows) {
  std::string out = "rater,key,item_id,true_source,origin,believed_source,score,rated_at,caption\r\n";
  for (auto& r : rows)
    out += fmt::format("{},{},{},{},{},{},{},{:.3f},{}\r\n", csv_cell(r.rater), csv_cell(r.key), r.item_id,
                       r.source, r.origin, r.believed, r.score, r.rated_at, csv_cell(r.caption));
  return out;
}

}  // namespace capforge::rate
