// CPU counting for default thread counts (core/cpus.h): cgroup quota texts, and the override.
#include <gtest/gtest.h>

#include <thread>

#include "core/cpus.h"

namespace capforge {

TEST(Cpus, CgroupV2CpuMax) {
  EXPECT_DOUBLE_EQ(parse_cpu_max("200000 100000\n"), 2.0);
  EXPECT_DOUBLE_EQ(parse_cpu_max("150000 100000"), 1.5);
  EXPECT_DOUBLE_EQ(parse_cpu_max("50000 100000\n"), 0.5);
  EXPECT_EQ(parse_cpu_max("max 100000\n"), 0);  // no limit
  EXPECT_EQ(parse_cpu_max(""), 0);              // no file
  EXPECT_EQ(parse_cpu_max("garbage"), 0);
  EXPECT_EQ(parse_cpu_max("100000 0"), 0);
  EXPECT_EQ(parse_cpu_max("-5 100000"), 0);
  EXPECT_EQ(parse_cpu_max("12x 100000"), 0);
}

TEST(Cpus, CgroupV1CfsQuota) {
  EXPECT_DOUBLE_EQ(parse_cfs_quota("300000\n", "100000\n"), 3.0);
  EXPECT_EQ(parse_cfs_quota("-1\n", "100000\n"), 0);  // no limit
  EXPECT_EQ(parse_cfs_quota("", ""), 0);
  EXPECT_EQ(parse_cfs_quota("100000", "0"), 0);
}

TEST(Cpus, AvailableIsWithinTheMachine) {
  const int n = available_cpus();
  EXPECT_GE(n, 1);
  if (!std::getenv("CAPFORGE_CPUS")) EXPECT_LE(n, (int)std::max(1u, std::thread::hardware_concurrency()));
  EXPECT_NE(describe_cpus().find("online"), std::string::npos) << describe_cpus();
}

}  // namespace capforge
