#include <gtest/gtest.h>

#include "models/repair/rules.h"

namespace capforge {

TEST(RepairRules, FixesTheUsualProblems) {
  using repair::repair_caption;
  EXPECT_EQ(repair_caption("a picture of a dog sitting on the grass"),
            "A picture of a dog sitting on the grass.");
  EXPECT_EQ(repair_caption("a  dog , a cat ."), "A dog, a cat.");
  EXPECT_EQ(repair_caption("the the dog is is running"), "The dog is running.");
  EXPECT_EQ(repair_caption("a picture of a dog sitting on a"), "A picture of a dog sitting.");
  EXPECT_EQ(repair_caption("a red car and"), "A red car.");
  EXPECT_EQ(repair_caption("what is this?"), "What is this?");
  EXPECT_EQ(repair_caption("a dog;"), "A dog.");
  EXPECT_EQ(repair_caption("   "), "");
  EXPECT_EQ(repair_caption("on"), "On.");  // nothing left to drop
}

}  // namespace capforge
