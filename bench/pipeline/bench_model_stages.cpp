// The model stages alone, for the pipeline-efficiency benchmark: every sample of a shard is read
// and decoded first (untimed), then caption -> rank -> repair run over them in batches, timed.
//   capforge-bench-model-stages SHARD.tar TEXT.gguf MMPROJ.gguf CLIP_DIR BATCH THREADS MAX_NEW
// Prints {"samples": n, "seconds": s, "samples_per_s": r}.
#include <chrono>
#include <cstdio>
#include <cstdlib>

#include "capforge/io.h"
#include "capforge/pipeline.h"
#include "core/omp_waits.h"
#include "pipeline/model_stages.h"

using namespace capforge;

int main(int argc, char** argv) {
  capforge::exec_with_short_waits(argv);  // as the CLI runs its model commands
  if (argc < 8) {
    std::fprintf(stderr, "usage: %s SHARD.tar TEXT.gguf MMPROJ.gguf CLIP_DIR BATCH THREADS MAX_NEW\n",
                 argv[0]);
    return 2;
  }
  size_t batch = (size_t)std::atoi(argv[5]);
  int threads = std::atoi(argv[6]);
  std::vector<Sample> samples;
  auto reader = open_reader({argv[1], "s", InputFormat::webdataset}, {});
  for (Sample s; reader->next(s);) samples.push_back(std::move(s));
  DecodeParams dp;
  dp.short_edge = 384;
  auto decode = make_decode_stage(dp, 1);
  std::vector<Sample*> all;
  for (auto& s : samples) all.push_back(&s);
  decode->process(all);

  CaptionerParams cp;
  cp.model = argv[2];
  cp.mmproj = argv[3];
  cp.threads = threads;
  cp.sampling.greedy = true;
  cp.sampling.max_new_tokens = cp.sampling.min_new_tokens = std::atoi(argv[7]);
  cp.loop_repeats = 1000;
  ClipParams clp;
  clp.threads = threads;
  std::vector<std::unique_ptr<Stage>> stages;
  stages.push_back(make_caption_stage(load_captioner(cp), cp, batch));
  stages.push_back(make_rank_stage({{"clip", load_clip(argv[4], clp), 0}}, batch));
  stages.push_back(make_repair_stage());
  auto t0 = std::chrono::steady_clock::now();
  for (size_t i = 0; i < all.size(); i += batch) {
    std::vector<Sample*> b(all.begin() + (long)i, all.begin() + (long)std::min(all.size(), i + batch));
    for (auto& st : stages) st->process(b);
  }
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("{\"samples\": %zu, \"seconds\": %.3f, \"samples_per_s\": %.3f}\n", all.size(), s,
              all.size() / s);
  return 0;
}
