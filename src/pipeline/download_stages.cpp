#include "pipeline/download_stages.h"

#include <fmt/format.h>

#include "core/hash.h"
#include "core/text.h"

namespace capforge {

namespace {

class FetchStage : public Stage {
 public:
  FetchStage(const fetch::FetchParams& p, int workers) : params_(p), workers_(std::max(1, workers)) {}
  std::string name() const override { return "fetch"; }
  int threads() const override { return workers_; }
  size_t max_batch() const override { return (size_t)params_.concurrency; }

  void process(std::vector<Sample*>& batch) override {
    thread_local std::unique_ptr<fetch::Fetcher> fetcher;  // one per worker thread, connections kept
    if (!fetcher) fetcher = std::make_unique<fetch::Fetcher>(params_);
    std::vector<std::string> urls;
    std::vector<Sample*> who;
    for (Sample* s : batch) {
      if (!s->ok()) continue;
      if (s->url.empty()) {
        s->fail(Status::failed_to_download, "no url");
        continue;
      }
      urls.push_back(s->url);
      who.push_back(s);
    }
    auto results = fetcher->fetch(urls);
    for (size_t i = 0; i < who.size(); ++i) {
      if (!results[i].ok) {
        who[i]->fail(Status::failed_to_download, results[i].error);
        continue;
      }
      who[i]->image_bytes = std::move(results[i].body);
      who[i]->has_image = true;
    }
  }

 private:
  fetch::FetchParams params_;
  int workers_;
};

class ResizeStage : public Stage {
 public:
  ResizeStage(const ResizeParams& p, int threads, std::string verify, std::string bbox_col)
      : params_(p),
        threads_(std::max(1, threads)),
        verify_(std::move(verify)),
        bbox_col_(std::move(bbox_col)) {}
  std::string name() const override { return "resize"; }
  int threads() const override { return threads_; }

  void process(std::vector<Sample*>& batch) override {
    for (Sample* s : batch) {
      if (!s->ok() || !s->has_image) continue;
      s->sha256 = sha256_hex(s->image_bytes);
      if (!verify_.empty()) {
        const Json& want = s->meta.contains(verify_) ? s->meta[verify_] : Json(nullptr);
        if (want.is_string() && ascii_lower(want.get<std::string>()) != s->sha256) {
          s->fail(Status::failed_to_download, fmt::format("sha256 {} does not match {} in column {}",
                                                          s->sha256, want.get<std::string>(), verify_));
          s->image_bytes.clear();
          continue;
        }
      }
      std::vector<BlurBox> boxes;
      if (!bbox_col_.empty()) {
        auto it = s->meta.find(bbox_col_);
        if (auto bad = parse_blur_boxes(it == s->meta.end() ? Json(nullptr) : *it, boxes); !bad.empty()) {
          s->fail(Status::failed_to_resize, fmt::format("cannot blur: column {}: {}", bbox_col_, bad));
          s->image_bytes.clear();
          continue;
        }
      }
      ResizedImage r;
      std::string err = resize_image(s->image_bytes, params_, r, boxes);
      s->width = r.original_width;
      s->height = r.original_height;
      s->exif = r.exif;
      if (!err.empty()) {
        s->fail(Status::failed_to_resize, err);
        s->image_bytes.clear();
        continue;
      }
      s->image_bytes = std::move(r.bytes);
      s->image_ext = r.ext;
      s->out_width = r.width;
      s->out_height = r.height;
    }
  }

 private:
  ResizeParams params_;
  int threads_;
  std::string verify_;
  std::string bbox_col_;
};

}  // namespace

std::unique_ptr<Stage> make_fetch_stage(const fetch::FetchParams& params, int workers) {
  return std::make_unique<FetchStage>(params, workers);
}

std::unique_ptr<Stage> make_resize_stage(const ResizeParams& params, int threads, std::string verify_hash_col,
                                         std::string bbox_col) {
  return std::make_unique<ResizeStage>(params, threads, std::move(verify_hash_col), std::move(bbox_col));
}

}  // namespace capforge
