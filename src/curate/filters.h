// Curation filters of `capforge caption` (DataComp's "basic" filter and an absolute CLIP-score
// threshold). Nothing is deleted: a sample that fails a criterion gets status `filtered` and the
// reason in its error message (Sample::filter); later stages skip it like a failed one, but it is
// done (never retried) and not a failure. --drop-filtered leaves such rows out of the outputs.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "capforge/pipeline.h"
#include "capforge/sample.h"

namespace capforge {

// Every criterion is "keep if ..."; 0 / unset turns it off. A value the criterion needs but the
// sample lacks (no size, no caption, no score) fails that criterion, as NaN does in DataComp's
// pandas comparisons.
struct FilterParams {
  int min_image_size = 0;     // keep min(width, height) >= this (original, EXIF-oriented size)
  double max_aspect = 0;      // keep max(w, h) / min(w, h) <= this
  int min_caption_words = 0;  // keep original captions of >= this many whitespace-separated words
  int min_caption_chars = 0;  // keep original captions of >= this many characters (code points)
  // keep org_clip_score >= this, in plain cosine (the column holds cosine x 100). Compared on the
  // column's scale with a 1e-9 slack, so `org_clip_score >= 100 * S` in SQL selects the same rows.
  std::optional<double> min_clip_score;
  // --filter-unsafe P: filter samples whose NSFW head score (Sample::punsafe) is >= P (0.5 is what
  // clip-retrieval and NeMo Curator use); a sample the head did not score is kept.
  std::optional<double> max_punsafe;
  // --filter-unsafe-concepts: filter samples a zero-shot concept flagged (Sample::unsafe_concept).
  bool unsafe_concepts = false;

  bool image_or_caption() const {
    return min_image_size > 0 || max_aspect > 0 || min_caption_words > 0 || min_caption_chars > 0;
  }
  // the criteria that need the rank (and safety) stages' outputs
  bool after_rank() const { return min_clip_score.has_value() || max_punsafe.has_value() || unsafe_concepts; }
  bool any() const { return image_or_caption() || after_rank(); }
};

// DataComp's "basic" filter without its fastText English detection: min side >= 200, aspect <= 3,
// caption > 2 words and > 5 characters (here: >= 3 words, >= 6 characters).
FilterParams basic_filter();

// Why a sample fails: the criterion's name (the `filtered_by` key in stats) and the values.
struct FilterVerdict {
  std::string reason, detail;
};

// The size the image criteria judge: meta original_width/original_height when both are positive
// whole numbers (img2dataset and `capforge download` shards store a resized or cropped image and
// the original's size in their json, as DataComp's basic filter reads it), else s.width/height (the
// decoded stored image).
std::pair<int, int> original_size(const Sample& s);

// The first image or caption criterion (in the order of FilterParams) the sample fails, if any.
std::optional<FilterVerdict> check_image_caption(const Sample& s, const FilterParams& p);
// The CLIP-score criterion, if set and failed.
std::optional<FilterVerdict> check_clip_score(const Sample& s, const FilterParams& p);
// The safety criteria (punsafe, then zero-shot concepts), if set and failed.
std::optional<FilterVerdict> check_safety(const Sample& s, const FilterParams& p);

// Number of Unicode code points of UTF-8 text (bytes that do not continue a sequence).
int utf8_chars(std::string_view s);

// A stage that marks successful samples filtered: the image/caption criteria (run it right after
// decode, so filtered samples skip the models) or the CLIP-score criterion (run it after the
// ranker, which computes org_clip_score).
// image_caption: right after decode; after_rank: CLIP score, then safety (after the safety stage).
enum class FilterPhase { image_caption, after_rank };
std::unique_ptr<Stage> make_filter_stage(const FilterParams& p, FilterPhase phase);

// Wraps a sink so that filtered samples are not written (their stats still count them).
std::unique_ptr<ShardSink> drop_filtered_sink(std::unique_ptr<ShardSink> inner);

}  // namespace capforge
