// The toolkit's scorers on tokenised captions (tokens joined by single spaces), one per file:
// bleu.cpp, rouge.cpp, cider.cpp. Each follows pycocoevalcap's arithmetic, quirks included.
#pragma once

#include <array>
#include <string>
#include <unordered_map>
#include <vector>

namespace capforge::eval {

// Python's str.split(): runs of whitespace separate, no empty tokens.
std::vector<std::string> split_ws(const std::string& s);

// n-gram (n = 1..4) counts of a token list, keys joined with '\x1f'; index n-1 holds the n-grams.
using NgramCounts = std::array<std::unordered_map<std::string, int>, 4>;
NgramCounts ngram_counts(const std::vector<std::string>& words);

// Bleu(4) with the "closest" reference length: corpus BLEU-1..4, and per image BLEU-1..4.
std::array<double, 4> bleu(const std::vector<std::string>& preds,
                           const std::vector<std::vector<std::string>>& refs,
                           std::vector<std::array<double, 4>>& per_image);

// Rouge(): per image ROUGE-L F with beta 1.2 (max precision and max recall over references).
std::vector<double> rouge_l(const std::vector<std::string>& preds,
                            const std::vector<std::vector<std::string>>& refs);

// Cider(): per image CIDEr-D, document frequencies from `refs`.
std::vector<double> cider_d(const std::vector<std::string>& preds,
                            const std::vector<std::vector<std::string>>& refs);

}  // namespace capforge::eval
