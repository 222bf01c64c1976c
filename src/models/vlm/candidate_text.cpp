#include "models/vlm/candidate_text.h"

#include <cctype>
#include <cstring>

#include "core/text.h"

namespace capforge::vlm {

int loop_cut(const std::vector<int>& t, int repeats, int max_n) {
  if (repeats < 2) return -1;
  const int m = (int)t.size();
  for (int n = 1; n <= max_n && n * repeats <= m; ++n) {
    bool loop = true;
    for (int r = 1; r < repeats && loop; ++r)
      for (int k = 0; k < n && loop; ++k) loop = t[m - n + k] == t[m - (r + 1) * n + k];
    if (loop) return m - (repeats - 1) * n;
  }
  return -1;
}

namespace {
std::string collapse_ws(const std::string& s) {
  std::string out;
  bool space = false;
  for (unsigned char c : s) {
    if (std::isspace(c)) {
      space = !out.empty();
      continue;
    }
    if (space) out += ' ';
    space = false;
    out += (char)c;
  }
  return out;
}
}  // namespace

std::string clean_caption(const std::string& text, const std::string& prompt, bool drop_fragment,
                          bool truncated, std::vector<std::string>& flags) {
  std::string s = collapse_ws(text);
  std::string p = collapse_ws(prompt);
  if (!p.empty() && s.size() > p.size() && ascii_lower(s.substr(0, p.size())) == ascii_lower(p)) {
    s = collapse_ws(s.substr(p.size()));
    flags.push_back("prompt_echo");
  }
  if (drop_fragment && truncated && !s.empty() && !std::strchr(".!?", s.back())) {
    size_t end = std::string::npos;
    for (size_t i = 0; i + 1 < s.size(); ++i)
      if (std::strchr(".!?", s[i]) && s[i + 1] == ' ') end = i;
    if (end != std::string::npos) {
      s.resize(end + 1);
      flags.push_back("fragment_dropped");
    }
  }
  return s;
}

size_t find_stop(const std::string& text, const std::vector<std::string>& stops) {
  size_t best = std::string::npos;
  for (auto& st : stops)
    if (!st.empty()) best = std::min(best, text.find(st));
  return best;
}

}  // namespace capforge::vlm
