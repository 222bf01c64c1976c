#include "io/schema.h"

#include <set>
#include <stdexcept>

#include "core/text.h"

namespace capforge {

const std::vector<ColumnSpec>& canonical_columns(OutputSchema schema) {
  static const std::vector<ColumnSpec> samples = {{"key", "VARCHAR"},
                                                  {"url", "VARCHAR"},
                                                  {"caption", "VARCHAR"},
                                                  {"status", "VARCHAR"},
                                                  {"error_message", "VARCHAR"}};
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
  static const std::vector<ColumnSpec> laion = {
      {"URL", "VARCHAR"},
      {"TEXT", "VARCHAR"},
      {"top_caption", "VARCHAR"},
      {"all_captions", "VARCHAR[]"},
      {"all_similarities", "DOUBLE[]"},
      {"WIDTH", "BIGINT"},
      {"HEIGHT", "BIGINT"},
      {"similarity", "DOUBLE"},
      {"hash", "BIGINT"},
      {"pwatermark", "DOUBLE"},
      {"punsafe", "DOUBLE"},
      {"status", "VARCHAR"},
      {"error_message", "VARCHAR"},
  };
  static const std::vector<ColumnSpec> recap = {
      {"url", "VARCHAR"},           {"re_caption", "VARCHAR"},    {"org_caption", "VARCHAR"},
      {"sha256", "VARCHAR"},        {"key", "VARCHAR"},           {"re_clip_score", "DOUBLE"},
      {"org_clip_score", "DOUBLE"}, {"re_length", "INTEGER"},     {"org_length", "INTEGER"},
      {"status", "VARCHAR"},        {"error_message", "VARCHAR"},
  };
  static const std::vector<ColumnSpec> img2dataset = {
      {"url", "VARCHAR"},    {"caption", "VARCHAR"},       {"key", "VARCHAR"},
      {"status", "VARCHAR"}, {"error_message", "VARCHAR"}, {"width", "BIGINT"},
      {"height", "BIGINT"},  {"original_width", "BIGINT"}, {"original_height", "BIGINT"},
      {"exif", "VARCHAR"},   {"sha256", "VARCHAR"},
  };
  switch (schema) {
    case OutputSchema::img2dataset:
      return img2dataset;
    case OutputSchema::samples:
      return samples;
    case OutputSchema::caption:
      return caption;
    case OutputSchema::laion_coco:
      return laion;
    case OutputSchema::recap:
      return recap;
  }
  return samples;
}

const char* schema_name(OutputSchema s) {
  switch (s) {
    case OutputSchema::samples:
      return "samples";
    case OutputSchema::caption:
      return "capforge";
    case OutputSchema::laion_coco:
      return "laion-coco";
    case OutputSchema::recap:
      return "recap";
    case OutputSchema::img2dataset:
      return "img2dataset";
  }
  return "?";
}

std::optional<OutputSchema> schema_from_name(const std::string& name) {
  for (auto s : {OutputSchema::caption, OutputSchema::laion_coco, OutputSchema::recap})
    if (name == schema_name(s)) return s;
  return std::nullopt;
}

bool passes_through(OutputSchema schema) {
  return schema == OutputSchema::samples || schema == OutputSchema::caption ||
         schema == OutputSchema::img2dataset;
}

namespace {
Json opt(const std::optional<std::string>& v) { return v ? Json(*v) : Json(nullptr); }
Json opt(const std::optional<double>& v) { return v ? Json(*v) : Json(nullptr); }
Json nonempty(const std::string& v) { return v.empty() ? Json(nullptr) : Json(v); }
Json candidates_json(const std::vector<Candidate>& candidates) {
  Json out = Json::array();
  for (auto& c : candidates) out.push_back({{"text", c.text}, {"score", opt(c.score)}, {"flags", c.flags}});
  return out;
}
}  // namespace

namespace {

// A value carried from the input's metadata, trying each name.
Json from_meta(const Sample& s, std::initializer_list<const char*> names) {
  for (const char* n : names)
    if (s.meta.contains(n)) return s.meta[n];
  return nullptr;
}

Json laion_row(const Sample& s) {
  Json row = Json::object();
  row["URL"] = nonempty(s.url);
  row["TEXT"] = opt(s.caption);
  // LAION-COCO: candidates by similarity, best first; top_caption is the first (repaired)
  Json texts = Json::array(), sims = Json::array();
  for (auto& c : s.candidates) {
    if (!c.score && !sims.empty() && !sims.back().is_null()) break;  // ranked-out ones are not listed
    texts.push_back(c.text);
    sims.push_back(opt(c.score));
  }
  if (s.re_caption && !texts.empty()) texts[0] = *s.re_caption;
  // a kept model repair was re-scored (docs/repair.md): the score belongs to the repaired text
  if (s.repair_status == "repaired" && s.re_clip_score && !sims.empty()) sims[0] = *s.re_clip_score / 100.0;
  row["top_caption"] = texts.empty() ? Json(nullptr) : texts[0];
  row["all_captions"] = std::move(texts);
  row["all_similarities"] = sims;
  Json w = from_meta(s, {"WIDTH", "width", "original_width"}),
       h = from_meta(s, {"HEIGHT", "height", "original_height"});
  row["WIDTH"] = !w.is_null() ? w : (s.width > 0 ? Json(s.width) : Json(nullptr));
  row["HEIGHT"] = !h.is_null() ? h : (s.height > 0 ? Json(s.height) : Json(nullptr));
  row["similarity"] = sims.empty() ? Json(nullptr) : sims[0];
  row["hash"] = from_meta(s, {"hash"});
  row["pwatermark"] = from_meta(s, {"pwatermark"});
  row["punsafe"] = from_meta(s, {"punsafe"});
  row["status"] = status_name(s.status);
  row["error_message"] = nonempty(s.error);
  return row;
}

Json recap_row(const Sample& s) {
  Json row = Json::object();
  row["url"] = nonempty(s.url);
  row["re_caption"] = opt(s.re_caption);
  row["org_caption"] = opt(s.caption);
  row["sha256"] = nonempty(s.sha256);
  row["key"] = s.key;
  row["re_clip_score"] = opt(s.re_clip_score);
  row["org_clip_score"] = opt(s.org_clip_score);
  row["re_length"] = s.re_caption ? Json(word_count(*s.re_caption)) : Json(nullptr);
  row["org_length"] = s.caption ? Json(word_count(*s.caption)) : Json(nullptr);
  row["status"] = status_name(s.status);
  row["error_message"] = nonempty(s.error);
  return row;
}

// The canonical columns' values, keys in canonical_columns() order.
Json base_row(const Sample& s, const WriterParams& params) {
  if (params.schema == OutputSchema::img2dataset) {
    Json row = Json::object();
    row["url"] = nonempty(s.url);
    row["caption"] = opt(s.caption);
    row["key"] = s.key;
    row["status"] = status_name(s.status);
    row["error_message"] = nonempty(s.error);
    row["width"] = s.out_width > 0 ? Json(s.out_width) : Json(nullptr);
    row["height"] = s.out_height > 0 ? Json(s.out_height) : Json(nullptr);
    row["original_width"] = s.width > 0 ? Json(s.width) : Json(nullptr);
    row["original_height"] = s.height > 0 ? Json(s.height) : Json(nullptr);
    row["exif"] = nonempty(s.exif);
    row["sha256"] = nonempty(s.sha256);
    return row;
  }
  if (params.schema == OutputSchema::laion_coco) return laion_row(s);
  if (params.schema == OutputSchema::recap) return recap_row(s);
  Json row = Json::object();
  row["key"] = s.key;
  row["url"] = nonempty(s.url);
  if (params.schema == OutputSchema::samples) {
    row["caption"] = opt(s.caption);
    // A sample that could not be read is still a row with its status. A read sample keeps the
    // status its input recorded (a converted img2dataset shard stays what it was; a converted
    // convert output does not grow an input_status), which meta_output_name then leaves out.
    auto carried = [&](const char* field) -> Json {
      auto it = s.meta.find(field);
      if (it == s.meta.end() || it->is_null()) return nullptr;
      return it->is_string() ? *it : Json(it->dump());
    };
    Json in_status = carried("status");
    row["status"] = s.ok() && !in_status.is_null() ? in_status : Json(status_name(s.status));
    Json in_error = s.ok() ? carried("error_message") : Json(nullptr);
    if (in_error.is_null())
      row["error_message"] = nonempty(s.error);
    else  // the input's message first, then ours (e.g. a key made safe): neither is lost
      row["error_message"] = s.error.empty() ? in_error : Json(in_error.get<std::string>() + "; " + s.error);
    return row;
  }
  row["org_caption"] = opt(s.caption);
  row["re_caption"] = opt(s.re_caption);
  row["candidates"] = candidates_json(s.candidates);
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

// What one column of a prompt's group holds.
enum class PromptField { caption, candidates, clip_score, length };
struct PromptColumn {
  size_t prompt;  // index into WriterParams::prompt_names
  PromptField field;
  ColumnSpec spec;
};

// The prompt columns of output_columns(), in order, with where each value comes from.
std::vector<PromptColumn> prompt_columns(const WriterParams& params) {
  std::vector<PromptColumn> out;
  if (params.schema == OutputSchema::samples || params.schema == OutputSchema::img2dataset) return out;
  for (size_t i = 0; i < params.prompt_names.size(); ++i) {
    const std::string& n = params.prompt_names[i];
    if (n.empty()) continue;
    auto add = [&](PromptField f, std::string name, const char* type) {
      out.push_back({i, f, {std::move(name), type}});
    };
    if (params.schema == OutputSchema::recap && n == "condition") {
      add(PromptField::caption, "re_caption_condition_diverse_topk", "VARCHAR");
      add(PromptField::length, "re_condition_length", "INTEGER");
      continue;
    }
    add(PromptField::caption, "caption_" + n, "VARCHAR");
    if (params.schema == OutputSchema::caption)
      add(PromptField::candidates, "candidates_" + n,
          "STRUCT(text VARCHAR, score DOUBLE, flags VARCHAR[])[]");
    add(PromptField::clip_score, "clip_score_" + n, "DOUBLE");
    add(PromptField::length, "length_" + n, "INTEGER");
  }
  return out;
}

// The safety columns of WriterParams (after the prompt columns). laion-coco has its own punsafe.
std::vector<ColumnSpec> safety_columns(const WriterParams& params) {
  std::vector<ColumnSpec> out;
  if (params.schema == OutputSchema::samples || params.schema == OutputSchema::img2dataset) return out;
  if (params.punsafe_column && params.schema != OutputSchema::laion_coco)
    out.push_back({"punsafe", "DOUBLE"});
  if (params.concept_columns) {
    out.push_back({"unsafe_concept", "VARCHAR"});
    out.push_back({"unsafe_margin", "DOUBLE"});
  }
  return out;
}

// Model repair columns (WriterParams::repair_columns; docs/repair.md), after the safety columns:
// prompt 0's pre-repair text (re_caption_unrepaired; laion-coco: top_caption_unrepaired) and
// repair_status, then per named prompt caption_unrepaired_NAME and repair_status_NAME (recap's
// `condition`: re_caption_condition_diverse_topk_unrepaired and repair_status_condition).
struct RepairColumn {
  size_t prompt;
  bool status;  // false: the pre-repair text
  ColumnSpec spec;
};
std::vector<RepairColumn> repair_columns(const WriterParams& params) {
  std::vector<RepairColumn> out;
  if (!params.repair_columns || params.schema == OutputSchema::samples ||
      params.schema == OutputSchema::img2dataset)
    return out;
  const char* main =
      params.schema == OutputSchema::laion_coco ? "top_caption_unrepaired" : "re_caption_unrepaired";
  out.push_back({0, false, {main, "VARCHAR"}});
  out.push_back({0, true, {"repair_status", "VARCHAR"}});
  for (size_t i = 0; i < params.prompt_names.size(); ++i) {
    const std::string& n = params.prompt_names[i];
    if (n.empty()) continue;
    bool cond = params.schema == OutputSchema::recap && n == "condition";
    out.push_back(
        {i,
         false,
         {cond ? "re_caption_condition_diverse_topk_unrepaired" : "caption_unrepaired_" + n, "VARCHAR"}});
    out.push_back({i, true, {"repair_status_" + n, "VARCHAR"}});
  }
  return out;
}

}  // namespace

std::vector<ColumnSpec> output_columns(const WriterParams& params) {
  std::vector<ColumnSpec> out = canonical_columns(params.schema);
  std::set<std::string> seen;
  for (auto& c : out) seen.insert(c.name);
  for (auto& c : prompt_columns(params)) {
    if (!seen.insert(c.spec.name).second)
      throw std::invalid_argument("two prompts would both write the output column " + c.spec.name);
    out.push_back(std::move(c.spec));
  }
  for (auto& c : safety_columns(params))
    if (seen.insert(c.name).second) out.push_back(std::move(c));
  for (auto& c : repair_columns(params)) {
    if (!seen.insert(c.spec.name).second)
      throw std::invalid_argument("two prompts would both write the output column " + c.spec.name);
    out.push_back(std::move(c.spec));
  }
  return out;
}

Json canonical_row(const Sample& s, const WriterParams& params) {
  Json row = base_row(s, params);
  static const std::vector<Candidate> no_candidates;
  static const std::optional<std::string> no_caption;
  static const std::optional<double> no_score;
  for (auto& c : prompt_columns(params)) {
    // prompt 0: the sample's own outputs; prompt i: more_outputs[i - 1] when the sample has it
    const PromptOutput* more =
        c.prompt > 0 && c.prompt - 1 < s.more_outputs.size() ? &s.more_outputs[c.prompt - 1] : nullptr;
    const bool main = c.prompt == 0;
    const auto& caption = main ? s.re_caption : more ? more->re_caption : no_caption;
    const auto& cands = main ? s.candidates : more ? more->candidates : no_candidates;
    const auto& score = main ? s.re_clip_score : more ? more->re_clip_score : no_score;
    Json& v = row[c.spec.name];
    switch (c.field) {
      case PromptField::caption:
        v = opt(caption);
        break;
      case PromptField::candidates:
        v = candidates_json(cands);
        break;
      case PromptField::clip_score:
        v = opt(score);
        break;
      case PromptField::length:
        v = caption ? Json(word_count(*caption)) : Json(nullptr);
        break;
    }
  }
  if (params.schema != OutputSchema::samples && params.schema != OutputSchema::img2dataset) {
    // laion-coco: ours, not the input's; a row the head did not score (failed, no image embedding)
    // keeps the input's
    if (params.punsafe_column && (s.punsafe || params.schema != OutputSchema::laion_coco))
      row["punsafe"] = opt(s.punsafe);
    if (params.concept_columns) {
      row["unsafe_concept"] = opt(s.unsafe_concept);
      row["unsafe_margin"] = opt(s.unsafe_margin);
    }
  }
  for (auto& c : repair_columns(params)) {
    const PromptOutput* more =
        c.prompt > 0 && c.prompt - 1 < s.more_outputs.size() ? &s.more_outputs[c.prompt - 1] : nullptr;
    const std::string* status = c.prompt == 0 ? &s.repair_status : more ? &more->repair_status : nullptr;
    const auto& text = c.prompt == 0 ? s.re_caption_unrepaired
                       : more        ? more->re_caption_unrepaired
                                     : no_caption;
    row[c.spec.name] = c.status ? (status ? nonempty(*status) : Json(nullptr)) : opt(text);
  }
  return row;
}

std::string meta_output_name(OutputSchema schema, const std::string& name) {
  if (schema == OutputSchema::samples && (name == "status" || name == "error_message")) return "";
  for (auto& c : canonical_columns(schema))
    if (c.name == name) return "input_" + name;
  if (schema == OutputSchema::samples && name == "image") return "input_image";
  return name;
}

std::string meta_output_name(const WriterParams& params, const std::string& name) {
  std::string out = meta_output_name(params.schema, name);
  if (out != name) return out;  // folded away or already prefixed
  for (auto& c : prompt_columns(params))
    if (c.spec.name == name) return "input_" + name;
  for (auto& c : safety_columns(params))
    if (c.name == name) return "input_" + name;
  for (auto& c : repair_columns(params))
    if (c.spec.name == name) return "input_" + name;
  return out;
}

}  // namespace capforge
