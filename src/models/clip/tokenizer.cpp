#include "models/clip/tokenizer.h"

#include <utf8proc.h>
#include <zlib.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <climits>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace fs = std::filesystem;

namespace capforge::clip {

namespace {

std::string utf8_of(int32_t cp) {
  uint8_t buf[4];
  auto n = utf8proc_encode_char(cp, buf);
  return std::string((const char*)buf, (size_t)n);
}

// GPT-2's byte order: the printable ranges first, then the other bytes. OpenAI's vocabulary
// lists the byte symbols in this order.
std::vector<int> byte_order() {
  std::vector<int> order;
  std::array<bool, 256> direct{};
  for (int b = '!'; b <= '~'; ++b) direct[b] = true;
  for (int b = 0xA1; b <= 0xAC; ++b) direct[b] = true;
  for (int b = 0xAE; b <= 0xFF; ++b) direct[b] = true;
  for (int b = 0; b < 256; ++b)
    if (direct[b]) order.push_back(b);
  for (int b = 0; b < 256; ++b)
    if (!direct[b]) order.push_back(b);
  return order;
}

// GPT-2's reversible byte -> printable code point map.
std::array<std::string, 256> bytes_to_unicode() {
  std::array<std::string, 256> out;
  auto order = byte_order();
  for (size_t i = 0; i < order.size(); ++i) {
    int b = order[i];
    out[b] = utf8_of(i < 188 ? b : 256 + (int)(i - 188));  // 188 printable bytes map to themselves
  }
  return out;
}

// Splits a UTF-8 string into code point strings.
std::vector<std::string> chars_of(const std::string& s) {
  std::vector<std::string> out;
  const auto* p = (const utf8proc_uint8_t*)s.data();
  size_t i = 0;
  while (i < s.size()) {
    utf8proc_int32_t cp;
    auto n = utf8proc_iterate(p + i, (utf8proc_ssize_t)(s.size() - i), &cp);
    if (n <= 0) n = 1;
    out.emplace_back(s, i, (size_t)n);
    i += (size_t)n;
  }
  return out;
}

std::string read_maybe_gz(const std::string& path) {
  gzFile f = gzopen(path.c_str(), "rb");  // reads plain files too
  if (!f) throw std::runtime_error("cannot open " + path);
  std::string out;
  char buf[1 << 16];
  int n;
  while ((n = gzread(f, buf, sizeof buf)) > 0) out.append(buf, (size_t)n);
  gzclose(f);
  if (n < 0) throw std::runtime_error("cannot read " + path);
  return out;
}

std::vector<std::pair<std::string, std::string>> parse_merges(const std::string& text,
                                                              const std::string& where, size_t skip,
                                                              size_t max) {
  std::vector<std::pair<std::string, std::string>> merges;
  std::istringstream in(text);
  std::string line;
  size_t lineno = 0;
  while (std::getline(in, line)) {
    if (lineno++ < skip) continue;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) continue;
    if (merges.size() >= max) break;
    auto sp = line.find(' ');
    if (sp == std::string::npos || sp == 0 || sp + 1 >= line.size())
      throw std::runtime_error(fmt::format("{}: line {} is not a merge 'a b'", where, lineno));
    merges.emplace_back(line.substr(0, sp), line.substr(sp + 1));
  }
  return merges;
}

}  // namespace

Tokenizer::Tokenizer() : byte_encoder_(bytes_to_unicode()) {}

void Tokenizer::build_from_merges(const std::vector<std::pair<std::string, std::string>>& merges) {
  merges_ = merges;
  for (size_t i = 0; i < merges.size(); ++i) ranks_.emplace(merges[i].first + " " + merges[i].second, (int)i);
}

void Tokenizer::save_hf(const std::string& dir) const {
  fs::create_directories(dir);
  std::vector<std::pair<int, std::string>> by_id;
  for (auto& [k, v] : vocab_) by_id.emplace_back(v, k);
  std::sort(by_id.begin(), by_id.end());
  nlohmann::ordered_json j = nlohmann::ordered_json::object();
  for (auto& [id, piece] : by_id) j[piece] = id;
  std::ofstream(fs::path(dir) / "vocab.json") << j.dump();
  std::ofstream m(fs::path(dir) / "merges.txt");
  m << "#version: 0.2\n";
  for (auto& [a, b] : merges_) m << a << ' ' << b << '\n';
  if (!m) throw std::runtime_error("cannot write " + (fs::path(dir) / "merges.txt").string());
}

Tokenizer Tokenizer::from_openai_bpe(const std::string& path) {
  Tokenizer t;
  // OpenAI: merges = lines[1 : 49152 - 256 - 2 + 1]
  auto merges = parse_merges(read_maybe_gz(path), path, 1, 49152 - 256 - 2);
  std::vector<std::string> vocab;
  for (int b : byte_order()) vocab.push_back(t.byte_encoder_[b]);
  for (int b : byte_order()) vocab.push_back(t.byte_encoder_[b] + "</w>");
  for (auto& [a, b] : merges) vocab.push_back(a + b);
  vocab.push_back("<|startoftext|>");
  vocab.push_back("<|endoftext|>");
  for (size_t i = 0; i < vocab.size(); ++i) t.vocab_.emplace(vocab[i], (int)i);
  t.build_from_merges(merges);
  t.bos_ = t.vocab_.at("<|startoftext|>");
  t.eos_ = t.vocab_.at("<|endoftext|>");
  return t;
}

Tokenizer Tokenizer::from_hf_dir(const std::string& dir) {
  Tokenizer t;
  fs::path vp = fs::path(dir) / "vocab.json", mp = fs::path(dir) / "merges.txt";
  if (!fs::exists(vp) || !fs::exists(mp))
    throw std::runtime_error(fmt::format("{} needs vocab.json and merges.txt for the CLIP tokenizer", dir));
  std::ifstream vf(vp);
  auto j = nlohmann::json::parse(vf, nullptr, false);
  if (!j.is_object()) throw std::runtime_error(vp.string() + " is not a JSON object");
  for (auto& [k, v] : j.items()) {
    if (!v.is_number_integer())
      throw std::runtime_error(fmt::format("{}: id of '{}' is not an integer", vp.string(), k));
    t.vocab_.emplace(k, v.get<int>());
  }
  std::string text = read_maybe_gz(mp.string());
  size_t skip = text.rfind("#version", 0) == 0 ? 1 : 0;
  t.build_from_merges(parse_merges(text, mp.string(), skip, SIZE_MAX));
  auto special = [&](const char* s) {
    auto it = t.vocab_.find(s);
    if (it == t.vocab_.end()) throw std::runtime_error(fmt::format("{} has no {} token", vp.string(), s));
    return it->second;
  };
  t.bos_ = special("<|startoftext|>");
  t.eos_ = special("<|endoftext|>");
  return t;
}

std::vector<std::string> Tokenizer::bpe(const std::string& token) const {
  if (token == "<|startoftext|>" || token == "<|endoftext|>") return {token};
  {
    std::lock_guard lock(cache_->mu);
    if (auto it = cache_->pieces.find(token); it != cache_->pieces.end()) return it->second;
  }
  std::vector<std::string> word = chars_of(token);
  word.back() += "</w>";
  while (word.size() > 1) {
    int best = INT_MAX;
    size_t at = 0;
    for (size_t i = 0; i + 1 < word.size(); ++i) {
      auto it = ranks_.find(word[i] + " " + word[i + 1]);
      if (it != ranks_.end() && it->second < best) best = it->second, at = i;
    }
    if (best == INT_MAX) break;
    const std::string first = word[at], second = word[at + 1];
    std::vector<std::string> merged;  // merge every occurrence, left to right
    for (size_t i = 0; i < word.size();) {
      if (i + 1 < word.size() && word[i] == first && word[i + 1] == second) {
        merged.push_back(first + second);
        i += 2;
      } else {
        merged.push_back(word[i++]);
      }
    }
    word.swap(merged);
  }
  std::lock_guard lock(cache_->mu);
  if (cache_->pieces.size() > 100000) cache_->pieces.clear();
  cache_->pieces.emplace(token, word);
  return word;
}

int Tokenizer::id_of(const std::string& piece) const {
  auto it = vocab_.find(piece);
  if (it == vocab_.end())
    throw std::runtime_error("CLIP vocabulary has no entry for BPE piece '" + piece + "'");
  return it->second;
}

std::vector<int> Tokenizer::encode_raw(std::string_view text) const {
  std::vector<int> ids;
  for (auto& tok : pretokenize(clean_text(text))) {
    std::string mapped;
    if (tok == "<|startoftext|>" || tok == "<|endoftext|>")
      mapped = tok;
    else
      for (unsigned char b : tok) mapped += byte_encoder_[b];
    for (auto& piece : bpe(mapped)) ids.push_back(id_of(piece));
  }
  return ids;
}

std::vector<int> Tokenizer::encode(std::string_view text, int context) const {
  std::vector<int> raw = encode_raw(text);
  size_t keep = context >= 2 ? (size_t)context - 2 : 0;
  if (raw.size() > keep) raw.resize(keep);
  std::vector<int> ids;
  ids.reserve(raw.size() + 2);
  ids.push_back(bos_);
  ids.insert(ids.end(), raw.begin(), raw.end());
  ids.push_back(eos_);
  return ids;
}

}  // namespace capforge::clip
