// The drift guard's edit measure (docs/repair.md): word tokens with punctuation apart, token-level
// Levenshtein, and what judge_repair makes of an engine output.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "pipeline/repair_stage.h"

namespace capforge {

TEST(EditSimilarity, WordTokensWithPunctuationApart) {
  auto t = edit_tokens("  A dog,running.\tfast!! ");
  std::vector<std::string> got(t.begin(), t.end());
  EXPECT_EQ(got, (std::vector<std::string>{"A", "dog", ",", "running", ".", "fast", "!", "!"}));
  EXPECT_TRUE(edit_tokens(" \n ").empty());
  auto u = edit_tokens("caf\xc3\xa9 na\xc3\xafve");  // UTF-8 letters are word characters
  EXPECT_EQ(u.size(), 2u);
}

TEST(EditSimilarity, LevenshteinOverTokens) {
  EXPECT_EQ(token_edit_distance("a dog on grass", "A dog on the grass."), 3u);  // A, +the, +.
  EXPECT_EQ(token_edit_distance("", "one two"), 2u);
  EXPECT_EQ(token_edit_distance("x y z", "z y x"), 2u);
  EXPECT_DOUBLE_EQ(token_edit_similarity("a dog on grass", "A dog on the grass."), 1.0 - 3.0 / 6.0);
  EXPECT_DOUBLE_EQ(token_edit_similarity("", ""), 1.0);
  EXPECT_DOUBLE_EQ(token_edit_similarity("a  dog", "a dog"), 1.0);  // whitespace is not a token
  EXPECT_DOUBLE_EQ(token_edit_similarity("red car", "blue bike"), 0.0);
  EXPECT_DOUBLE_EQ(token_edit_similarity("one two three four", "one two"), 0.5);
}

TEST(EditSimilarity, Verdicts) {
  RepairGuard g;
  g.max_change = 0.5;
  auto v = [&](const std::string& before, const std::string& text, const std::string& error = "") {
    RepairOutput o;
    o.text = text;
    o.error = error;
    return judge_repair(before, o, g).status;
  };
  EXPECT_EQ(v("a dog on grass", "A dog on the grass."), kRepaired);  // 3 of 6 tokens: 0.5, not above
  EXPECT_EQ(v("a dog on grass", "a dog on grass"), kUnchanged);
  EXPECT_EQ(v("a dog on grass", "two cats in a boat"), kRejectedDrift);
  EXPECT_EQ(v("a dog on grass", "", "caption is empty"), kRepairFailed);
  EXPECT_EQ(v("a dog on grass", " "), kRepairFailed);  // an empty output is never kept
  EXPECT_EQ(v("  ", ""), kSkipped);                    // a blank caption is not repaired
  EXPECT_EQ(judge_repair(" ", RepairOutput{}, g).note, "empty caption: not repaired");
  RepairOutput cut;  // a caption the engine cut to fit the context: flagged, whatever the verdict
  cut.text = "A dog on grass.";
  cut.truncated = true;
  RepairVerdict tv = judge_repair("a dog on grass", cut, g);
  EXPECT_EQ(tv.status, kRepaired);
  EXPECT_EQ(tv.note, "caption cut to fit the repair model's context");
  cut.text = "two cats in a boat";
  tv = judge_repair("a dog on grass", cut, g);
  EXPECT_EQ(tv.status, kRejectedDrift);
  EXPECT_EQ(tv.note.rfind("caption cut to fit the repair model's context; edit guard", 0), 0u) << tv.note;
  g.max_change = 0;
  EXPECT_EQ(v("a dog on grass", "a  dog on grass"), kRepaired);  // same tokens, other spacing
  EXPECT_EQ(v("a dog on grass", "a dog on grass."), kRejectedDrift);
  EXPECT_NE(judge_repair("a b", RepairOutput{"c d", "", 0, 0, 0}, g).note.find("edit guard"),
            std::string::npos);
}

}  // namespace capforge
