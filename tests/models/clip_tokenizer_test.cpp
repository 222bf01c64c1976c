// The CLIP tokenizer against ids from OpenAI's own tokenizer and its real vocabulary.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include <unistd.h>

#include "capforge/sample.h"
#include "models/clip/tokenizer.h"

namespace capforge::clip {

namespace {
const char* kVocab = CAPFORGE_SHARED_DIR "/data/clip/bpe_simple_vocab_16e6.txt.gz";

const Tokenizer& openai() {
  static Tokenizer* t = new Tokenizer(Tokenizer::from_openai_bpe(kVocab));
  return *t;
}

#define NEED_VOCAB() \
  if (!std::filesystem::exists(kVocab)) GTEST_SKIP() << "no " << kVocab << " (../shared is not here)"
}  // namespace

TEST(ClipTokenizer, KnownPublicIds) {
  NEED_VOCAB();
  EXPECT_EQ(openai().encode("a photo of a cat"), (std::vector<int>{49406, 320, 1125, 539, 320, 2368, 49407}));
  EXPECT_EQ(openai().vocab_size(), 49408u);
}

TEST(ClipTokenizer, MatchesOpenAiOnHardCases) {
  NEED_VOCAB();
  std::ifstream f(CAPFORGE_TEST_DATA "/clip_tokenizer_ids.json");
  Json j = Json::parse(f);
  for (auto& c : j["cases"]) {
    std::string text = c["text"];
    std::vector<int> want = c["ids"];
    std::vector<int> got = openai().encode(text, 1 << 20);  // no truncation, as recorded
    EXPECT_EQ(got, want) << text;
    // and with the context of 77: BOS + first 75 + EOS
    auto cut = openai().encode(text);
    ASSERT_LE(cut.size(), 77u);
    if (want.size() > 77) {
      EXPECT_EQ(std::vector<int>(cut.begin(), cut.end() - 1),
                std::vector<int>(want.begin(), want.begin() + 76));
      EXPECT_EQ(cut.back(), 49407);
    }
  }
}

TEST(ClipTokenizer, EdgeInputs) {
  NEED_VOCAB();
  EXPECT_EQ(openai().encode(""), (std::vector<int>{49406, 49407}));
  EXPECT_EQ(openai().encode(" \t\n "), (std::vector<int>{49406, 49407}));
  auto bad = openai().encode("bad \xFF\xFE bytes");  // invalid UTF-8: replaced, never thrown
  EXPECT_GT(bad.size(), 4u);
  std::string huge(10000, 'x');
  huge += " y";
  EXPECT_EQ(openai().encode(huge).size(), 77u);
}

TEST(ClipTokenizer, HfDirLoadsTheSameVocabulary) {
  NEED_VOCAB();
  // vocab.json / merges.txt as Hugging Face publishes them derive exactly from OpenAI's file.
  auto dir = std::filesystem::temp_directory_path() / ("capforge-hf-tok-" + std::to_string(getpid()));
  openai().save_hf(dir.string());
  Tokenizer hf = Tokenizer::from_hf_dir(dir.string());
  std::filesystem::remove_all(dir);
  EXPECT_EQ(hf.vocab_size(), 49408u);
  std::ifstream f(CAPFORGE_TEST_DATA "/clip_tokenizer_ids.json");
  for (auto& c : Json::parse(f)["cases"])
    EXPECT_EQ(hf.encode(c["text"].get<std::string>()), openai().encode(c["text"].get<std::string>()));
}

TEST(HtmlUnescape, BehavesLikePython) {
  EXPECT_EQ(html_unescape("a &amp; b"), "a & b");
  EXPECT_EQ(html_unescape("&lt;3 &gt"), "<3 >");  // ';' optional for legacy names
  EXPECT_EQ(html_unescape("&#39;x&#x27;"), "'x'");
  EXPECT_EQ(html_unescape("&#128512;"), "\xF0\x9F\x98\x80");
  EXPECT_EQ(html_unescape("&#0;"), "\xEF\xBF\xBD");
  EXPECT_EQ(html_unescape("&#x80;"), "\xE2\x82\xAC");  // windows-1252 fix-up
  EXPECT_EQ(html_unescape("&notit;"), "\xC2\xACit;");  // longest known prefix
  EXPECT_EQ(html_unescape("&bogus; & &#; &#xZ"), "&bogus; & &#; &#xZ");
  EXPECT_EQ(clean_text("  A&amp;amp;B \t C  "), "a&b c");
  EXPECT_EQ(clean_text("\xC4\xB0stanbul"), "i\xCC\x87stanbul");
}

TEST(Pretokenize, ClipPattern) {
  EXPECT_EQ(pretokenize("it's 2023!! ok"),
            (std::vector<std::string>{"it", "'s", "2", "0", "2", "3", "!!", "ok"}));
  EXPECT_EQ(pretokenize("''s"), (std::vector<std::string>{"''", "s"}));
  EXPECT_EQ(pretokenize("a<|endoftext|>b"), (std::vector<std::string>{"a", "<|endoftext|>", "b"}));
  EXPECT_EQ(pretokenize("!<|endoftext|>"), (std::vector<std::string>{"!<|", "endoftext", "|>"}));
  EXPECT_EQ(pretokenize("<|endoftext|>b"), (std::vector<std::string>{"<|endoftext|>", "b"}));
}

}  // namespace capforge::clip

namespace capforge::clip {

// Without ../shared: BPE mechanics on a small OpenAI-format vocabulary, ids worked out by hand
// (bytes in GPT-2 order, then bytes + "</w>", then merges by rank, then the specials).
TEST(ClipTokenizer, TinyVocabularyByHand) {
  auto path = std::filesystem::temp_directory_path() / ("capforge-tiny-bpe-" + std::to_string(getpid()));
  std::ofstream(path) << "#version: test\nt h\nth e</w>\nc a\nca t</w>\nh e\n";
  Tokenizer t = Tokenizer::from_openai_bpe(path.string());
  std::filesystem::remove(path);
  EXPECT_EQ(t.vocab_size(), 512u + 5 + 2);
  EXPECT_EQ(t.bos(), 517);
  EXPECT_EQ(t.eos(), 518);
  // "the": t h e</w> -> (t h) rank 0 beats (h e) rank 4 -> th e</w> -> the</w> (513)
  // "cat": c a t</w> -> ca t</w> -> cat</w> (515); "xyz": no merges: x (87), y (88), z</w> (256 + 89)
  EXPECT_EQ(t.encode("The CAT xyz"), (std::vector<int>{517, 513, 515, 87, 88, 345, 518}));
  // "!" is byte 0x21, the first printable byte: id 0, or 256 with "</w>"
  EXPECT_EQ(t.encode("!"), (std::vector<int>{517, 256, 518}));
  EXPECT_EQ(t.encode("hehe", 3), (std::vector<int>{517, 516, 518}));  // he he</w>... cut to one token
}

}  // namespace capforge::clip
