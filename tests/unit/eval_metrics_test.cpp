// Caption metrics on cases worked out by hand from pycocoevalcap's definitions (the arithmetic is in
// the comments), and the PTB tokenisation rules the toolkit applies first.
#include <gtest/gtest.h>

#include <cmath>

#include "capforge/eval.h"

namespace capforge {

using Toks = std::vector<std::string>;

TEST(CocoTokenize, PtbRulesThenPunctuationRemoved) {
  EXPECT_EQ(coco_tokenize("A man riding a horse."), (Toks{"a", "man", "riding", "a", "horse"}));
  EXPECT_EQ(coco_tokenize("Don't stop!"), (Toks{"do", "n't", "stop"}));
  EXPECT_EQ(coco_tokenize("Two dogs can't swim; they won't."), (Toks{"two", "dogs", "ca", "n't", "swim", "they", "wo", "n't"}));
  EXPECT_EQ(coco_tokenize("The dog's toy (red), 1,000 times..."),
            (Toks{"the", "dog", "'s", "toy", "-lrb-", "red", "-rrb-", "1,000", "times"}));
  EXPECT_EQ(coco_tokenize("\"Hello,\" she said"), (Toks{"hello", "she", "said"}));
  EXPECT_EQ(coco_tokenize("A U.S. flag"), (Toks{"a", "u.s.", "flag"}));
  EXPECT_EQ(coco_tokenize("made in the U.S."), (Toks{"made", "in", "the", "u.s."}));
  EXPECT_EQ(coco_tokenize("cats and/or dogs"), (Toks{"cats", "and\\/or", "dogs"}));
  EXPECT_EQ(coco_tokenize("I cannot"), (Toks{"i", "can", "not"}));
  EXPECT_EQ(coco_tokenize("a black-and-white photo - old"), (Toks{"a", "black-and-white", "photo", "old"}));
  EXPECT_EQ(coco_tokenize("the 10:30 a.m. train: late"), (Toks{"the", "10:30", "a.m.", "train", "late"}));
  EXPECT_EQ(coco_tokenize("It\u2019s a \u201Ctest\u201D \u2014 ok\u2026"), (Toks{"it", "'s", "a", "test", "ok"}));
  EXPECT_EQ(coco_tokenize("The kids' bikes [new]"), (Toks{"the", "kids", "bikes", "-lsb-", "new", "-rsb-"}));
  EXPECT_EQ(coco_tokenize("dog,cat"), (Toks{"dog", "cat"}));
  EXPECT_EQ(coco_tokenize("SMALL \u00C9COLE"), (Toks{"small", "\u00E9cole"}));
  EXPECT_EQ(coco_tokenize("  \n "), Toks{});
  EXPECT_EQ(coco_tokenize("?!..."), Toks{});
}

TEST(CaptionMetrics, IdenticalCaptionsScorePerfectBleuAndRouge) {
  auto m = score_captions({"a dog runs on the grass"}, {{"A dog runs on the grass."}});
  for (double b : m.bleu) EXPECT_NEAR(b, 1.0, 1e-9);
  EXPECT_NEAR(m.rouge_l, 1.0, 1e-12);
  // one image: CIDEr-D's reference length log(1) = 0 and every idf is 0 - log(df=1) = 0
  EXPECT_EQ(m.cider_d, 0.0);
}

TEST(CaptionMetrics, BleuWorkedExample) {
  // pred: the cat sat on the mat / ref: the cat is on the mat (6 words each, no brevity penalty)
  // 1-grams: the(2) cat on mat = 5/6; 2-grams: "the cat" "on the" "the mat" = 3/5;
  // 3-grams: "on the mat" = 1/4; 4-grams: 0/3
  auto m = score_tokenized({"the cat sat on the mat"}, {{"the cat is on the mat"}});
  EXPECT_NEAR(m.bleu[0], 5.0 / 6, 1e-9);
  EXPECT_NEAR(m.bleu[1], std::sqrt(5.0 / 6 * 3.0 / 5), 1e-9);
  EXPECT_NEAR(m.bleu[2], std::cbrt(5.0 / 6 * 3.0 / 5 / 4), 1e-9);
  // 4-gram precision (0 + 1e-15) / (3 + 1e-9): the toolkit's smoothing keeps it just above 0
  EXPECT_NEAR(m.bleu[3], std::pow(5.0 / 6 * 3.0 / 5 / 4 * (1e-15 / (3 + 1e-9)), 0.25), 1e-12);
  EXPECT_NEAR(m.image_bleu4[0], m.bleu[3], 1e-12);
  // ROUGE-L: LCS "the cat on the mat" = 5, P = R = 5/6, F = 5/6
  EXPECT_NEAR(m.rouge_l, 5.0 / 6, 1e-12);
}

TEST(CaptionMetrics, BleuBrevityPenaltyAndClosestReferenceLength) {
  // pred 2 words; refs of 3 and 6 words: the closest is 3, BP = exp(1 - 3/2)
  auto m = score_tokenized({"a dog"}, {{"a big dog", "a dog on a green lawn"}});
  EXPECT_NEAR(m.bleu[0], std::exp(1 - 3.0 / 2) * 1.0, 1e-9);
  // clipping: "the the the" against "the cat": 1 of 3 unigrams count
  auto c = score_tokenized({"the the the"}, {{"the cat sat"}});
  EXPECT_NEAR(c.bleu[0], 1.0 / 3, 1e-9);
}

TEST(CaptionMetrics, RougeUsesMaxPrecisionAndMaxRecallOverReferences) {
  // pred "a b c d"; ref1 "a b" (LCS 2: P 2/4, R 1); ref2 "a b c d e f g h" (LCS 4: P 1, R 1/2)
  // P_max = 1, R_max = 1: F = 1 although no single reference matches fully
  auto m = score_tokenized({"a b c d"}, {{"a b", "a b c d e f g h"}});
  EXPECT_NEAR(m.rouge_l, 1.0, 1e-12);
  // P = 1/2, R = 1/4: F = (1 + 1.44) * 0.5 * 0.25 / (0.25 + 1.44 * 0.5)
  auto n = score_tokenized({"x a y b"}, {{"a b c d e f g h"}});
  EXPECT_NEAR(n.rouge_l, 2.44 * 0.125 / (0.25 + 0.72), 1e-12);
  // an empty prediction is one empty token: score 0, not a division by zero
  EXPECT_EQ(score_tokenized({""}, {{"a b"}}).rouge_l, 0.0);
}

TEST(CaptionMetrics, CiderDWorkedExample) {
  // Two images, ref_len = log 2. "a" is in both images' references (df 2, weight log2 - log2 = 0);
  // "cat", "dog", "a cat", "a dog" have df 1 (weight log 2).
  // Image 1, pred = ref = "a cat": unigram cosine (log2)^2 / (log2 * log2) = 1, bigram 1, tri/4 0;
  // lengths (bigram counts) equal: score = (1 + 1 + 0 + 0) / 4 * 10 = 5. Image 2 likewise.
  auto m = score_tokenized({"a cat", "a dog"}, {{"a cat"}, {"a dog"}});
  EXPECT_NEAR(m.image_cider_d[0], 5.0, 1e-9);
  EXPECT_NEAR(m.cider_d, 5.0, 1e-9);
  // Swapped: no weighted n-gram in common -> 0
  auto s = score_tokenized({"a dog", "a cat"}, {{"a cat"}, {"a dog"}});
  EXPECT_NEAR(s.cider_d, 0.0, 1e-12);
  // Length penalty: pred has 2 bigrams, ref 1: delta 1 -> every n-gram term times exp(-1/72)
  auto l = score_tokenized({"a cat cat", "a dog"}, {{"a cat"}, {"a dog"}});
  // unigrams: hyp {a:0, cat:2 log2}, ref {a:0, cat:log2}: min(2l, l) * l / (2l * l) = 1/2
  // bigrams: hyp {a cat: l, cat cat: l} (df of "cat cat" is 0 -> max(1, 0) -> weight l), ref {a cat: l}:
  //   l * l / (sqrt(2) l * l) = 1/sqrt(2)
  EXPECT_NEAR(l.image_cider_d[0], (0.5 + 1 / std::sqrt(2.0)) / 4 * 10 * std::exp(-1.0 / 72), 1e-9);
}

TEST(CaptionMetrics, BadShapesAreErrorsAndMetricNamesResolve) {
  EXPECT_THROW(score_captions({"a"}, {}), std::invalid_argument);
  EXPECT_THROW(score_captions({"a"}, {{}}), std::invalid_argument);
  auto m = score_tokenized({"a b"}, {{"a b"}});
  EXPECT_EQ(metric_value(m, "rouge_l"), m.rouge_l);
  EXPECT_EQ(metric_value(m, "bleu_2"), m.bleu[1]);
  EXPECT_THROW(metric_value(m, "meteor"), std::invalid_argument);
}

TEST(TextStats, LengthsVocabularyAndDiversity) {
  auto s = text_stats({"a red circle", "A red square.", "", "a big big big red circle on a mat"});
  EXPECT_EQ(s.captions, 4u);
  EXPECT_EQ(s.empty, 1u);
  EXPECT_DOUBLE_EQ(s.mean_words, (3 + 3 + 0 + 9) / 4.0);
  EXPECT_DOUBLE_EQ(s.median_words, 3.0);
  EXPECT_DOUBLE_EQ(s.p95_words, 9.0);
  EXPECT_EQ(s.vocabulary, 7u);  // a red circle square big on mat
  EXPECT_EQ(s.length_histogram.at(3), 2u);
  // bigrams: 2 + 2 + 0 + 8 = 12; distinct: "a red" "red circle" "red square" "a big" "big big"
  // "big red" "circle on" "on a" "a mat" = 9
  EXPECT_NEAR(s.distinct_bigrams, 9.0 / 12, 1e-12);
}

}  // namespace capforge
