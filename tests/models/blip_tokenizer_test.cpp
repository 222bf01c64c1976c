// BLIP's WordPiece tokenizer (src/models/blip/tokenizer.h) against Hugging Face's own code.
//
// Golden ids: transformers 4.47 (slow) BertTokenizer on bert-base-uncased's vocab with BLIP's
// setup (add_special_tokens bos_token [DEC], additional_special_tokens [ENC]), produced by
// /tmp/refcheck/blip_tok/ref.py (not in the repo): text given as bytes, decoded with
// errors="replace"; ids from tok.encode(text, add_special_tokens=False, split_special_tokens=True)
// with split_special_tokens also passed on to _tokenize (HF forgets to, so its BasicTokenizer still
// keeps a whole word "[SEP]" as the special token; capforge's text is plain text, always).
// HF's plain encode() differs only on "special_text": it gives [SEP]=102, [DEC]=30522, [CLS]=101
// (and with split_special_tokens=True alone: 102 for "[SEP]", [UNK] for "[DEC]").
// Decode strings: tok.decode(ids, skip_special_tokens=True).
//
// The vocabulary: llama.cpp's models/ggml-vocab-bert-bge.gguf holds bert-base-uncased's 30522
// tokens, but as llama.cpp's converter stores them: "##x" -> "x", "x" -> "\u2581x", "[...]"
// unchanged. bert_vocab() undoes that (checked: 30522 distinct tokens, "##s" = 2015, "the" = 1996).
#include <gtest/gtest.h>

#include <fstream>
#include <random>

#include <nlohmann/json.hpp>

#include "gguf.h"
#include "models/blip/tokenizer.h"
#include "support/fixtures.h"

namespace capforge::blip {
namespace {

using namespace std::literals;
using Json = nlohmann::json;

const std::string kBgeGguf = CAPFORGE_LLAMA_SOURCE "/models/ggml-vocab-bert-bge.gguf";

std::vector<int> join(std::vector<int> a, const std::vector<int>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

void write(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary);
  f << text;
  ASSERT_TRUE(f.good()) << path;
}

std::string lines(const std::vector<std::string>& tokens) {
  std::string s;
  for (auto& t : tokens) s += t + "\n";
  return s;
}

// bert-base-uncased's vocab.txt lines from the gguf (empty when the gguf is absent).
const std::vector<std::string>& bert_vocab() {
  static const std::vector<std::string> vocab = [] {
    std::vector<std::string> v;
    gguf_context* g = gguf_init_from_file(kBgeGguf.c_str(), gguf_init_params{true, nullptr});
    if (!g) return v;
    const int64_t key = gguf_find_key(g, "tokenizer.ggml.tokens");
    const std::string marker = "\u2581";
    for (size_t i = 0; key >= 0 && i < gguf_get_arr_n(g, key); ++i) {
      std::string t = gguf_get_arr_str(g, key, i);
      if (t.size() >= 2 && t.front() == '[' && t.back() == ']')
        v.push_back(t);
      else if (t.rfind(marker, 0) == 0)
        v.push_back(t.substr(marker.size()));
      else
        v.push_back("##" + t);
    }
    gguf_free(g);
    return v;
  }();
  return vocab;
}

#define NEED_BERT_VOCAB() \
  if (bert_vocab().empty()) GTEST_SKIP() << "no " << kBgeGguf << " (llama.cpp source not here)"

// BLIP's tokenizer files as BlipProcessor.save_pretrained writes them (legacy layout, no
// added_tokens_decoder: [DEC] and [ENC] get their ids by being named special tokens).
const char* kBlipConfig = R"({"do_lower_case": true, "tokenize_chinese_chars": true, "strip_accents": null,
  "unk_token": "[UNK]", "sep_token": "[SEP]", "pad_token": "[PAD]", "cls_token": "[CLS]",
  "mask_token": "[MASK]", "tokenizer_class": "BertTokenizer", "model_max_length": 512})";
const char* kBlipSpecialMap = R"({"bos_token": "[DEC]", "additional_special_tokens": ["[ENC]"],
  "unk_token": "[UNK]", "sep_token": "[SEP]", "pad_token": "[PAD]", "cls_token": "[CLS]", "mask_token": "[MASK]"})";

const WordPieceTokenizer& blip() {
  static const WordPieceTokenizer* t = [] {
    test::TempDir dir;
    write(dir / "vocab.txt", lines(bert_vocab()));
    write(dir / "tokenizer_config.json", kBlipConfig);
    write(dir / "special_tokens_map.json", kBlipSpecialMap);
    return new WordPieceTokenizer(WordPieceTokenizer::load(dir.path()));
  }();
  return *t;
}

struct Case {
  const char* name;
  std::string text;
  std::vector<int> ids;
};

// ids from transformers 4.47 BertTokenizer (see the top of this file)
const std::vector<Case>& hf_cases() {
  static const std::vector<Case> cases = {
      {"ascii", std::string("a dog sitting on a bench."sv), {1037, 3899, 3564, 2006, 1037, 6847, 1012}},
      {"upper", std::string("A DOG On The GRASS"sv), {1037, 3899, 2006, 1996, 5568}},
      {"accents", std::string("café naïve Ångström résumé"sv), {7668, 15743, 17076, 15687, 13746}},
      {"cjk", std::string("東京タワー 北京"sv), {1879, 1755, 1709, 30262, 30265, 1781, 1755}},
      {"cjk_glued", std::string("北京is東京"sv), {1781, 1755, 2003, 1879, 1755}},
      {"hangul",
       std::string("한국어 텍스트"sv),
       {1469, 30006, 30021, 29991, 30014, 30020, 29999, 30008, 1467, 30009, 30020, 29997, 30017, 30003,
        30017}},
      {"possessive", std::string("the dog's bone"sv), {1996, 3899, 1005, 1055, 5923}},
      {"dont", std::string("don't!!"sv), {2123, 1005, 1056, 999, 999}},
      {"ellipsis", std::string("wait... what?"sv), {3524, 1012, 1012, 1012, 2054, 1029}},
      {"dashes",
       std::string("a--b x-ray 3-4"sv),
       {1037, 1011, 1011, 1038, 1060, 1011, 4097, 1017, 1011, 1018}},
      {"emoji",
       std::string("dog 🐶 and cat🐱 ❤\357\270\217 👍🏽"sv),
       {3899, 100, 1998, 100, 100, 100}},
      {"zwj", std::string("family 👨\342\200\215👩\342\200\215👧 ok"sv), {2155, 100, 7929}},
      {"controls", std::string("a\000b\007c\033d\177e\013f\014g"sv), {5925, 3207, 2546, 2290}},
      {"whitespace",
       std::string(
           "tab\011here\012new\015\012line\302\240nbsp\342\200\203em\343\200\200ideo\342\200\250ls\342\200\251ps"sv),
       {21628, 2182, 2047, 2240, 1050, 5910, 2361, 7861, 8909, 8780, 1048, 2015, 8827}},
      {"numbers",
       std::string("1,234.56 2024 3.14159 42nd"sv),
       {1015, 1010, 22018, 1012, 5179, 16798, 2549, 1017, 1012, 15471, 28154, 21373}},
      {"long_word", std::string(101, 'x') + " ok " + std::string(100, 'y'),
       join({100, 7929, 1061}, std::vector<int>(99, 2100))},
      {"unknown_chars", std::string("∮ ⌘ \356\200\200 ☃"sv), {100, 100, 100}},
      {"special_text",
       std::string("[SEP] inside text [DEC] and [CLS]x [unused0] [sep]"sv),
       {1031, 19802, 1033, 2503, 3793,  1031, 11703, 1033, 1998,  1031, 18856,
        2015, 1033,  1060, 1031, 15171, 2692, 1033,  1031, 19802, 1033}},
      {"greek",
       std::string("ΟΔΟΣ Ελληνικά ΣΟΦΟΣ σοφός"sv),
       {1169,  29722, 29730, 29733, 1159,  29727, 29727, 24824, 16177, 18199, 29726,
        14608, 1173,  29730, 29736, 29730, 29733, 1173,  29730, 29736, 15297}},
      {"cyrillic",
       std::string("Москва ЁЛКА"sv),
       {1191, 14150, 29747, 23925, 25529, 10260, 1185, 29436, 28598}},
      {"combining",
       std::string("e\314\201te\314\201 n\314\203 \314\201alone a\342\203\235"sv),
       {3802, 2063, 1050, 2894, 100}},
      {"fullwidth", std::string("ＡＢＣ１２３！ｘ"sv), {100, 1986, 100}},
      {"empty", std::string(""sv), {}},
      {"only_ws", std::string(" \011\012\015\013 \302\240 "sv), {}},
      {"punct_unicode",
       std::string("“quoted” ‘single’ — dash… ¿qué? «guillemets» 「括弧」"sv),
       {1523, 9339, 1524,  1520, 2309,  1521, 1517, 11454, 1529, 1094, 10861,
        1029, 1077, 26458, 6216, 11368, 2015, 1090, 1641,  100,  100,  1642}},
      {"symbols",
       std::string("$5 ^_^ `code` ~tilde~ @user #tag 100% a+b=c <b>|"sv),
       {1002, 1019, 1034, 1035, 1034, 1036, 3642, 1036, 1066, 18681, 3207, 1066, 1030, 5310,
        1001, 6415, 2531, 1003, 1037, 1009, 1038, 1027, 1039, 1026,  1038, 1028, 1064}},
      {"dotted_i", std::string("İstanbul ǅemal ß ﬁne"sv), {9960, 100, 1096, 1984, 2638}},
      {"invalid_utf8",
       std::string("ab\377cd \342(\241 x\300\257y \355\240\200z \360\237\220"sv),
       {5925, 2094, 1006, 1060, 2100, 1062}},
      {"bom_softhyphen",
       std::string("\357\273\277start co\302\255op zero\342\200\213width"sv),
       {2707, 21859, 5717, 9148, 11927, 2232}},
      {"unaffable",
       std::string("unaffable playing jumped snowboarding"sv),
       {14477, 20961, 3468, 2652, 5598, 4586, 21172}},
  };
  return cases;
}

struct DecodeCase {
  std::vector<int> ids;
  std::string text;
};
// HF's tok.decode(ids, skip_special_tokens=True) (out-of-range ids become the skipped [UNK])
const std::vector<DecodeCase>& hf_decodes() {
  static const std::vector<DecodeCase> cases = {
      {{30522, 1037, 3899, 2003, 3564, 2006, 1037, 6847, 1012, 102}, "a dog is sitting on a bench."},
      {{101, 4895, 10354, 3270, 3468, 2652, 102, 0, 0}, "unafhable playing"},
      {{2009, 1005, 1055, 1037, 3899, 1005, 1055, 7923, 999, 999, 2079, 2025, 1029},
       "it's a dog's boards!! do not?"},
      {{1045, 1005, 1049, 2182, 1010, 2057, 1005, 2310, 2042, 1010, 2017, 1005, 2128, 2182, 2123, 1005, 1056,
        2175},
       "i'm here, we've been, you're here don't go"},
      {{2015, 3899, 2015, 100, 103, 30523, 30524, 99999, -1, 2003}, "##s dogs is"},
      {{1000, 7592, 1000, 1012, 1012, 1012, 1006, 1037, 1007, 1011, 1038}, "\" hello \"... ( a ) - b"},
      {{30522, 102}, ""},
      {{}, ""},
      {{1045, 2293, 2009, 1005, 1055, 2307, 1012, 30522, 1045, 1005, 1040, 2066, 2070, 1010, 2123, 1005, 1056,
        1029},
       "i love it's great. i'd like some, don't?"},
      {{1031, 19802, 1033, 4937, 1031, 11703, 1033}, "[ sep ] cat [ dec ]"},
  };
  return cases;
}

}  // namespace

TEST(BlipTokenizer, RealVocabLayout) {
  NEED_BERT_VOCAB();
  ASSERT_EQ(bert_vocab().size(), 30522u);
  EXPECT_EQ(bert_vocab()[2015], "##s");
  EXPECT_EQ(bert_vocab()[1996], "the");
  const auto& t = blip();
  EXPECT_EQ(t.size(), 30524u);
  EXPECT_EQ(t.bos_id(), 30522);
  EXPECT_EQ(t.token(30522), "[DEC]");
  EXPECT_EQ(t.token(30523), "[ENC]");
  EXPECT_EQ(t.sep_id(), 102);
  EXPECT_EQ(t.cls_id(), 101);
  EXPECT_EQ(t.pad_id(), 0);
  EXPECT_EQ(t.unk_id(), 100);
  for (int id : {0, 100, 101, 102, 103, 30522, 30523}) EXPECT_TRUE(t.is_special(id)) << id;
  for (int id : {1, 999, 1996, 2015, 30521, 30524, -1}) EXPECT_FALSE(t.is_special(id)) << id;
  EXPECT_EQ(t.token(2015), "##s");
  EXPECT_EQ(t.token(30524), "");
  EXPECT_EQ(t.token(-5), "");
  EXPECT_EQ(t.describe(), "BERT WordPiece, 30524 tokens, uncased");
}

TEST(BlipTokenizer, MatchesHuggingFaceOnHardStrings) {
  NEED_BERT_VOCAB();
  int same = 0;
  for (const auto& c : hf_cases()) {
    auto got = blip().encode(c.text);
    EXPECT_EQ(got, c.ids) << c.name;
    same += got == c.ids;
  }
  EXPECT_EQ(same, (int)hf_cases().size());
  std::printf("[ BLIP tok ] %d of %zu hard strings match transformers 4.47 exactly\n", same,
              hf_cases().size());
}

TEST(BlipTokenizer, DecodeMatchesHuggingFace) {
  NEED_BERT_VOCAB();
  for (const auto& c : hf_decodes())
    EXPECT_EQ(blip().decode(c.ids), c.text) << ::testing::PrintToString(c.ids);
}

TEST(BlipTokenizer, CaptionsRoundTrip) {
  NEED_BERT_VOCAB();
  for (const char* s : {"a dog is sitting on a bench.", "two people riding bikes, one of them wearing a hat!",
                        "it's a cat's toy", "what is this?"})
    EXPECT_EQ(blip().decode(blip().encode(s)), s);
  auto ids = join({blip().bos_id()}, join(blip().encode("a red car"), {blip().sep_id(), 0, 0}));
  EXPECT_EQ(blip().decode(ids), "a red car");
}

// Every tokenizer-file layout HF reads gives the same tokenizer as BLIP's.
TEST(BlipTokenizer, SameFromEveryConfigLayout) {
  NEED_BERT_VOCAB();
  auto added = [](const char* content) {
    return Json{{"content", content}, {"lstrip", false}, {"normalized", false},
                {"rstrip", false},    {"special", true}, {"single_word", false}};
  };
  Json decoder = {{"0", added("[PAD]")},    {"100", added("[UNK]")},  {"101", added("[CLS]")},
                  {"102", added("[SEP]")},  {"103", added("[MASK]")}, {"30522", added("[DEC]")},
                  {"30523", added("[ENC]")}};
  Json with_decoder = Json::parse(kBlipConfig);
  with_decoder["added_tokens_decoder"] = decoder;
  with_decoder["bos_token"] = "[DEC]";
  with_decoder["additional_special_tokens"] = {"[ENC]"};
  std::vector<std::vector<std::pair<std::string, std::string>>> layouts = {
      {{"tokenizer_config.json", with_decoder.dump()}},
      {{"special_tokens_map.json", kBlipSpecialMap},
       {"added_tokens.json", R"({"[DEC]": 30522, "[ENC]": 30523})"}},
      {{"special_tokens_map.json", kBlipSpecialMap},
       {"tokenizer.json", Json{{"added_tokens",
                                {{{"id", 30522}, {"content", "[DEC]"}, {"special", true}},
                                 {{"id", 30523}, {"content", "[ENC]"}, {"special", true}}}}}
                              .dump()}},
  };
  std::vector<WordPieceTokenizer> toks;
  for (auto& files : layouts) {
    test::TempDir dir;
    write(dir / "vocab.txt", lines(bert_vocab()));
    for (auto& [name, text] : files) write(dir / name, text);
    toks.push_back(WordPieceTokenizer::load(dir.path()));
  }
  toks.emplace_back(bert_vocab(), std::vector<std::string>{"[DEC]", "[ENC]"});
  const std::string text = "Ein Hund, 東京 — don't [SEP]!";
  for (auto& t : toks) {
    EXPECT_EQ(t.size(), 30524u);
    EXPECT_EQ(t.bos_id(), 30522);
    EXPECT_TRUE(t.is_special(30523));
    EXPECT_EQ(t.encode(text), blip().encode(text));
    EXPECT_EQ(t.decode({30522, 1037, 30523, 3899, 102}), "a dog");
  }
}

// A tiny vocab, ids checked against HF BertTokenizer on the same vocab.txt (/tmp/refcheck/blip_tok/tiny.py).
const std::vector<std::string> kTiny = {
    "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "un", "##aff", "##able", "a",  "dog", "##s", ".",  "x",
    "##x",   "cafe",  "café",  "Dog",   "##é",    "東", "京",    "東京",   "is", "'",   "t",   "don"};

TEST(BlipTokenizer, TinyVocabMatchesHuggingFace) {
  WordPieceTokenizer t(kTiny, {"[DEC]", "[ENC]"});
  EXPECT_EQ(t.bos_id(), 25);
  EXPECT_EQ(t.unk_id(), 1);
  EXPECT_EQ(t.encode("Unaffable dogs."), (std::vector<int>{5, 6, 7, 9, 10, 11}));
  EXPECT_EQ(t.encode("unaffablez a"), (std::vector<int>{1, 8}));  // one unmatched piece: whole word [UNK]
  EXPECT_EQ(t.encode(std::string(100, 'x')), join({12}, std::vector<int>(99, 13)));  // 100 chars: still split
  EXPECT_EQ(t.encode(std::string(101, 'x')), (std::vector<int>{1}));                 // 101: [UNK]
  EXPECT_EQ(t.encode("CAFÉ café Café"), (std::vector<int>{14, 14, 14}));
  EXPECT_EQ(t.encode("Dog dog DOG"), (std::vector<int>{9, 9, 9}));
  EXPECT_EQ(t.encode("東京is"), (std::vector<int>{18, 19, 21}));  // CJK split before WordPiece
  EXPECT_EQ(t.encode("don't"), (std::vector<int>{24, 22, 23}));
  EXPECT_EQ(t.decode({5, 6, 7, 9, 10, 11, 25, 26}), "unaffable dogs.");

  WordPieceTokenizer cased(kTiny, {"[DEC]"}, false);
  EXPECT_EQ(cased.describe(), "BERT WordPiece, 26 tokens, cased");
  EXPECT_EQ(cased.encode("Unaffable dogs."), (std::vector<int>{1, 9, 10, 11}));
  EXPECT_EQ(cased.encode("CAFÉ café Café"), (std::vector<int>{1, 15, 1}));  // cased: accents kept
  EXPECT_EQ(cased.encode("Dog dog DOG"), (std::vector<int>{16, 9, 1}));
}

TEST(BlipTokenizer, TinyVocabConfigOptions) {
  struct Opt {
    const char* config;
    std::vector<int> cafe, tokyo_is;
  };
  for (const Opt& o :
       std::vector<Opt>{{R"({"bos_token": "[DEC]", "do_lower_case": false, "strip_accents": true})",
                         {1, 14, 1},
                         {18, 19, 21}},
                        {R"({"bos_token": "[DEC]", "strip_accents": false})", {15, 15, 15}, {18, 19, 21}},
                        {R"({"bos_token": "[DEC]", "tokenize_chinese_chars": false})", {14, 14, 14}, {1}}}) {
    test::TempDir dir;
    write(dir / "vocab.txt", lines(kTiny));
    write(dir / "tokenizer_config.json", o.config);
    auto t = WordPieceTokenizer::load(dir.path());
    EXPECT_EQ(t.bos_id(), 25) << o.config;
    EXPECT_EQ(t.encode("CAFÉ café Café"), o.cafe) << o.config;
    EXPECT_EQ(t.encode("東京is"), o.tokyo_is) << o.config;
  }
}

TEST(BlipTokenizer, VocabLineEndings) {
  test::TempDir dir;
  std::string crlf;
  for (auto& t : kTiny) crlf += t + "\r\n";
  write(dir / "vocab.txt", crlf.substr(0, crlf.size() - 2));  // CRLF, no final newline
  write(dir / "tokenizer_config.json", R"({"bos_token": "[DEC]"})");
  auto t = WordPieceTokenizer::load(dir.path());
  EXPECT_EQ(t.size(), kTiny.size() + 1);
  EXPECT_EQ(t.token(24), "don");
  EXPECT_EQ(t.encode("a dog"), (std::vector<int>{8, 9}));
}

TEST(BlipTokenizer, HostileBytesNeverCrash) {
  WordPieceTokenizer t(kTiny, {"[DEC]"});
  std::mt19937 rng(7);
  for (int i = 0; i < 3000; ++i) {
    std::string s(rng() % 64, '\0');
    for (auto& c : s)
      c = (char)(i % 3 == 0 ? rng() : "ax.\xC3\xA9\xE6\x9D\xB1\xF0\x9F\x90\xB6\xFF "[rng() % 14]);
    for (int id : t.encode(s)) ASSERT_TRUE(id >= 0 && id < (int)t.size());
  }
  std::vector<int> ids;
  for (int i = 0; i < 200; ++i) ids.push_back((int)(rng() % 40) - 5);
  (void)t.decode(ids);
  EXPECT_EQ(t.encode("a\xFF"
                     "dog"),
            (std::vector<int>{1}));  // U+FFFD dropped inside the word: "adog"
  EXPECT_EQ(t.encode(std::string("a\0dog", 5)), (std::vector<int>{1}));
}

TEST(BlipTokenizer, BadInput) {
  auto load_error = [](const std::vector<std::pair<std::string, std::string>>& files) -> std::string {
    test::TempDir dir;
    for (auto& [name, text] : files) write(dir / name, text);
    try {
      WordPieceTokenizer::load(dir.path());
    } catch (const std::runtime_error& e) {
      return e.what();
    }
    return "(no error)";
  };
  const std::string vocab = lines(kTiny);
  EXPECT_NE(load_error({}).find("vocab.txt"), std::string::npos);
  EXPECT_NE(load_error({{"tokenizer_config.json", "{}"}}).find("vocab.txt"), std::string::npos);
  EXPECT_NE(load_error({{"vocab.txt", vocab}}).find("[DEC]"), std::string::npos);
  EXPECT_NE(load_error({{"vocab.txt", vocab}, {"tokenizer_config.json", R"({"do_lower_case": true})"}})
                .find("[DEC]"),
            std::string::npos);
  // [ENC] at vocab + 1 but no [DEC]: still the [DEC] message.
  EXPECT_NE(
      load_error({{"vocab.txt", vocab},
                  {"tokenizer_config.json", R"({"added_tokens_decoder": {"26": {"content": "[ENC]"}}})"}})
          .find("[DEC]"),
      std::string::npos);
  std::string e = load_error({{"vocab.txt", vocab}, {"tokenizer_config.json", R"({"bos_token": "[DEC]",)"}});
  EXPECT_NE(e.find("tokenizer_config.json"), std::string::npos) << e;
  EXPECT_NE(e.find("malformed"), std::string::npos) << e;
  e = load_error({{"vocab.txt", vocab}, {"special_tokens_map.json", "[1, 2"}});
  EXPECT_NE(e.find("special_tokens_map.json"), std::string::npos) << e;
  e = load_error(
      {{"vocab.txt", vocab}, {"tokenizer_config.json", R"({"bos_token": "[DEC]", "do_lower_case": "yes"})"}});
  EXPECT_NE(e.find("do_lower_case"), std::string::npos) << e;
  std::vector<std::string> no_sep = kTiny;
  no_sep[3] = "[SEPX]";
  e = load_error({{"vocab.txt", lines(no_sep)}, {"tokenizer_config.json", R"({"bos_token": "[DEC]"})"}});
  EXPECT_NE(e.find("[SEP]"), std::string::npos) << e;
  e = load_error({{"vocab.txt", vocab + "dog\n"}, {"tokenizer_config.json", R"({"bos_token": "[DEC]"})"}});
  EXPECT_NE(e.find("twice"), std::string::npos) << e;
  EXPECT_THROW(WordPieceTokenizer(kTiny, {}), std::runtime_error);  // no [DEC]
  try {
    WordPieceTokenizer(kTiny, {"[ENC]"});
    ADD_FAILURE() << "no [DEC] accepted";
  } catch (const std::runtime_error& ex) {
    EXPECT_NE(std::string(ex.what()).find("[DEC]"), std::string::npos) << ex.what();
  }
}

}  // namespace capforge::blip
