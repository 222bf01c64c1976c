// The usual ShardSink: the shard's output files (one writer per format) plus its {shard}_stats.json,
// prepared together and published together (stats last), with optional hooks: on_write per sample
// written, on_commit once the shard is published (a shard given back or failed never calls it).
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
             std::function<void(const Sample&)> on_write = {}, std::function<void()> on_commit = {});
  ~OutputSink() override;
  void write(const Sample& s) override;
  void prepare(const ShardStats& stats) override;
  void commit(const ShardStats& stats) override;

 private:
  std::vector<std::unique_ptr<SampleWriter>> writers_;
  std::string stats_path_, stats_tmp_;
  std::function<void(const Sample&)> on_write_;
  std::function<void()> on_commit_;
  bool committed_ = false;
};

}  // namespace capforge
