// core/mapped_file.h: a read-only map shows the file's bytes and leaves the file as it was;
// unopenable and empty files are errors naming the path.
#include <gtest/gtest.h>

#include <filesystem>

#include "core/mapped_file.h"
#include "support/fixtures.h"

namespace capforge {

TEST(MappedFile, ShowsTheBytesAndErrorsNameThePath) {
  test::TempDir dir;
  const std::string path = dir / "f.bin", data("abc\0def", 7);
  test::write_file(path, data);
  for (bool populate : {false, true}) {
    MappedFile m(path, populate);
    ASSERT_EQ(m.size(), data.size());
    EXPECT_EQ(std::string((const char*)m.data(), m.size()), data);
  }
  EXPECT_EQ(test::read_file(path), data);
  auto error_of = [](const std::string& p) {
    try {
      MappedFile m(p);
    } catch (const std::runtime_error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(error_of(dir / "missing.bin").find("missing.bin"), std::string::npos);
  test::write_file(dir / "empty.bin", "");
  EXPECT_NE(error_of(dir / "empty.bin").find("empty.bin is empty"), std::string::npos);
  EXPECT_NE(error_of(dir.path()).find("cannot"), std::string::npos);  // a directory
}

}  // namespace capforge
