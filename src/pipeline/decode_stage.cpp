#include <fmt/format.h>

#include "capforge/pipeline.h"
#include "core/hash.h"

namespace capforge {

namespace {

class DecodeStage : public Stage {
 public:
  DecodeStage(const DecodeParams& p, int threads) : params_(p), threads_(threads > 0 ? threads : 1) {}
  std::string name() const override { return "decode"; }
  int threads() const override { return threads_; }

  void process(std::vector<Sample*>& batch) override {
    for (Sample* s : batch) {
      if (!s->ok()) continue;
      if (!s->has_image) {
        s->fail(Status::failed_to_download, s->url.empty()
                                                ? "sample has no image"
                                                : "sample has no image bytes (the url was not downloaded)");
        continue;
      }
      s->sha256 = sha256_hex(s->image_bytes);
      DecodedImage img;
      std::string err = decode_image(s->image_bytes, params_, img);
      s->width = img.original_width;
      s->height = img.original_height;
      if (!err.empty()) {
        s->fail(Status::failed_to_decode, err);
        continue;
      }
      s->pixels = std::move(img.pixels);
    }
  }

 private:
  DecodeParams params_;
  int threads_;
};

}  // namespace

std::unique_ptr<Stage> make_decode_stage(const DecodeParams& params, int threads) {
  return std::make_unique<DecodeStage>(params, threads);
}

}  // namespace capforge
