// The tuner's grid: parsing, every combination in order, and a seeded random subset.
#include <gtest/gtest.h>

#include "eval/grid.h"

namespace capforge::eval {

TEST(Grid, ParsesNamesValuesAndPerCandidateLists) {
  auto g = parse_grid(" top_p = 0.1, 0.5 ; --min_new_tokens=5;temperature=0.7|1.0 ");
  ASSERT_EQ(g.size(), 3u);
  EXPECT_EQ(g[0].first, "top-p");
  EXPECT_EQ(g[0].second, (std::vector<std::string>{"0.1", "0.5"}));
  EXPECT_EQ(g[1].first, "min-new-tokens");
  EXPECT_EQ(g[2].second, (std::vector<std::string>{"0.7,1.0"}));  // | is one value's own list
  EXPECT_THROW(parse_grid(""), std::invalid_argument);
  EXPECT_THROW(parse_grid("=1"), std::invalid_argument);
  EXPECT_THROW(parse_grid("a=1,,2"), std::invalid_argument);
  EXPECT_THROW(parse_grid("a=1;a=2"), std::invalid_argument);
}

TEST(Grid, ExpandsEveryCombinationFirstDimensionSlowest) {
  auto all = expand_grid(parse_grid("a=1,2;b=x,y,z"));
  ASSERT_EQ(all.size(), 6u);
  EXPECT_EQ(setting_label(all[0]), "a=1 b=x");
  EXPECT_EQ(setting_label(all[2]), "a=1 b=z");
  EXPECT_EQ(setting_label(all[5]), "a=2 b=z");
}

TEST(Grid, RandomSubsetIsSeededDistinctAndInGridOrder) {
  auto g = parse_grid("a=1,2,3,4;b=1,2,3,4,5");
  auto s1 = expand_grid(g, 7, 42), s2 = expand_grid(g, 7, 42), s3 = expand_grid(g, 7, 43);
  ASSERT_EQ(s1.size(), 7u);
  EXPECT_EQ(s1, s2);
  EXPECT_NE(s1, s3);
  auto all = expand_grid(g);
  size_t pos = 0;
  for (auto& s : s1) {  // a subsequence of the full grid: distinct and ordered
    while (pos < all.size() && all[pos] != s) ++pos;
    ASSERT_LT(pos, all.size()) << setting_label(s);
    ++pos;
  }
  EXPECT_EQ(expand_grid(g, 100, 1).size(), 20u);  // more than there are: all of them
}

}  // namespace capforge::eval
