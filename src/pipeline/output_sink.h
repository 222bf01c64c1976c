// The usual ShardSink: the shard's output files (one writer per format) plus its {shard}_stats.json,
// prepared together and published together (stats last), with an optional per-sample hook.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "capforge/io.h"
#include "capforge/pipeline.h"

namespace capforge {

class OutputSink : public ShardSink {
 public:
  OutputSink(std::vector<std::unique_ptr<SampleWriter>> writers, std::string stats_path,
             std::function<void(const Sample&)> on_write = {});
  ~OutputSink() override;
  void write(const Sample& s) override;
  void prepare(const ShardStats& stats) override;
  void commit(const ShardStats& stats) override;

 private:
  std::vector<std::unique_ptr<SampleWriter>> writers_;
  std::string stats_path_, stats_tmp_;
  std::function<void(const Sample&)> on_write_;
  bool committed_ = false;
};

}  // namespace capforge
