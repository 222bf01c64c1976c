// Multi-prompt output columns: one column group per named prompt, per schema, in rows (JSON) and in
// parquet and JSON Lines files; pass-through columns that collide with them get "input_".
#include <gtest/gtest.h>

#include <stdexcept>

#include "capforge/io.h"
#include "io/schema.h"
#include "support/fixtures.h"

namespace capforge {

namespace {

const char* kCandidatesType = "STRUCT(text VARCHAR, score DOUBLE, flags VARCHAR[])[]";

WriterParams params(OutputSchema schema, std::vector<std::string> prompts) {
  WriterParams p;
  p.schema = schema;
  p.captioner = "vlm";
  p.prompt_names = std::move(prompts);
  return p;
}

// The columns after the canonical ones, as "name type".
std::vector<std::string> extra_columns(const WriterParams& p) {
  auto all = output_columns(p);
  size_t canonical = canonical_columns(p.schema).size();
  EXPECT_GE(all.size(), canonical);
  for (size_t i = 0; i < canonical && i < all.size(); ++i)
    EXPECT_EQ(all[i].name, canonical_columns(p.schema)[i].name) << "canonical columns come first";
  std::vector<std::string> out;
  for (size_t i = canonical; i < all.size(); ++i) out.push_back(all[i].name + " " + all[i].type);
  return out;
}

Candidate cand(std::string text, std::optional<double> score = std::nullopt,
               std::vector<std::string> flags = {}) {
  Candidate c;
  c.text = std::move(text);
  c.score = score;
  c.flags = std::move(flags);
  return c;
}

// A ranked three-prompt sample: prompt 0 (main fields), "condition" and "short".
Sample ranked_sample() {
  Sample s;
  s.key = "000000001";
  s.index = 0;
  s.url = "http://example.com/1.jpg";
  s.caption = "alt text here";
  s.candidates = {cand("a red car on a road", 0.31), cand("a car", std::nullopt, {"ranked_out_1"})};
  s.re_caption = "A red car on a road.";
  s.re_clip_score = 31.0;
  s.org_clip_score = 20.5;
  s.ranker = "clipA";
  PromptOutput cond{"condition",
                    {cand("a red car parked on an empty road at dusk", 0.3)},
                    "A red car parked on an empty road at dusk.",
                    30.0};
  PromptOutput shrt{"short", {cand("red car", 0.25), cand("a car", 0.125)}, "Red car.", 25.0};
  s.more_outputs = {cond, shrt};
  s.meta = {{"caption_short", "from the input"}, {"source", "test"}};
  return s;
}

// A sample that failed before captioning: no candidates, no more_outputs.
Sample failed_sample() {
  Sample s;
  s.key = "000000002";
  s.index = 1;
  s.url = "http://example.com/2.jpg";
  s.caption = "second one";
  s.fail(Status::failed_to_decode, "not an image");
  s.meta = {{"caption_short", "x"}, {"source", "test"}};
  return s;
}

std::vector<std::string> keys_of(const Json& row) {
  std::vector<std::string> out;
  for (auto& [k, v] : row.items()) out.push_back(k);
  return out;
}

std::vector<std::string> names_of(const std::vector<ColumnSpec>& cols) {
  std::vector<std::string> out;
  for (auto& c : cols) out.push_back(c.name);
  return out;
}

}  // namespace

TEST(PromptColumns, CapforgeSchemaGroupsPerNamedPrompt) {
  EXPECT_EQ(extra_columns(params(OutputSchema::caption, {"", "condition", "short"})),
            (std::vector<std::string>{
                "caption_condition VARCHAR", std::string("candidates_condition ") + kCandidatesType,
                "clip_score_condition DOUBLE", "length_condition INTEGER", "caption_short VARCHAR",
                std::string("candidates_short ") + kCandidatesType, "clip_score_short DOUBLE",
                "length_short INTEGER"}));
  EXPECT_EQ(
      extra_columns(params(OutputSchema::caption, {"short", "detailed"})),
      (std::vector<std::string>{"caption_short VARCHAR", std::string("candidates_short ") + kCandidatesType,
                                "clip_score_short DOUBLE", "length_short INTEGER", "caption_detailed VARCHAR",
                                std::string("candidates_detailed ") + kCandidatesType,
                                "clip_score_detailed DOUBLE", "length_detailed INTEGER"}));
  // the candidates groups have the candidates column's type
  for (auto& c : canonical_columns(OutputSchema::caption))
    if (c.name == "candidates") EXPECT_EQ(c.type, kCandidatesType);
}

TEST(PromptColumns, RecapSchemaUsesRecapNamesForCondition) {
  EXPECT_EQ(
      extra_columns(params(OutputSchema::recap, {"", "condition", "short"})),
      (std::vector<std::string>{"re_caption_condition_diverse_topk VARCHAR", "re_condition_length INTEGER",
                                "caption_short VARCHAR", "clip_score_short DOUBLE", "length_short INTEGER"}));
  EXPECT_EQ(extra_columns(params(OutputSchema::recap, {"short", "detailed"})),
            (std::vector<std::string>{"caption_short VARCHAR", "clip_score_short DOUBLE",
                                      "length_short INTEGER", "caption_detailed VARCHAR",
                                      "clip_score_detailed DOUBLE", "length_detailed INTEGER"}));
}

TEST(PromptColumns, LaionCocoSchemaGroupsWithoutCandidates) {
  EXPECT_EQ(extra_columns(params(OutputSchema::laion_coco, {"", "condition", "short"})),
            (std::vector<std::string>{"caption_condition VARCHAR", "clip_score_condition DOUBLE",
                                      "length_condition INTEGER", "caption_short VARCHAR",
                                      "clip_score_short DOUBLE", "length_short INTEGER"}));
  EXPECT_EQ(extra_columns(params(OutputSchema::laion_coco, {"short", "detailed"})),
            (std::vector<std::string>{"caption_short VARCHAR", "clip_score_short DOUBLE",
                                      "length_short INTEGER", "caption_detailed VARCHAR",
                                      "clip_score_detailed DOUBLE", "length_detailed INTEGER"}));
}

TEST(PromptColumns, SamplesImg2datasetAndSinglePromptHaveNoGroups) {
  for (auto schema : {OutputSchema::samples, OutputSchema::img2dataset}) {
    EXPECT_TRUE(extra_columns(params(schema, {"", "condition", "short"})).empty()) << schema_name(schema);
    EXPECT_TRUE(extra_columns(params(schema, {"short", "detailed"})).empty()) << schema_name(schema);
  }
  for (auto schema : {OutputSchema::caption, OutputSchema::recap, OutputSchema::laion_coco}) {
    EXPECT_TRUE(extra_columns(params(schema, {})).empty()) << schema_name(schema);
    EXPECT_TRUE(extra_columns(params(schema, {""})).empty()) << schema_name(schema);
  }
}

TEST(PromptColumns, RepeatedPromptNameIsRefused) {
  EXPECT_THROW(output_columns(params(OutputSchema::caption, {"short", "short"})), std::invalid_argument);
  test::TempDir dir;
  EXPECT_THROW(
      open_writer(OutputFormat::parquet, dir / "x.parquet", params(OutputSchema::caption, {"", "a", "a"})),
      std::invalid_argument);
}

TEST(PromptColumns, RowValuesComeFromMainFieldsAndMoreOutputs) {
  auto p = params(OutputSchema::caption, {"main", "condition", "short"});
  Json row = canonical_row(ranked_sample(), p);
  EXPECT_EQ(keys_of(row), names_of(output_columns(p)));
  // prompt 0 from the sample's own fields
  EXPECT_EQ(row["caption_main"], "A red car on a road.");
  EXPECT_EQ(row["candidates_main"], row["candidates"]);
  EXPECT_EQ(row["candidates_main"].size(), 2u);
  EXPECT_EQ(row["candidates_main"][1]["flags"], Json::array({"ranked_out_1"}));
  EXPECT_TRUE(row["candidates_main"][1]["score"].is_null());
  EXPECT_EQ(row["clip_score_main"], 31.0);
  EXPECT_EQ(row["length_main"], 6);
  // prompts 1 and 2 from more_outputs, by index
  EXPECT_EQ(row["caption_condition"], "A red car parked on an empty road at dusk.");
  EXPECT_EQ(row["candidates_condition"],
            Json::parse(R"([{"text":"a red car parked on an empty road at dusk","score":0.3,"flags":[]}])"));
  EXPECT_EQ(row["clip_score_condition"], 30.0);
  EXPECT_EQ(row["length_condition"], 10);
  EXPECT_EQ(row["caption_short"], "Red car.");
  EXPECT_EQ(row["candidates_short"][1]["text"], "a car");
  EXPECT_EQ(row["candidates_short"][1]["score"], 0.125);
  EXPECT_EQ(row["clip_score_short"], 25.0);
  EXPECT_EQ(row["length_short"], 2);

  // a failed sample: prompt 0's group mirrors the (empty) main fields, the others are null
  Json failed = canonical_row(failed_sample(), p);
  EXPECT_EQ(keys_of(failed), names_of(output_columns(p)));
  for (const char* n : {"main", "condition", "short"}) {
    SCOPED_TRACE(n);
    EXPECT_TRUE(failed[std::string("caption_") + n].is_null());
    EXPECT_EQ(failed[std::string("candidates_") + n], Json::array());
    EXPECT_TRUE(failed[std::string("clip_score_") + n].is_null());
    EXPECT_TRUE(failed[std::string("length_") + n].is_null());
  }
  // a sample with fewer more_outputs than prompts (e.g. captioned by a shorter run)
  Sample partial = ranked_sample();
  partial.more_outputs.resize(1);
  Json pr = canonical_row(partial, p);
  EXPECT_EQ(pr["caption_condition"], "A red car parked on an empty road at dusk.");
  EXPECT_TRUE(pr["caption_short"].is_null());
  EXPECT_EQ(pr["candidates_short"], Json::array());
}

TEST(PromptColumns, RecapAndLaionRowValues) {
  auto recap = params(OutputSchema::recap, {"", "condition", "short"});
  Json r = canonical_row(ranked_sample(), recap);
  EXPECT_EQ(keys_of(r), names_of(output_columns(recap)));
  EXPECT_EQ(r["re_caption_condition_diverse_topk"], "A red car parked on an empty road at dusk.");
  EXPECT_EQ(r["re_condition_length"], 10);
  EXPECT_EQ(r["caption_short"], "Red car.");
  EXPECT_EQ(r["clip_score_short"], 25.0);
  EXPECT_EQ(r["length_short"], 2);
  Json rf = canonical_row(failed_sample(), recap);
  EXPECT_TRUE(rf["re_caption_condition_diverse_topk"].is_null());
  EXPECT_TRUE(rf["re_condition_length"].is_null());

  auto laion = params(OutputSchema::laion_coco, {"short", "condition"});
  // prompt names are matched to more_outputs by index, not by name
  Sample s = ranked_sample();
  Json l = canonical_row(s, laion);
  EXPECT_EQ(keys_of(l), names_of(output_columns(laion)));
  EXPECT_EQ(l["caption_short"], "A red car on a road.");
  EXPECT_EQ(l["clip_score_short"], 31.0);
  EXPECT_EQ(l["length_short"], 6);
  EXPECT_EQ(l["caption_condition"], "A red car parked on an empty road at dusk.");
}

TEST(PromptColumns, MetaColumnsCollidingWithPromptColumnsArePrefixed) {
  auto p = params(OutputSchema::caption, {"", "short"});
  EXPECT_EQ(meta_output_name(p, "caption_short"), "input_caption_short");
  EXPECT_EQ(meta_output_name(p, "length_short"), "input_length_short");
  EXPECT_EQ(meta_output_name(p, "re_caption"), "input_re_caption");  // canonical, as before
  EXPECT_EQ(meta_output_name(p, "caption_long"), "caption_long");
  EXPECT_EQ(meta_output_name(p, "source"), "source");
  EXPECT_EQ(meta_output_name(params(OutputSchema::samples, {"", "short"}), "caption_short"), "caption_short");
  EXPECT_EQ(meta_output_name(params(OutputSchema::samples, {}), "status"), "");  // still folded
}

TEST(PromptColumns, ParquetHasPromptColumnsAndPrefixedMeta) {
  test::TempDir dir;
  std::string path = dir / "out.parquet";
  auto p = params(OutputSchema::caption, {"", "condition", "short"});
  {
    auto w = open_writer(OutputFormat::parquet, path, p);
    w->write(ranked_sample());
    w->write(failed_sample());
    w->commit();
  }
  std::string pq = "'" + path + "'";
  auto names = test::duckdb_column(
      "SELECT string_agg(column_name || ' ' || column_type, ',') FROM (DESCRIBE SELECT * FROM " + pq + ")");
  ASSERT_EQ(names.size(), 1u);
  std::string expected;
  for (auto& c : output_columns(p)) {
    std::string type = c.type;  // DuckDB prints the field name `text` quoted
    if (type == kCandidatesType) type = R"(STRUCT("text" VARCHAR, score DOUBLE, flags VARCHAR[])[])";
    expected += c.name + " " + type + ",";
  }
  expected += "input_caption_short VARCHAR,source VARCHAR";
  EXPECT_EQ(names[0], expected);
  EXPECT_EQ(
      test::duckdb_column("SELECT concat_ws('|', caption_condition, clip_score_condition, length_condition, "
                          "caption_short, clip_score_short, length_short, input_caption_short) FROM " +
                          pq + " ORDER BY key"),
      (std::vector<std::string>{
          "A red car parked on an empty road at dusk.|30.0|10|Red car.|25.0|2|from the input", "x"}));
  EXPECT_EQ(
      test::duckdb_column("SELECT candidates_short[2].text || ':' || candidates_short[2].score || ':' || "
                          "len(candidates_short) || ':' || len(candidates_short[1].flags) FROM " +
                          pq + " WHERE key = '000000001'"),
      std::vector<std::string>{"a car:0.125:2:0"});
  EXPECT_EQ(
      test::duckdb_column("SELECT len(candidates_condition) || ':' || (caption_short IS NULL) || ':' || "
                          "(length_condition IS NULL) || ':' || status FROM " +
                          pq + " WHERE key = '000000002'"),
      std::vector<std::string>{"0:true:true:failed_to_decode"});
  // the main columns are untouched
  EXPECT_EQ(test::duckdb_column("SELECT re_caption || '|' || re_clip_score FROM " + pq +
                                " WHERE key = '000000001'"),
            std::vector<std::string>{"A red car on a road.|31.0"});
}

TEST(PromptColumns, JsonlHasPromptColumnsAndPrefixedMeta) {
  test::TempDir dir;
  std::string path = dir / "out.jsonl";
  auto p = params(OutputSchema::caption, {"", "short"});
  Sample s = ranked_sample();
  s.more_outputs.erase(s.more_outputs.begin());  // prompt 1 is "short" here
  {
    auto w = open_writer(OutputFormat::jsonl, path, p);
    w->write(s);
    w->commit();
  }
  auto lines = test::json_lines(test::read_file(path));
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0]["caption_short"], "Red car.");
  EXPECT_EQ(lines[0]["length_short"], 2);
  EXPECT_EQ(lines[0]["input_caption_short"], "from the input");
  EXPECT_EQ(lines[0]["source"], "test");
}

}  // namespace capforge
