// BLIP's text tokenizer: BERT uncased WordPiece exactly as Hugging Face's slow BertTokenizer
// (transformers 4.47, models/bert/tokenization_bert.py) runs it, plus BLIP's added tokens
// [DEC] (bos, 30522 for the real models) and [ENC] (30523).
//
// encode() pipeline, step for step as HF (see tokenizer.cpp for the details):
//   UTF-8 decode (bad bytes -> U+FFFD, like errors="replace") -> per-character str.lower()
//   (PreTrainedTokenizer.tokenize's pre-lowering) -> _clean_text -> CJK split -> NFC ->
//   whitespace split -> lower + NFD + drop Mn -> punctuation split -> greedy WordPiece.
// Unicode data comes from ICU (normalization, categories, case mapping).
//
// Text is always plain text: a literal "[SEP]" or "[DEC]" is never the special token.
// All methods are const and thread-safe.
#pragma once

#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace capforge::blip {

class WordPieceTokenizer {
 public:
  // Reads DIR/vocab.txt (one token per line, id = line index; required) and, when present,
  // tokenizer_config.json (do_lower_case, strip_accents, tokenize_chinese_chars,
  // added_tokens_decoder, special token names), special_tokens_map.json, added_tokens.json and
  // tokenizer.json's "added_tokens". Special tokens named there but absent from the vocab are
  // appended after it in HF's order (bos, eos, unk, sep, pad, cls, mask, additional).
  // Every added token (id >= vocab size) counts as special; gaps in the added ids become empty
  // special placeholders. Throws std::runtime_error naming the file for a missing, unreadable or
  // empty vocab.txt, a duplicate vocab entry, malformed JSON, an added id that contradicts
  // vocab.txt, or a vocabulary without [DEC] (the bos; the message contains "[DEC]"), [SEP],
  // [CLS], [PAD] or [UNK].
  static WordPieceTokenizer load(const std::string& dir);
  // Builds from an in-memory token list (tests); added = special tokens appended after the vocab
  // (ids vocab.size(), ...). Same checks as load().
  WordPieceTokenizer(std::vector<std::string> vocab, std::vector<std::string> added, bool lower_case = true);

  // Text -> ids, WITHOUT [CLS]/[SEP]. Never throws for any byte string.
  std::vector<int> encode(std::string_view text) const;
  // ids -> text as HF's decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=True).
  // Special and added tokens and out-of-range ids are dropped.
  std::string decode(const std::vector<int>& ids) const;
  std::string token(int id) const;  // the piece text ("" if out of range)

  int bos_id() const { return bos_; }  // [DEC]
  int sep_id() const { return sep_; }  // [SEP]: ends a caption
  int cls_id() const { return cls_; }
  int pad_id() const { return pad_; }
  int unk_id() const { return unk_; }
  size_t size() const { return pieces_.size(); }  // vocab + added tokens
  bool is_special(int id) const;
  std::string describe() const;  // e.g. "BERT WordPiece, 30524 tokens, uncased"

 private:
  WordPieceTokenizer() = default;
  // Fills vocab_ from pieces_[0, base_size_), resolves the special ids; `where` names the source
  // in error messages.
  void finish(const std::vector<std::string>& special_names, const std::string& where);
  // Greedy longest-match-first WordPiece of one basic token, appended to out.
  void wordpiece(const std::u32string& word, std::vector<int>& out) const;

  std::vector<std::string> pieces_;             // id -> text (vocab, then added tokens)
  std::unordered_map<std::string, int> vocab_;  // vocab.txt only: what WordPiece may emit
  std::vector<bool> special_;                   // per id
  size_t base_size_ = 0;                        // lines of vocab.txt
  bool lower_ = true;
  int strip_accents_ = -1;  // -1 unset (follows lower_), 0 false, 1 true
  bool chinese_ = true;     // tokenize_chinese_chars
  int bos_ = -1, sep_ = -1, cls_ = -1, pad_ = -1, unk_ = -1;
  std::string bos_name_ = "[DEC]", sep_name_ = "[SEP]", cls_name_ = "[CLS]", pad_name_ = "[PAD]",
              unk_name_ = "[UNK]";
};

}  // namespace capforge::blip
