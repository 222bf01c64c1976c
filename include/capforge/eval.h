// Caption metrics as the COCO caption evaluation toolkit (pycocoevalcap) computes them, and the
// length and vocabulary statistics Recap-DataComp-1B reports.
#pragma once

#include <array>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace capforge {

// pycocoevalcap's tokenisation: Stanford PTBTokenizer (-preserveLines -lowerCase) rules, then its
// punctuation list removed. Deviations are listed in docs/eval.md.
std::vector<std::string> coco_tokenize(std::string_view caption);

struct CaptionMetrics {
  std::array<double, 4> bleu{};  // corpus BLEU-1..4, "closest" reference length (pycocoevalcap Bleu)
  double rouge_l = 0;            // mean per-image ROUGE-L, beta 1.2
  double cider_d = 0;            // mean per-image CIDEr-D: n-grams 1..4, sigma 6, clipped, x10
  size_t images = 0;
  // Per image, in input order.
  std::vector<double> image_bleu4, image_rouge_l, image_cider_d;
};

// Scores preds[i] against refs[i] (each at least one reference). Captions are raw text, tokenised
// with coco_tokenize. CIDEr-D's document frequencies come from these references, as in the toolkit.
// Throws std::invalid_argument on mismatched sizes or an image without references.
CaptionMetrics score_captions(const std::vector<std::string>& preds,
                              const std::vector<std::vector<std::string>>& refs);

// The same on already tokenised captions (tokens joined by single spaces).
CaptionMetrics score_tokenized(const std::vector<std::string>& preds,
                               const std::vector<std::vector<std::string>>& refs);

// Names accepted where a single metric is chosen (the tuner's --metric): bleu_1..bleu_4, rouge_l,
// cider_d. Throws std::invalid_argument for another name.
double metric_value(const CaptionMetrics& m, const std::string& name);
const std::vector<std::string>& metric_names();

struct TextStats {
  size_t captions = 0, empty = 0;
  double mean_words = 0, median_words = 0, p95_words = 0;
  size_t vocabulary = 0;                   // distinct lower-cased tokens (coco_tokenize)
  double distinct_bigrams = 0;             // distinct / total bigrams: a diversity measure
  std::map<int, size_t> length_histogram;  // words -> captions
};
TextStats text_stats(const std::vector<std::string>& captions);

}  // namespace capforge
