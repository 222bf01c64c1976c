// The RepairCli fixture shared by repair_cli_test.cpp (caption --repair-model) and
// repair_command_test.cpp (capforge repair, tune, usage errors): tiny random-weight repairers
// (capforge-make-fixture t5 v1.1 and v1.0, llama-text), the tiny VLM and two CLIP fixtures, two
// webdataset shards of 4 samples, and two caption runs over them made on first use (need()).
#pragma once

#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "support/fixtures.h"
#include "support/process.h"

namespace capforge {

using Rows = std::vector<std::vector<std::string>>;

struct RepairCli : ::testing::Test {
  static void SetUpTestSuite() {
    dir_ = new test::TempDir();
    auto& d = *dir_;
    auto ok = [](const test::ProcessResult& r) { ASSERT_EQ(r.exit_code, 0) << r.err; };
    ok(test::run_process({test::make_fixture_bin(), "vlm", d / "t.gguf", d / "m.gguf"}));
    ok(test::run_process({test::make_fixture_bin(), "clip", d / "clipA"}));
    ok(test::run_process({test::make_fixture_bin(), "clip", d / "clipB", "--seed", "5"}));
    ok(test::run_process({test::make_fixture_bin(), "t5", d / "t5.gguf", "--variant", "v1_1"}));
    ok(test::run_process({test::make_fixture_bin(), "t5", d / "t5v10.gguf", "--variant", "v1_0"}));
    ok(test::run_process({test::make_fixture_bin(), "llama-text", d / "lm.gguf"}));
    test::write_file(d / "broken.gguf", "GGUF but not really a model");
    for (int s = 0; s < 2; ++s) {
      std::string name = "0000" + std::to_string(s);
      test::write_tar(d / (name + ".tar"), test::wds_members(name, 4, (uint32_t)s));
    }
  }
  static std::vector<std::string> kKeptFlags() {
    return {"--repair-model",         *dir_ / "t5.gguf",
            "--repair-beams",         "2",
            "--repair-parallel",      "4",
            "--repair-max-change",    "1",
            "--repair-max-clip-drop", "200"};
  }
  static void TearDownTestSuite() { delete dir_; }
  // The shared caption runs, made on first use (ctest runs each test in its own process): "none"
  // (--repair none, the reference: the same captions and scores, not repaired) and "kept" (repaired
  // by the T5 with 2 beams, no guard in the way).
  static void need(const std::string& name) {
    if (std::filesystem::exists(*dir_ / name + "/00001.parquet")) return;
    auto r = caption(name, name == "none" ? std::vector<std::string>{"--repair", "none"} : kKeptFlags());
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }

  // caption over both shards with the tiny VLM ranking 3 candidates with clipA.
  static test::ProcessResult caption(const std::string& out, std::vector<std::string> extra) {
    auto& d = *dir_;
    std::vector<std::string> args = {"caption",
                                     d / "00000.tar",
                                     d / "00001.tar",
                                     "--out",
                                     d / out,
                                     "--model",
                                     d / "t.gguf",
                                     "--mmproj",
                                     d / "m.gguf",
                                     "--rank",
                                     d / "clipA",
                                     "--candidates",
                                     "3",
                                     "--max-new-tokens",
                                     "8",
                                     "--progress",
                                     "off",
                                     "--threads",
                                     "2"};
    args.insert(args.end(), extra.begin(), extra.end());
    return test::run_capforge(args, 300);
  }
  static std::string at(const std::string& f) { return *dir_ / f; }
  static std::string all(const std::string& out) { return "read_parquet('" + at(out) + "/*.parquet')"; }
  // Rows of `sql` with each column as text ('' for NULL), through DuckDB's string_agg of a row.
  static Rows rows(const std::string& sql, int ncols) {
    std::string cols;
    for (int i = 0; i < ncols; ++i)
      cols += (i ? " || chr(31) || " : "") + std::string("coalesce(CAST(c") + std::to_string(i) +
              " AS VARCHAR), '')";
    Rows out;
    for (auto& line : test::duckdb_column("SELECT " + cols + " FROM (" + sql + ")")) {
      std::vector<std::string> row;
      size_t start = 0;
      for (size_t p; (p = line.find('\x1f', start)) != std::string::npos; start = p + 1)
        row.push_back(line.substr(start, p - start));
      row.push_back(line.substr(start));
      out.push_back(row);
    }
    return out;
  }
  // key -> (re_caption, re_clip_score) of a caption output set's successful rows
  static std::map<std::string, std::pair<std::string, double>> by_key(const std::string& out) {
    std::map<std::string, std::pair<std::string, double>> m;
    for (auto& r : rows("SELECT key AS c0, re_caption AS c1, re_clip_score AS c2 FROM " + all(out) +
                            " WHERE status = 'success'",
                        3))
      m[r[0]] = {r[1], std::stod(r[2])};
    return m;
  }
  static test::TempDir* dir_;
};

inline const std::set<std::string> kStatuses = {"repaired", "unchanged", "rejected_drift", "repair_failed",
                                                "skipped"};

}  // namespace capforge
