#include "io/schema.h"

#include "core/text.h"

namespace capforge {

const std::vector<ColumnSpec>& canonical_columns(OutputSchema schema) {
  static const std::vector<ColumnSpec> samples = {
      {"key", "VARCHAR"}, {"url", "VARCHAR"}, {"caption", "VARCHAR"}};
  static const std::vector<ColumnSpec> caption = {
      {"key", "VARCHAR"},
      {"url", "VARCHAR"},
      {"org_caption", "VARCHAR"},
      {"re_caption", "VARCHAR"},
      {"candidates", "STRUCT(text VARCHAR, score DOUBLE, flags VARCHAR[])[]"},
      {"re_clip_score", "DOUBLE"},
      {"org_clip_score", "DOUBLE"},
      {"re_length", "INTEGER"},
      {"org_length", "INTEGER"},
      {"sha256", "VARCHAR"},
      {"width", "INTEGER"},
      {"height", "INTEGER"},
      {"status", "VARCHAR"},
      {"error_message", "VARCHAR"},
      {"captioner", "VARCHAR"},
      {"ranker", "VARCHAR"},
  };
  return schema == OutputSchema::caption ? caption : samples;
}

namespace {
Json opt(const std::optional<std::string>& v) { return v ? Json(*v) : Json(nullptr); }
Json opt(const std::optional<double>& v) { return v ? Json(*v) : Json(nullptr); }
Json nonempty(const std::string& v) { return v.empty() ? Json(nullptr) : Json(v); }
}  // namespace

Json canonical_row(const Sample& s, const WriterParams& params) {
  Json row = Json::object();
  row["key"] = s.key;
  row["url"] = nonempty(s.url);
  if (params.schema == OutputSchema::samples) {
    row["caption"] = opt(s.caption);
    return row;
  }
  row["org_caption"] = opt(s.caption);
  row["re_caption"] = opt(s.re_caption);
  Json cands = Json::array();
  for (auto& c : s.candidates)
    cands.push_back({{"text", c.text}, {"score", opt(c.score)}, {"flags", c.flags}});
  row["candidates"] = std::move(cands);
  row["re_clip_score"] = opt(s.re_clip_score);
  row["org_clip_score"] = opt(s.org_clip_score);
  row["re_length"] = s.re_caption ? Json(word_count(*s.re_caption)) : Json(nullptr);
  row["org_length"] = s.caption ? Json(word_count(*s.caption)) : Json(nullptr);
  row["sha256"] = nonempty(s.sha256);
  row["width"] = s.width > 0 ? Json(s.width) : Json(nullptr);
  row["height"] = s.height > 0 ? Json(s.height) : Json(nullptr);
  row["status"] = status_name(s.status);
  row["error_message"] = nonempty(s.error);
  row["captioner"] = params.captioner;
  row["ranker"] = nonempty(s.ranker);
  return row;
}

std::string meta_output_name(OutputSchema schema, const std::string& name) {
  for (auto& c : canonical_columns(schema))
    if (c.name == name) return "input_" + name;
  if (schema == OutputSchema::samples && name == "image") return "input_image";
  return name;
}

}  // namespace capforge
