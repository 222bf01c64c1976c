// The bundled demo models for suites built with CAPFORGE_DEMO_MODELS_DIR (models/demo).
#pragma once

#include <filesystem>

namespace capforge::test {

inline const std::filesystem::path kDemo = CAPFORGE_DEMO_MODELS_DIR;

}  // namespace capforge::test

// Skips the test when the demo models are not there (a checkout without models/demo).
#define NEED_DEMO_MODELS()                                                \
  if (!std::filesystem::exists(capforge::test::kDemo / "captioner.gguf")) \
  GTEST_SKIP() << "no demo models in " << capforge::test::kDemo
