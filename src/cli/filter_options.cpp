#include "cli/filter_options.h"

#include <fmt/format.h>

#include <cmath>

#include "cli/common.h"

namespace capforge::cli {

namespace {
constexpr const char* kGroup =
    "Curation filters (filtered rows stay, status filtered, unless --drop-filtered)";

// A plain cosine in [-1, 1]; a value on the column's x100 scale gets a hint.
CLI::Validator cosine_value() {
  return CLI::Validator(
      [](std::string& v) -> std::string {
        char* end = nullptr;
        double d = std::strtod(v.c_str(), &end);
        if (v.empty() || *end || !std::isfinite(d)) return "must be a number, got " + v;
        if (d > 1 && d <= 100)
          return fmt::format(
              "is a plain cosine in [-1, 1] (DataComp's 0.28, not {}; the org_clip_score "
              "column holds cosine x 100)",
              v);
        if (d < -1 || d > 1) return "must be a cosine in [-1, 1], got " + v;
        return "";
      },
      "-1..1");
}
}  // namespace

void add_filter_options(CLI::App* cmd, FilterCli& f) {
  cmd->add_option(
         "--filter", f.preset,
         "preset: basic (DataComp's: --min-image-size 200 --max-aspect-ratio 3 --min-caption-words 3 "
         "--min-caption-chars 6; flags of its own override it) or none")
      ->capture_default_str()
      ->check(CLI::IsMember({"none", "basic"}))
      ->group(kGroup);
  cmd->add_option("--min-image-size", f.params.min_image_size,
                  "keep images whose smaller side (original size) is >= this (0: off)")
      ->check(int_range(0, 65536))
      ->group(kGroup);
  cmd->add_option("--max-aspect-ratio", f.params.max_aspect,
                  "keep images with longer side / shorter side <= this (0: off)")
      ->check(CLI::Validator(
          [](std::string& v) -> std::string {
            char* end = nullptr;
            double d = std::strtod(v.c_str(), &end);
            if (v.empty() || *end || !std::isfinite(d) || (d != 0 && d < 1))
              return "must be 0 (off) or a ratio >= 1, got " + v;
            return "";
          },
          "0 or >=1"))
      ->group(kGroup);
  cmd->add_option("--min-caption-words", f.params.min_caption_words,
                  "keep original captions of >= this many words (0: off)")
      ->check(int_range(0, 100000))
      ->group(kGroup);
  cmd->add_option("--min-caption-chars", f.params.min_caption_chars,
                  "keep original captions of >= this many characters (0: off)")
      ->check(int_range(0, 100000))
      ->group(kGroup);
  cmd->add_option_function<double>(
         "--min-clip-score", [&f](const double& v) { f.params.min_clip_score = v; },
         "keep samples whose original caption's CLIP score (first ranker, plain cosine, e.g. 0.28) is >= "
         "this; needs --rank; applied after ranking")
      ->check(cosine_value())
      ->group(kGroup);
  cmd->add_option_function<double>(
         "--filter-unsafe", [&f](const double& v) { f.params.max_punsafe = v; },
         "filter samples whose punsafe (--nsfw-head) is >= P (0.5: clip-retrieval's and NeMo Curator's "
         "choice); applied after ranking")
      ->check(CLI::Range(0.0, 1.0))
      ->group(kGroup);
  cmd->add_flag("--filter-unsafe-concepts", f.params.unsafe_concepts,
                "filter samples a zero-shot concept of --unsafe-concepts flagged (unsafe_concept set)")
      ->group(kGroup);
  cmd->add_flag("--drop-filtered", f.drop,
                "leave filtered samples out of the outputs (stats still count them)")
      ->group(kGroup);
}

void resolve_filter_options(FilterCli& f, CLI::App* cmd) {
  if (f.preset != "basic") return;
  FilterParams basic = basic_filter();
  auto unset = [cmd](const char* flag) { return cmd->get_option(flag)->count() == 0; };
  if (unset("--min-image-size")) f.params.min_image_size = basic.min_image_size;
  if (unset("--max-aspect-ratio")) f.params.max_aspect = basic.max_aspect;
  if (unset("--min-caption-words")) f.params.min_caption_words = basic.min_caption_words;
  if (unset("--min-caption-chars")) f.params.min_caption_chars = basic.min_caption_chars;
}

Json filter_fingerprint(const FilterCli& f) {
  if (!f.params.any() && !f.drop) return nullptr;
  const FilterParams& p = f.params;
  return Json{{"min_image_size", p.min_image_size},
              {"max_aspect", p.max_aspect},
              {"min_caption_words", p.min_caption_words},
              {"min_caption_chars", p.min_caption_chars},
              {"min_clip_score", p.min_clip_score ? Json(*p.min_clip_score) : Json(nullptr)},
              {"max_punsafe", p.max_punsafe ? Json(*p.max_punsafe) : Json(nullptr)},
              {"unsafe_concepts", p.unsafe_concepts},
              {"drop", f.drop}};
}

}  // namespace capforge::cli
