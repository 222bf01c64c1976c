#include "curate/filters.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "core/text.h"

namespace capforge {

FilterParams basic_filter() {
  FilterParams p;
  p.min_image_size = 200;
  p.max_aspect = 3;
  p.min_caption_words = 3;
  p.min_caption_chars = 6;
  return p;
}

int utf8_chars(std::string_view s) {
  int n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

namespace {
// A positive whole number of pixels from a meta value (a JSON number, or digits as text), or 0.
int positive_int(const Json& v) {
  double d = 0;
  if (v.is_number()) {
    d = v.get<double>();
  } else if (v.is_string()) {
    const std::string& t = v.get_ref<const std::string&>();
    if (t.empty() || t.size() > 9 || t.find_first_not_of("0123456789") != std::string::npos) return 0;
    d = std::stod(t);
  }
  return d >= 1 && d <= 1e9 && d == std::floor(d) ? (int)d : 0;
}
}  // namespace

std::pair<int, int> original_size(const Sample& s) {
  auto w = s.meta.find("original_width"), h = s.meta.find("original_height");
  if (w != s.meta.end() && h != s.meta.end()) {
    int ow = positive_int(*w), oh = positive_int(*h);
    if (ow > 0 && oh > 0) return {ow, oh};
  }
  return {s.width, s.height};
}

std::optional<FilterVerdict> check_image_caption(const Sample& s, const FilterParams& p) {
  const auto [width, height] = original_size(s);
  const bool sized = width > 0 && height > 0;
  const std::string size = sized ? fmt::format("{}x{}", width, height) : "size unknown";
  if (p.min_image_size > 0 && (!sized || std::min(width, height) < p.min_image_size))
    return FilterVerdict{"min_image_size", sized ? fmt::format("{} < {}", size, p.min_image_size) : size};
  if (p.max_aspect > 0) {
    if (!sized) return FilterVerdict{"max_aspect", size};
    double aspect = (double)std::max(width, height) / std::min(width, height);
    if (aspect > p.max_aspect)
      return FilterVerdict{"max_aspect", fmt::format("{} is {:.3g} > {:g}", size, aspect, p.max_aspect)};
  }
  const std::string_view caption = s.caption ? std::string_view(*s.caption) : std::string_view();
  if (p.min_caption_words > 0) {
    int words = word_count(caption);
    if (words < p.min_caption_words)
      return FilterVerdict{"min_caption_words",
                           s.caption ? fmt::format("{} < {}", words, p.min_caption_words) : "no caption"};
  }
  if (p.min_caption_chars > 0) {
    int chars = utf8_chars(caption);
    if (chars < p.min_caption_chars)
      return FilterVerdict{"min_caption_chars",
                           s.caption ? fmt::format("{} < {}", chars, p.min_caption_chars) : "no caption"};
  }
  return std::nullopt;
}

std::optional<FilterVerdict> check_clip_score(const Sample& s, const FilterParams& p) {
  if (!p.min_clip_score) return std::nullopt;
  if (!s.org_clip_score) return FilterVerdict{"min_clip_score", s.caption ? "not scored" : "no caption"};
  // the column's scale (cosine x 100): 0.28 -> 28.000000000000004 must keep a score of 28
  if (*s.org_clip_score < *p.min_clip_score * 100 - 1e-9)
    return FilterVerdict{"min_clip_score",
                         fmt::format("{:.4f} < {:g}", *s.org_clip_score / 100, *p.min_clip_score)};
  return std::nullopt;
}

std::optional<FilterVerdict> check_safety(const Sample& s, const FilterParams& p) {
  if (p.max_punsafe && s.punsafe && *s.punsafe >= *p.max_punsafe)
    return FilterVerdict{"unsafe", fmt::format("punsafe {:.4f} >= {:g}", *s.punsafe, *p.max_punsafe)};
  if (p.unsafe_concepts && s.unsafe_concept)
    return FilterVerdict{"unsafe_concept",
                         fmt::format("{}, margin {:.4f}", *s.unsafe_concept, s.unsafe_margin.value_or(0))};
  return std::nullopt;
}

namespace {

class FilterStage : public Stage {
 public:
  FilterStage(const FilterParams& p, FilterPhase phase) : p_(p), phase_(phase) {}
  std::string name() const override {
    return phase_ == FilterPhase::image_caption ? "filter" : "rank_filter";
  }
  size_t max_batch() const override { return 64; }
  void process(std::vector<Sample*>& batch) override {
    for (Sample* s : batch) {
      if (!s->ok()) continue;
      auto v = phase_ == FilterPhase::image_caption ? check_image_caption(*s, p_) : check_clip_score(*s, p_);
      if (!v && phase_ == FilterPhase::after_rank) v = check_safety(*s, p_);
      if (v) s->filter(v->reason, v->detail);
    }
  }

 private:
  FilterParams p_;
  FilterPhase phase_;
};

class DropFilteredSink : public ShardSink {
 public:
  explicit DropFilteredSink(std::unique_ptr<ShardSink> inner) : inner_(std::move(inner)) {}
  void write(const Sample& s) override {
    if (s.status != Status::filtered) inner_->write(s);
  }
  void prepare(const ShardStats& stats) override { inner_->prepare(stats); }
  void commit(const ShardStats& stats) override { inner_->commit(stats); }

 private:
  std::unique_ptr<ShardSink> inner_;
};

}  // namespace

std::unique_ptr<Stage> make_filter_stage(const FilterParams& p, FilterPhase phase) {
  return std::make_unique<FilterStage>(p, phase);
}

std::unique_ptr<ShardSink> drop_filtered_sink(std::unique_ptr<ShardSink> inner) {
  return std::make_unique<DropFilteredSink>(std::move(inner));
}

}  // namespace capforge
