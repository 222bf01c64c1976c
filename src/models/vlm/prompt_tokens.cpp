#include "models/vlm/prompt_tokens.h"

#include <algorithm>
#include <cctype>
#include <stdexcept>

#include "core/text.h"
#include "mtmd.h"

namespace capforge::vlm {

namespace {
const char* kSlot = "CAPFORGE_PROMPT_SLOT";

// `s` without an unfinished UTF-8 sequence at its end.
void drop_partial_utf8(std::string& s) {
  size_t i = s.size(), back = 0;
  while (i > 0 && back < 4 && ((unsigned char)s[i - 1] & 0xC0) == 0x80) --i, ++back;
  if (i == 0) return;
  unsigned char lead = (unsigned char)s[i - 1];
  size_t need = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;
  if (back + 1 < need) s.resize(i - 1);
}
}  // namespace

std::string render_user_turn(const std::string& chat_template, const std::string& content) {
  llama_chat_message msg{"user", content.c_str()};
  int n = llama_chat_apply_template(chat_template.c_str(), &msg, 1, true, nullptr, 0);
  if (n < 0) throw std::runtime_error("the chat template cannot be applied");
  std::string r((size_t)n, '\0');
  llama_chat_apply_template(chat_template.c_str(), &msg, 1, true, r.data(), n);
  return r;
}

PromptFrame frame_prompt(const std::string& chat_template) {
  const std::string marker = mtmd_default_marker();
  const std::string r = render_user_turn(chat_template, marker + kSlot);
  size_t m = r.find(marker);
  size_t s = m == std::string::npos ? m : r.find(kSlot, m + marker.size());
  if (s == std::string::npos)
    throw std::runtime_error(
        "the chat template does not keep the user's message as it is (image marker, then "
        "text): pass another --chat-template");
  PromptFrame f{r.substr(0, m + marker.size()), r.substr(m + marker.size(), s - m - marker.size()),
                r.substr(s + std::string(kSlot).size())};
  f.trims = render_user_turn(chat_template, marker + kSlot + " \n").find(std::string(kSlot) + " \n") ==
            std::string::npos;
  return f;
}

PromptTokenizer::PromptTokenizer(const llama_vocab* vocab) : vocab_(vocab) {
  const int n = llama_vocab_n_tokens(vocab);
  for (llama_token t = 0; t < n; ++t) {
    auto attr = llama_vocab_get_attr(vocab, t);
    if (!(attr & (LLAMA_TOKEN_ATTR_CONTROL | LLAMA_TOKEN_ATTR_USER_DEFINED | LLAMA_TOKEN_ATTR_UNKNOWN)))
      continue;
    const char* text = llama_vocab_get_text(vocab, t);
    if (!text || !*text) continue;
    std::string s = text;
    bool blank = std::all_of(s.begin(), s.end(), [](char c) { return std::isspace((unsigned char)c); });
    specials_.push_back({s, t, (attr & LLAMA_TOKEN_ATTR_USER_DEFINED) != 0, blank,
                         (attr & LLAMA_TOKEN_ATTR_LSTRIP) != 0, (attr & LLAMA_TOKEN_ATTR_RSTRIP) != 0});
  }
  std::stable_sort(specials_.begin(), specials_.end(),
                   [](const Special& a, const Special& b) { return a.text.size() > b.text.size(); });
}

std::vector<llama_token> PromptTokenizer::run(const std::string& text, bool parse_special) const {
  if (text.empty()) return {};
  int n = -llama_tokenize(vocab_, text.c_str(), (int)text.size(), nullptr, 0, false, parse_special);
  std::vector<llama_token> out((size_t)std::max(n, 0));
  if (n > 0) llama_tokenize(vocab_, text.c_str(), (int)text.size(), out.data(), n, false, parse_special);
  return out;
}

std::vector<llama_token> PromptTokenizer::plain(const std::string& text) const { return run(text, false); }

std::vector<llama_token> PromptTokenizer::tokenize(const std::vector<PromptPart>& parts) const {
  std::string all;
  bool untrusted = false;
  for (auto& p : parts) all += p.text, untrusted |= !p.trusted;
  if (!untrusted) return run(all, true);

  std::vector<llama_token> out;
  std::string raw;                             // plain text between the trusted text's control tokens
  std::vector<std::pair<size_t, size_t>> web;  // untrusted byte ranges of `raw`
  auto flush = [&] {
    // cut inside every user-defined token's text that overlaps untrusted text: the plain
    // tokenizer still matches those (control tokens it never matches); whitespace runs (GPT-NeoX's
    // user-defined space tokens) cannot be markers and stay whole. On a SentencePiece vocabulary
    // the piece after a cut gets the tokenizer's space prefix: "</s>" reads "< /s>", never </s>.
    std::vector<size_t> cuts;
    for (auto& sp : specials_)
      for (size_t at = sp.user_defined && !sp.blank ? raw.find(sp.text) : std::string::npos;
           at != std::string::npos; at = raw.find(sp.text, at + 1)) {
        size_t end = at + sp.text.size();
        for (auto& [b, e] : web)
          if (at < e && b < end) {
            size_t cut = std::max(at + 1, b);
            while (cut < end && ((unsigned char)raw[cut] & 0xC0) == 0x80) ++cut;  // at a character
            if (cut < end) cuts.push_back(cut);
            break;
          }
      }
    std::sort(cuts.begin(), cuts.end());
    size_t from = 0;
    cuts.push_back(raw.size());
    for (size_t cut : cuts) {
      if (cut <= from) continue;
      auto t = run(raw.substr(from, cut - from), false);
      out.insert(out.end(), t.begin(), t.end());
      from = cut;
    }
    raw.clear();
    web.clear();
  };
  bool rstrip = false;  // the last control token drops the whitespace after it
  auto append = [&](const std::string& t, size_t from, size_t to) {
    if (rstrip)
      while (from < to && std::isspace((unsigned char)t[from])) ++from;
    if (from < to) rstrip = false;
    raw.append(t, from, to - from);
  };
  for (auto& p : parts) {
    if (!p.trusted) {
      size_t before = raw.size();
      append(p.text, 0, p.text.size());
      if (raw.size() > before) web.push_back({before, raw.size()});
      continue;
    }
    const std::string& t = p.text;
    size_t start = 0;  // of the plain text not yet appended
    for (size_t i = 0; i < t.size();) {
      const Special* hit = nullptr;
      for (auto& sp : specials_)
        if (!sp.user_defined && t.compare(i, sp.text.size(), sp.text) == 0) {
          hit = &sp;
          break;
        }
      if (!hit) {
        ++i;
        continue;
      }
      append(t, start, i);
      if (hit->lstrip) {
        while (!raw.empty() && std::isspace((unsigned char)raw.back())) raw.pop_back();
        for (auto& r : web) r.second = std::min(r.second, raw.size());
      }
      flush();
      out.push_back(hit->id);
      i += hit->text.size();
      start = i;
      rstrip = hit->rstrip;
    }
    append(t, start, t.size());
  }
  flush();
  return out;
}

std::string PromptTokenizer::clip(const std::string& text, int max_tokens) const {
  if (max_tokens <= 0) return "";
  auto toks = plain(text);
  if ((int)toks.size() <= max_tokens) return text;
  std::string out;
  char buf[256];
  for (int i = 0; i < max_tokens; ++i) {
    int n = llama_token_to_piece(vocab_, toks[(size_t)i], buf, sizeof buf, 0, false);
    if (n > 0) out.append(buf, (size_t)n);
  }
  // a SentencePiece vocabulary's space prefix is not part of the text
  if (!out.empty() && out[0] == ' ' && (text.empty() || text[0] != ' ')) out.erase(0, 1);
  if (text.compare(0, out.size(), out) == 0) {
    drop_partial_utf8(out);  // a byte-level token may end inside a character
  } else {
    repair_utf8(out);
  }
  return out;
}

}  // namespace capforge::vlm
