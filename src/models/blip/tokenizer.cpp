// BERT WordPiece as transformers 4.47's slow BertTokenizer (see tokenizer.h). Every step below
// names the HF function it mirrors; the Unicode functions are unicode_text.h's (ICU's Unicode 15,
// so characters assigned in Unicode 15, e.g. U+1FAE8, are letters/symbols here but unassigned,
// dropped as "control", under Python 3.11's Unicode 14).
#include "models/blip/tokenizer.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <stdexcept>

#include "models/blip/unicode_text.h"

namespace capforge::blip {
namespace {

using Json = nlohmann::json;
namespace fs = std::filesystem;
using namespace text;

// ---------------------------------------------------------------- files

std::string read_text(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  if (!f) throw std::runtime_error(p.string() + ": cannot read");
  std::stringstream ss;
  ss << f.rdbuf();
  if (f.bad()) throw std::runtime_error(p.string() + ": read error");
  return ss.str();
}

// A JSON file of the tokenizer directory; null when absent. Throws naming the file when malformed.
Json read_json(const fs::path& p) {
  std::error_code ec;
  if (!fs::exists(p, ec)) return nullptr;
  try {
    Json j = Json::parse(read_text(p));
    if (!j.is_object()) throw std::runtime_error("not a JSON object");
    return j;
  } catch (const std::exception& e) {
    throw std::runtime_error(p.string() + ": malformed JSON: " + e.what());
  }
}

// A special token value: "text" or {"content": "text", ...}; "" for null/absent.
std::string token_name(const Json& v, const fs::path& file, const std::string& key) {
  if (v.is_null()) return "";
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string())
    return v["content"].get<std::string>();
  throw std::runtime_error(file.string() + ": " + key + " must be a string or {\"content\": ...}");
}

bool get_bool(const Json& j, const char* key, bool def, const fs::path& file) {
  if (!j.is_object() || !j.contains(key) || j[key].is_null()) return def;
  if (!j[key].is_boolean()) throw std::runtime_error(file.string() + ": " + key + " must be true or false");
  return j[key].get<bool>();
}

const char* const kSpecialKeys[] = {"bos_token", "eos_token", "unk_token", "sep_token",
                                    "pad_token", "cls_token", "mask_token"};

}  // namespace

// ---------------------------------------------------------------- construction

WordPieceTokenizer::WordPieceTokenizer(std::vector<std::string> vocab, std::vector<std::string> added,
                                       bool lower_case) {
  lower_ = lower_case;
  base_size_ = vocab.size();
  pieces_ = std::move(vocab);
  pieces_.insert(pieces_.end(), added.begin(), added.end());
  finish({"[MASK]"}, "in-memory vocabulary");
}

WordPieceTokenizer WordPieceTokenizer::load(const std::string& dir) {
  const fs::path d(dir), vocab_path = d / "vocab.txt", cfg_path = d / "tokenizer_config.json",
                         map_path = d / "special_tokens_map.json", added_path = d / "added_tokens.json",
                         tj_path = d / "tokenizer.json";
  WordPieceTokenizer t;
  {  // load_vocab: one token per line; Python's text mode turns \r\n and \r into \n.
    std::error_code ec;
    if (!fs::is_regular_file(vocab_path, ec))
      throw std::runtime_error(vocab_path.string() + ": missing (BERT vocab.txt required)");
    const std::string text = read_text(vocab_path);
    for (size_t i = 0, eol; i < text.size(); i = eol + (text.compare(eol, 2, "\r\n") == 0 ? 2 : 1)) {
      eol = std::min(text.find_first_of("\r\n", i), text.size());
      t.pieces_.push_back(text.substr(i, eol - i));
    }
    t.base_size_ = t.pieces_.size();
    if (t.base_size_ == 0) throw std::runtime_error(vocab_path.string() + ": empty vocabulary");
  }
  // PreTrainedTokenizerBase._from_pretrained: tokenizer_config.json's added_tokens_decoder when it
  // has one; otherwise (legacy) special_tokens_map.json's names override the config's, then
  // added_tokens.json and tokenizer.json's "added_tokens" give the added ids.
  Json cfg = read_json(cfg_path);
  if (cfg.is_null()) cfg = Json::object();
  t.lower_ = get_bool(cfg, "do_lower_case", true, cfg_path);
  t.chinese_ = get_bool(cfg, "tokenize_chinese_chars", true, cfg_path);
  if (cfg.contains("strip_accents") && !cfg["strip_accents"].is_null())
    t.strip_accents_ = get_bool(cfg, "strip_accents", false, cfg_path) ? 1 : 0;

  std::map<std::string, std::string> names;  // key -> token text
  std::vector<std::string> additional;
  auto take_names = [&](const Json& j, const fs::path& file) {
    for (const char* k : kSpecialKeys)
      if (j.contains(k)) names[k] = token_name(j[k], file, k);
    if (j.contains("additional_special_tokens")) {
      const Json& a = j["additional_special_tokens"];
      if (!a.is_array() && !a.is_null())
        throw std::runtime_error(file.string() + ": additional_special_tokens must be a list");
      if (a.is_array())
        for (auto& v : a) {
          std::string n = token_name(v, file, "additional_special_tokens");
          if (!n.empty() && std::find(additional.begin(), additional.end(), n) == additional.end())
            additional.push_back(n);
        }
    }
  };
  take_names(cfg, cfg_path);

  std::map<long long, std::string> explicit_ids;  // id -> content
  auto add_explicit = [&](long long id, const std::string& content, const fs::path& file) {
    if (id < 0 || id >= (long long)t.base_size_ + 1000000)
      throw std::runtime_error(file.string() + ": added token id " + std::to_string(id) + " out of range");
    explicit_ids[id] = content;
  };
  try {
    if (cfg.contains("added_tokens_decoder")) {
      for (auto& [k, v] : cfg["added_tokens_decoder"].items())
        add_explicit(std::stoll(k), token_name(v, cfg_path, "added_tokens_decoder"), cfg_path);
    } else {
      if (Json m = read_json(map_path); !m.is_null()) take_names(m, map_path);
      if (Json a = read_json(added_path); !a.is_null())
        for (auto& [k, v] : a.items()) add_explicit(v.get<long long>(), k, added_path);
      if (Json tj = read_json(tj_path); !tj.is_null() && tj.contains("added_tokens"))
        for (auto& v : tj["added_tokens"])
          add_explicit(v.at("id").get<long long>(), v.at("content"), tj_path);
    }
  } catch (const std::runtime_error&) {
    throw;
  } catch (const std::exception& e) {  // nlohmann type errors, std::stoll
    throw std::runtime_error(
        dir + ": bad added tokens (tokenizer_config/added_tokens/tokenizer.json): " + e.what());
  }
  // Added ids inside the vocab must name the same token; those after it extend the table (gaps
  // become empty special placeholders, which HF would decode as the skipped [UNK]).
  for (auto& [id, content] : explicit_ids) {
    if (id < (long long)t.base_size_) {
      if (t.pieces_[id] != content)
        throw std::runtime_error(dir + ": added token '" + content + "' has id " + std::to_string(id) +
                                 " but vocab.txt has '" + t.pieces_[id] + "' there");
      continue;
    }
    if ((long long)t.pieces_.size() <= id) t.pieces_.resize(id + 1);
    t.pieces_[id] = content;
  }
  // PreTrainedTokenizer.__init__: named special tokens missing from vocab and added tokens are
  // appended, in SPECIAL_TOKENS_ATTRIBUTES order.
  std::vector<std::string> order;
  for (const char* k : kSpecialKeys)
    if (names.count(k) && !names[k].empty()) order.push_back(names[k]);
  order.insert(order.end(), additional.begin(), additional.end());
  for (auto& n : order)
    if (std::find(t.pieces_.begin(), t.pieces_.end(), n) == t.pieces_.end()) t.pieces_.push_back(n);

  auto name_or = [&](const char* k, std::string def) { return names.count(k) ? names[k] : def; };
  t.bos_name_ = name_or("bos_token", "[DEC]");
  t.unk_name_ = name_or("unk_token", "[UNK]");
  t.sep_name_ = name_or("sep_token", "[SEP]");
  t.pad_name_ = name_or("pad_token", "[PAD]");
  t.cls_name_ = name_or("cls_token", "[CLS]");
  order.push_back(name_or("mask_token", "[MASK]"));
  t.finish(order, dir);
  return t;
}

void WordPieceTokenizer::finish(const std::vector<std::string>& special_names, const std::string& where) {
  for (size_t i = 0; i < base_size_; ++i) {
    auto [it, fresh] = vocab_.emplace(pieces_[i], (int)i);
    if (!fresh)
      throw std::runtime_error(where + ": vocab.txt lists '" + pieces_[i] + "' twice (lines " +
                               std::to_string(it->second + 1) + " and " + std::to_string(i + 1) + ")");
  }
  special_.assign(pieces_.size(), false);
  for (size_t i = base_size_; i < pieces_.size(); ++i) special_[i] = true;  // added tokens
  // HF looks added tokens up first, then the vocab.
  auto find = [&](const std::string& name) {
    for (size_t i = base_size_; i < pieces_.size(); ++i)
      if (!name.empty() && pieces_[i] == name) return (int)i;
    auto it = vocab_.find(name);
    return it == vocab_.end() ? -1 : it->second;
  };
  auto need = [&](const std::string& name, const char* role) {
    int id = find(name);
    if (id < 0) {
      std::string blip = std::string(role) == "bos" && name != "[DEC]" ? ", BLIP's [DEC]" : "";
      throw std::runtime_error(where + ": no " + name + " token (" + role + blip +
                               ") in vocab.txt or the added tokens");
    }
    special_[id] = true;
    return id;
  };
  bos_ = need(bos_name_, "bos");
  sep_ = need(sep_name_, "sep");
  cls_ = need(cls_name_, "cls");
  pad_ = need(pad_name_, "pad");
  unk_ = need(unk_name_, "unk");
  for (auto& n : special_names)
    if (int id = find(n); id >= 0) special_[id] = true;
}

// ---------------------------------------------------------------- encode / decode

void WordPieceTokenizer::wordpiece(const std::u32string& word, std::vector<int>& out) const {
  if (word.size() > 100) {  // max_input_chars_per_word, counted in code points as Python's len
    out.push_back(unk_);
    return;
  }
  const std::string utf8 = to_utf8(word);
  std::vector<size_t> at;  // byte offset of each code point, plus the end
  for (size_t i = 0; i < utf8.size(); ++i)
    if (((unsigned char)utf8[i] & 0xC0) != 0x80) at.push_back(i);
  at.push_back(utf8.size());
  const size_t n = at.size() - 1, mark = out.size();
  std::string sub;
  for (size_t start = 0; start < n;) {
    int found = -1;
    size_t end = n;
    for (; end > start; --end) {
      sub.assign(start > 0 ? "##" : "");
      sub.append(utf8, at[start], at[end] - at[start]);
      if (auto it = vocab_.find(sub); it != vocab_.end()) {
        found = it->second;
        break;
      }
    }
    if (found < 0) {  // one unmatched piece makes the whole word [UNK]
      out.resize(mark);
      out.push_back(unk_);
      return;
    }
    out.push_back(found);
    start = end;
  }
}

std::vector<int> WordPieceTokenizer::encode(std::string_view text) const {
  std::u32string s = decode_utf8(text);
  // PreTrainedTokenizer.tokenize lower-cases the text one character at a time (re.sub with
  // "(.+?)"), so there is no final-sigma context: "ΟΔΟΣ" -> "οδοσ".
  if (lower_) {
    std::u32string low;
    low.reserve(s.size());
    for (char32_t c : s) append_lower(c, low);
    s.swap(low);
  }
  // BasicTokenizer._clean_text, then _tokenize_chinese_chars.
  std::u32string clean;
  clean.reserve(s.size());
  for (char32_t c : s) {
    if (c == 0 || c == 0xFFFD || is_control(c)) continue;
    if (chinese_ && is_chinese(c))
      clean.append({U' ', c, U' '});
    else
      clean.push_back(is_bert_whitespace(c) ? U' ' : c);
  }
  clean = normalize(clean, true);  // NFC
  const bool strip = strip_accents_ == 1 || (lower_ && strip_accents_ != 0);
  std::vector<int> ids;
  std::u32string word;
  // whitespace_tokenize (str.split), lower + strip accents, _run_split_on_punc, WordPiece.
  auto flush_piece = [&](std::u32string& piece) {
    if (!piece.empty()) wordpiece(piece, ids);
    piece.clear();
  };
  auto flush_word = [&] {
    if (word.empty()) return;
    std::u32string w = lower_ ? lower(word) : word;
    if (strip) w = strip_accents(w);
    word.clear();
    std::u32string piece;
    for (char32_t c : w) {  // a punctuation char is a piece of its own; spaces (HF's join/split) end one
      const bool punct = is_punctuation(c), space = py_isspace(c);
      if (punct || space) flush_piece(piece);
      if (!space) piece.push_back(c);
      if (punct) flush_piece(piece);
    }
    flush_piece(piece);
  };
  for (char32_t c : clean) {
    if (py_isspace(c))
      flush_word();
    else
      word.push_back(c);
  }
  flush_word();
  return ids;
}

std::string WordPieceTokenizer::decode(const std::vector<int>& ids) const {
  // convert_ids_to_tokens(skip_special_tokens=True) + convert_tokens_to_string.
  std::string text;
  for (int id : ids) {
    if (id < 0 || (size_t)id >= pieces_.size() || special_[id]) continue;
    if (!text.empty()) text += ' ';
    text += pieces_[id];
  }
  auto replace_all = [&](std::string_view from, std::string_view to) {
    std::string out;
    size_t pos = 0;
    for (size_t hit; (hit = text.find(from, pos)) != std::string::npos; pos = hit + from.size())
      out.append(text, pos, hit - pos).append(to);
    text = out.append(text, pos);
  };
  replace_all(" ##", "");
  {  // str.strip()
    std::u32string u = decode_utf8(text);
    size_t b = 0, e = u.size();
    while (b < e && py_isspace(u[b])) ++b;
    while (e > b && py_isspace(u[e - 1])) --e;
    if (b > 0 || e < u.size()) text = to_utf8(u.substr(b, e - b));
  }
  // clean_up_tokenization, in HF's order.
  static const std::pair<const char*, const char*> kCleanup[] = {
      {" .", "."},     {" ?", "?"},   {" !", "!"},   {" ,", ","},     {" ' ", "'"},
      {" n't", "n't"}, {" 'm", "'m"}, {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"}};
  for (auto& [from, to] : kCleanup) replace_all(from, to);
  return text;
}

std::string WordPieceTokenizer::token(int id) const {
  return id >= 0 && (size_t)id < pieces_.size() ? pieces_[id] : std::string();
}

bool WordPieceTokenizer::is_special(int id) const {
  return id >= 0 && (size_t)id < special_.size() && special_[id];
}

std::string WordPieceTokenizer::describe() const {
  return "BERT WordPiece, " + std::to_string(pieces_.size()) + " tokens, " + (lower_ ? "uncased" : "cased");
}

}  // namespace capforge::blip
