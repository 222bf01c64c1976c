// `capforge caption` with several prompts per image on the demo models: each prompt's columns
// equal a run with that prompt alone, per-prompt flags in all three spellings (--FLAG@NAME,
// --prompt-opt, a prompts file), recap-v2's conditioned caption in Recap's columns, and every
// misuse a usage error.
#include <gtest/gtest.h>

#include <filesystem>

#include "support/demo_models.h"
#include "support/fixtures.h"
#include "support/process.h"

namespace fs = std::filesystem;

namespace capforge {

namespace {

struct PromptsCli : ::testing::Test {
  static void SetUpTestSuite() {
    dir_ = new test::TempDir();
    auto r = test::run_capforge({"synth", "--out", *dir_ / "in", "--count", "8", "--seed", "11"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  static void TearDownTestSuite() { delete dir_; }
  static test::ProcessResult caption(const std::string& out, std::vector<std::string> extra) {
    std::vector<std::string> args = {"caption", *dir_ / "in", "--out", *dir_ / out, "--model",
                                     "demo",    "--progress", "off",   "--threads", "2"};
    args.insert(args.end(), extra.begin(), extra.end());
    return test::run_capforge(args, 300);
  }
  static std::string parquet(const std::string& out) {
    return "read_parquet('" + (*dir_ / out) + "/*.parquet')";
  }
  static std::vector<std::string> col(const std::string& sql) { return test::duckdb_column(sql); }
  static test::TempDir* dir_;
};
test::TempDir* PromptsCli::dir_ = nullptr;

const char* kShort = "Describe the image.";
const char* kCond = "The alt-text says \"{org_caption}\". Describe the image.";

}  // namespace

TEST_F(PromptsCli, EachPromptsColumnsEqualARunWithThatPromptAlone) {
  NEED_DEMO_MODELS();
  auto r =
      caption("both", {"--prompt", std::string("short=") + kShort, "--prompt", std::string("cond=") + kCond,
                       "--candidates@cond", "3", "--temperature@cond=0.8", "--prompt-opt", "cond:top-k=20",
                       "--max-new-tokens@short", "24", "--greedy@short", "--batch-size", "3"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = caption("short", {"--prompt", kShort, "--max-new-tokens", "24", "--greedy"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = caption("cond", {"--prompt", kCond, "--candidates", "3", "--temperature", "0.8", "--top-k", "20"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string both = parquet("both"), shrt = parquet("short"), cond = parquet("cond");
  // the first prompt fills the main columns, and its own group
  auto q = [&](const std::string& a, const std::string& b, const std::string& run) {
    return col("SELECT count(*) FROM " + both + " x JOIN " + run + " y USING (key) WHERE x." + a +
               " IS NOT DISTINCT FROM y." + b);
  };
  const std::vector<std::string> all = {"8"};
  EXPECT_EQ(q("re_caption", "re_caption", shrt), all);
  EXPECT_EQ(q("caption_short", "re_caption", shrt), all);
  EXPECT_EQ(q("caption_cond", "re_caption", cond), all);
  EXPECT_EQ(q("length_cond", "re_length", cond), all);
  EXPECT_EQ(col("SELECT count(*) FROM " + both + " x JOIN " + cond +
                " y USING (key) WHERE list_transform(x.candidates_cond, c -> c.text) = "
                "list_transform(y.candidates, c -> c.text)"),
            all);
  EXPECT_EQ(col("SELECT count(*) FROM " + both + " x JOIN " + cond +
                " y USING (key) WHERE abs(x.clip_score_cond - y.re_clip_score) < 1e-4"),
            all);
  // the conditioned prompt sampled 3 candidates, the short one is greedy: one
  EXPECT_EQ(col("SELECT max(len(candidates_short)) FROM " + both), std::vector<std::string>{"1"});
  EXPECT_EQ(col("SELECT max(len(candidates_cond)) > 1 FROM " + both), std::vector<std::string>{"true"});
  EXPECT_EQ(col("SELECT count(*) FROM " + both + " WHERE caption_cond IS NULL OR clip_score_cond IS NULL"),
            std::vector<std::string>{"0"});
}

TEST_F(PromptsCli, PromptsFileRecapV2AndRankPrompts) {
  NEED_DEMO_MODELS();
  test::write_file(
      *dir_ / "prompts.json",
      R"([{"name": "short", "prompt": "Describe the image.", "max_new_tokens": 16, "greedy": true},
                       {"name": "cond", "prompt": "Alt: {org_caption}. {col:truth}", "candidates": 2}])");
  // the default prompt stays first (main columns), the file's come after it; only `short` is ranked
  auto r = caption("file", {"--prompts", *dir_ / "prompts.json", "--rank-prompts", "short"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string f = parquet("file");
  EXPECT_EQ(
      col("SELECT count(*) FROM " + f +
          " WHERE caption_short IS NOT NULL AND clip_score_short IS NOT NULL AND caption_cond IS NOT NULL"
          " AND clip_score_cond IS NULL AND re_clip_score IS NULL AND re_caption IS NOT NULL"),
      std::vector<std::string>{"8"});
  // the same prompts as YAML give the same outputs
  test::write_file(*dir_ / "prompts.yaml", R"(- name: short
  prompt: Describe the image.
  max_new_tokens: 16
  greedy: true
- name: cond
  prompt: "Alt: {org_caption}. {col:truth}"
  candidates: 2
)");
  r = caption("yaml", {"--prompts", *dir_ / "prompts.yaml", "--rank-prompts", "short"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string cols =
      "concat_ws('|', key, caption_short, candidates_short::VARCHAR, clip_score_short, "
      "caption_cond, candidates_cond::VARCHAR)";
  EXPECT_EQ(col("SELECT " + cols + " FROM " + parquet("yaml") + " ORDER BY key"),
            col("SELECT " + cols + " FROM " + f + " ORDER BY key"));

  // a `condition` prompt of the user's (here from a file) replaces recap-v2's; --FLAG@NAME is only
  // read as a prompt's flag when FLAG is one (here "--end@x" is --stop's value)
  test::write_file(*dir_ / "cond.json", R"({"condition": {"prompt": "Alt-text {org_caption}. Describe."}})");
  r = caption("recap2own", {"--preset", "recap-v2", "--schema", "recap", "--max-new-tokens", "8", "--prompts",
                            *dir_ / "cond.json", "--stop", "--end@x"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(col("SELECT count(*) FROM " + parquet("recap2own") +
                " WHERE re_caption_condition_diverse_topk IS NOT NULL"),
            std::vector<std::string>{"8"});
  r = caption("recap2", {"--preset", "recap-v2", "--schema", "recap", "--max-new-tokens", "24"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string rc = parquet("recap2");
  EXPECT_EQ(col("SELECT count(*) FROM " + rc +
                " WHERE re_caption IS NOT NULL AND re_caption_condition_diverse_topk IS NOT NULL AND "
                "re_condition_length = len(string_split(trim(re_caption_condition_diverse_topk), ' '))"),
            std::vector<std::string>{"8"});
  // a rerun with another prompt is refused, naming the setting
  r = caption("recap2", {"--preset", "recap-v2", "--schema", "recap", "--max-new-tokens", "24",
                         "--prompt-opt", "condition:top-k=5"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("more_prompts"), std::string::npos) << r.err;
}

TEST_F(PromptsCli, MisuseIsAUsageError) {
  NEED_DEMO_MODELS();
  test::write_file(*dir_ / "bad.json", R"({"x": {"text": "no prompt key"}})");
  test::write_file(*dir_ / "bad.yaml", "x: {prompt: [unclosed\n");
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"--prompt", "a=one", "--prompt", "two"}, "only the first prompt may be unnamed"},
      {{"--prompt", "a=one", "--prompt", "a=two"}, "two prompts are named a"},
      {{"--prompt", "Describe {alt_text}."}, "unknown prompt placeholder {alt_text}"},
      {{"--prompt", "a=one", "--prompt-opt", "b:greedy"}, "no prompt is named b"},
      {{"--prompt", "a=one", "--ctx-size@a", "4096"}, "--ctx-size@a"},  // not a per-prompt flag
      {{"--prompt", "a=one", "--prompt-opt", "a:ctx-size=4096"}, "prompt a"},
      {{"--prompt", "a=one", "--top-p@a", "7"}, "prompt a"},
      {{"--prompts", *dir_ / "bad.json"}, "needs a \"prompt\""},
      {{"--prompts", *dir_ / "bad.yaml"}, "not valid YAML"},
      {{"--prompt", "a=one", "--prompt", "b=two", "--rank-prompts", "c"}, "--rank-prompts c"},
      {{"--prompt", "a=one", "--prompt", "b=two", "--candidates@b", "20"}, "exceeds --parallel"},
      {{"--captioner", "blip", "--prompt", "a=one", "--prompt", "b=two"}, "multi-prompt"},
      {{"--prompt", "a=one", "--prompt", "A=two"}, "names ignore case"},
      {{"--prompt", "a=one", "--top-k@a", "--greedy"}, "prompt a"},  // a missing value eats no flag
  };
  for (auto& [args, want] : cases) {
    auto r = caption("bad", args);
    EXPECT_EQ(r.exit_code, 2) << args[1] << "\n" << r.err;
    EXPECT_NE(r.err.find(want), std::string::npos) << want << "\n" << r.err;
  }
  EXPECT_FALSE(fs::exists(*dir_ / "bad/00000.parquet"));
}

}  // namespace capforge
