#include "models/repair/rules.h"

#include <cctype>
#include <cstring>
#include <set>
#include <sstream>
#include <vector>

#include "core/text.h"

namespace capforge::repair {

namespace {
// Words that cannot end an English caption: articles, prepositions, conjunctions.
const std::set<std::string> kDangling = {"a",    "an",    "the",  "of",    "on",   "in",  "at",
                                         "with", "and",   "or",   "to",    "for",  "by",  "from",
                                         "into", "onto",  "its",  "their", "his",  "her", "is",
                                         "are",  "while", "near", "under", "over", "as"};

std::string strip_punct(const std::string& w) {
  size_t e = w.size();
  while (e > 0 && std::ispunct((unsigned char)w[e - 1])) --e;
  return ascii_lower(w.substr(0, e));
}
}  // namespace

std::string repair_caption(const std::string& caption) {
  std::istringstream in(caption);
  std::vector<std::string> words;
  for (std::string w; in >> w;) {
    // a lone punctuation token attaches to the previous word ("dog ." -> "dog.")
    bool punct_only = true;
    for (unsigned char c : w) punct_only = punct_only && std::strchr(",.;:!?", c) && c;
    if (punct_only && !words.empty()) {
      words.back() += w;
      continue;
    }
    if (!words.empty() && strip_punct(words.back()) == strip_punct(w) && !strip_punct(w).empty() &&
        !std::ispunct((unsigned char)words.back().back()))
      continue;  // "the the"
    words.push_back(w);
  }
  while (words.size() > 1 && kDangling.count(strip_punct(words.back())) &&
         !std::strchr(".!?", words.back().back()))
    words.pop_back();
  std::string s;
  for (auto& w : words) s += (s.empty() ? "" : " ") + w;
  while (!s.empty() && std::strchr(",;:", s.back())) s.pop_back();
  if (s.empty()) return s;
  s[0] = (char)std::toupper((unsigned char)s[0]);
  if (!std::strchr(".!?", s.back())) s += '.';
  return s;
}

}  // namespace capforge::repair
