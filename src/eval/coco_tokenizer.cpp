// pycocoevalcap's tokenisation, written from the Penn Treebank conventions that Stanford's
// PTBTokenizer (3.4.1, -preserveLines -lowerCase) follows, then pycocoevalcap's punctuation filter.
// Contract, in order:
//  - typographic quotes, dashes and ellipses become their ASCII PTB forms; "&amp;" becomes "&";
//  - words split at whitespace; leading and trailing punctuation peeled off as tokens: quotes
//    (`` `` '' ` '), brackets (-LRB- -RRB- -LSB- -RSB- -LCB- -RCB-), , ; : ? ! and "...";
//  - a final period is its own token unless the word is an abbreviation (u.s., mr., etc.); an
//    abbreviation that ends the caption keeps its period and adds a "." token, as PTB3 does;
//  - inside a word, commas and colons split it unless between digits (1,000 and 10:30 stay);
//    periods, hyphens and apostrophes stay (e.g. www.x.com, black-and-white, o'clock);
//  - clitics split off: n't ('s 're 've 'll 'd 'm), so don't -> do n't, can't -> ca n't;
//    "cannot" -> can not;
//  - "/" and "*" are escaped as "\/" and "\*";
//  - tokens are lower-cased AFTER this, so the bracket names become "-lrb-" etc. and, as in the
//    toolkit (whose filter lists them upper-case), are not removed;
//  - removed: '' ' `` ` . ? ! , : - -- ... ;
#include <algorithm>
#include <array>
#include <cctype>
#include <string>
#include <string_view>
#include <vector>

#include "capforge/eval.h"
#include "core/text.h"

namespace capforge {

namespace {

bool is_digit(char c) { return c >= '0' && c <= '9'; }

// Typographic forms -> ASCII PTB forms, with spaces where PTB always splits.
std::string normalise(std::string_view in) {
  static const std::array<std::pair<std::string_view, std::string_view>, 14> kMap = {{
      {"\u201C", " `` "},
      {"\u201D", " '' "},
      {"\u201E", " `` "},
      {"\u00AB", " `` "},
      {"\u00BB", " '' "},
      {"\u2018", "`"},
      {"\u2019", "'"},
      {"\u2014", " -- "},
      {"\u2013", " -- "},
      {"\u2026", " ... "},
      {"\u00A0", " "},
      {"&amp;", "&"},
      {"\t", " "},
      {"\n", " "},
  }};
  std::string out;
  for (size_t i = 0; i < in.size();) {
    bool hit = false;
    for (auto& [from, to] : kMap)
      if (in.compare(i, from.size(), from) == 0) {
        out += to;
        i += from.size();
        hit = true;
        break;
      }
    if (!hit) out += in[i++];
  }
  return out;
}

bool is_abbreviation(std::string_view w) {  // w without its final period
  static const std::array<std::string_view, 15> kAbbrev = {
      "mr", "mrs", "ms", "dr", "prof", "st", "jr", "sr", "vs", "etc", "inc", "ltd", "corp", "mt", "ave"};
  std::string lw = ascii_lower(w);
  if (std::find(kAbbrev.begin(), kAbbrev.end(), lw) != kAbbrev.end()) return true;
  // letter-period sequences: u.s, e.g, a.m
  if (lw.size() < 3) return false;
  for (size_t i = 0; i < lw.size(); ++i)
    if ((i % 2 == 0) != (std::isalpha((unsigned char)lw[i]) != 0) || (i % 2 == 1 && lw[i] != '.'))
      return false;
  return true;
}

std::string bracket(char c) {
  switch (c) {
    case '(':
      return "-LRB-";
    case ')':
      return "-RRB-";
    case '[':
      return "-LSB-";
    case ']':
      return "-RSB-";
    case '{':
      return "-LCB-";
    default:
      return "-RCB-";
  }
}

// A word with no outer punctuation: clitics and escapes.
void emit_word(std::string w, std::vector<std::string>& out) {
  if (w.empty()) return;
  std::string lw = ascii_lower(w);
  if (lw == "cannot") {
    out.push_back(w.substr(0, 3));
    out.push_back(w.substr(3));
    return;
  }
  std::string clitic;
  if (lw.size() > 3 && lw.compare(lw.size() - 3, 3, "n't") == 0) {
    clitic = w.substr(w.size() - 3);
  } else {
    for (std::string_view c : {"'s", "'re", "'ve", "'ll", "'d", "'m"})
      if (lw.size() > c.size() && lw.compare(lw.size() - c.size(), c.size(), c) == 0) {
        clitic = w.substr(w.size() - c.size());
        break;
      }
  }
  if (!clitic.empty()) w.resize(w.size() - clitic.size());
  std::string esc;
  for (char c : w) {
    if (c == '/' || c == '*') esc += '\\';
    esc += c;
  }
  out.push_back(std::move(esc));
  if (!clitic.empty()) out.push_back(std::move(clitic));
}

// The inside of a chunk: commas, colons, semicolons, ?, !, quotes and brackets split it, except a
// comma or colon between digits; a run of periods is an ellipsis.
void emit_core(std::string_view w, std::vector<std::string>& out) {
  std::string cur;
  auto flush = [&] {
    emit_word(std::move(cur), out);
    cur.clear();
  };
  for (size_t i = 0; i < w.size(); ++i) {
    char c = w[i];
    bool between_digits = i > 0 && i + 1 < w.size() && is_digit(w[i - 1]) && is_digit(w[i + 1]);
    if ((c == ',' || c == ':') && !between_digits) {
      flush();
      out.push_back(std::string(1, c));
    } else if (c == ';' || c == '?' || c == '!') {
      flush();
      out.push_back(std::string(1, c));
    } else if (c == '"') {
      flush();
      out.push_back(cur.empty() && (out.empty() || i == 0) ? "``" : "''");
    } else if (std::string_view("()[]{}").find(c) != std::string_view::npos) {
      flush();
      out.push_back(bracket(c));
    } else if (c == '.' && i + 1 < w.size() && w[i + 1] == '.') {
      flush();
      while (i + 1 < w.size() && w[i + 1] == '.') ++i;
      out.push_back("...");
    } else {
      cur += c;
    }
  }
  flush();
}

void emit_chunk(std::string_view w, bool last, std::vector<std::string>& out) {
  // leading punctuation
  while (!w.empty()) {
    char c = w[0];
    if (c == '"') {
      out.push_back("``");
    } else if (c == '\'' || c == '`') {
      if (w.size() > 1 && w[1] == c) {
        out.push_back(c == '`' ? "``" : "''");
        w.remove_prefix(1);
      } else {
        out.push_back("`");
      }
    } else if (c == '(' || c == '[' || c == '{') {
      out.push_back(bracket(c));
    } else if (c == '-' && w.size() > 1 && w[1] == '-') {
      size_t n = w.find_first_not_of('-');
      out.push_back("--");
      w.remove_prefix((n == std::string_view::npos ? w.size() : n) - 1);
    } else if (c == '-' && !(w.size() > 1 && is_digit(w[1]))) {
      out.push_back("-");
    } else if (c == '$' || c == '#') {
      out.push_back(std::string(1, c));
    } else {
      break;
    }
    w.remove_prefix(1);
  }
  // trailing punctuation, collected outermost first
  std::vector<std::string> tail;
  bool final_period_kept = false;
  while (!w.empty()) {
    char c = w.back();
    if (c == '.' && w.size() >= 3 && w.substr(w.size() - 3) == "...") {
      size_t n = w.find_last_not_of('.');
      w = w.substr(0, n == std::string_view::npos ? 0 : n + 1);
      tail.push_back("...");
      continue;
    }
    if (c == '.') {
      std::string_view stem = w.substr(0, w.size() - 1);
      if (!stem.empty() && is_abbreviation(stem)) {
        if (last && tail.empty()) final_period_kept = true;
        break;
      }
      tail.push_back(".");
    } else if (c == '"') {
      tail.push_back("''");
    } else if (c == '\'') {
      if (w.size() > 1 && w[w.size() - 2] == '\'') {
        tail.push_back("''");
        w.remove_suffix(1);
      } else {
        tail.push_back("'");
      }
    } else if (c == ')' || c == ']' || c == '}') {
      tail.push_back(bracket(c));
    } else if (c == ',' || c == ';' || c == ':' || c == '?' || c == '!') {
      tail.push_back(std::string(1, c));
    } else if (c == '-' && w.size() > 1 && w[w.size() - 2] == '-') {
      size_t n = w.find_last_not_of('-');
      w = w.substr(0, n == std::string_view::npos ? 0 : n + 1);
      tail.push_back("--");
      continue;
    } else {
      break;
    }
    w.remove_suffix(1);
  }
  emit_core(w, out);
  if (final_period_kept) out.push_back(".");
  out.insert(out.end(), tail.rbegin(), tail.rend());
}

bool removed(const std::string& t) {
  // pycocoevalcap's PUNCTUATIONS; its "-LRB-" etc. never match the lower-cased tokens
  static const std::array<std::string_view, 13> kPunct = {"''", "'", "``", "`",  ".",   "?", "!",
                                                          ",",  ":", "-",  "--", "...", ";"};
  return std::find(kPunct.begin(), kPunct.end(), t) != kPunct.end();
}

}  // namespace

std::vector<std::string> coco_tokenize(std::string_view caption) {
  std::string s = normalise(caption);
  std::vector<std::string_view> chunks;
  for (size_t i = 0; i < s.size();) {
    while (i < s.size() && (s[i] == ' ' || s[i] == '\r' || s[i] == '\f' || s[i] == '\v')) ++i;
    size_t j = i;
    while (j < s.size() && !(s[j] == ' ' || s[j] == '\r' || s[j] == '\f' || s[j] == '\v')) ++j;
    if (j > i) chunks.push_back(std::string_view(s).substr(i, j - i));
    i = j;
  }
  std::vector<std::string> toks, out;
  for (size_t k = 0; k < chunks.size(); ++k) emit_chunk(chunks[k], k + 1 == chunks.size(), toks);
  for (auto& t : toks) {
    std::string l = unicode_lower(t);
    if (!l.empty() && !removed(l)) out.push_back(std::move(l));
  }
  return out;
}

}  // namespace capforge
