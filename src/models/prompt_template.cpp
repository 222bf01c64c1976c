#include "models/prompt_template.h"

#include <fmt/format.h>

#include <cctype>
#include <stdexcept>

namespace capforge {

namespace {
bool is_identifier(const std::string& s) {
  if (s.empty() || !std::isalpha((unsigned char)s[0])) return false;
  for (char c : s)
    if (!std::isalnum((unsigned char)c) && c != '_') return false;
  return true;
}
}  // namespace

bool is_prompt_name(const std::string& name) { return is_identifier(name); }

PromptTemplate::PromptTemplate(const std::string& text) {
  std::string lit;
  auto flush = [&] {
    if (!lit.empty()) pieces_.push_back({Piece::literal, lit});
    lit.clear();
  };
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if ((c == '{' || c == '}') && i + 1 < text.size() && text[i + 1] == c) {  // {{ or }}
      lit += c;
      ++i;
      continue;
    }
    if (c != '{') {
      lit += c;
      continue;
    }
    size_t close = text.find('}', i + 1);
    if (close == std::string::npos) {
      lit += c;
      continue;
    }
    std::string name = text.substr(i + 1, close - i - 1);
    Piece p{Piece::literal, ""};
    if (name == "org_caption") {
      p.kind = Piece::org_caption;
    } else if (name == "url") {
      p.kind = Piece::url;
    } else if (name == "key") {
      p.kind = Piece::key;
    } else if (name.rfind("col:", 0) == 0) {
      if (name.size() == 4) throw std::invalid_argument("prompt placeholder {col:} names no column");
      p = {Piece::column, name.substr(4)};
    } else if (is_identifier(name)) {
      throw std::invalid_argument(fmt::format(
          "unknown prompt placeholder {{{}}}: the placeholders are {{org_caption}}, {{url}}, {{key}} "
          "and {{col:NAME}}; write {{{{ and }}}} for literal braces",
          name));
    } else {  // not a placeholder: braces in prose or JSON stay text
      lit += c;
      continue;
    }
    flush();
    pieces_.push_back(std::move(p));
    i = close;
  }
  flush();
}

bool PromptTemplate::has_placeholders() const {
  for (auto& p : pieces_)
    if (p.kind != Piece::literal) return true;
  return false;
}

bool PromptTemplate::uses(const std::string& placeholder) const {
  for (auto& p : pieces_)
    if ((placeholder == "org_caption" && p.kind == Piece::org_caption) ||
        (placeholder == "url" && p.kind == Piece::url) || (placeholder == "key" && p.kind == Piece::key) ||
        (p.kind == Piece::column && placeholder == "col:" + p.text))
      return true;
  return false;
}

std::string column_text(const Sample& s, const std::string& name) {
  auto it = s.meta.find(name);
  if (it == s.meta.end() || it->is_null()) return "";
  return it->is_string() ? it->get<std::string>() : it->dump();
}

std::vector<PromptPart> PromptTemplate::render(
    const std::string& key, const Sample* sample,
    const std::function<std::string(const std::string&)>& clip_org) const {
  std::vector<PromptPart> out;
  auto add = [&](const std::string& text, bool trusted) {
    if (text.empty()) return;
    if (trusted && !out.empty() && out.back().trusted)
      out.back().text += text;
    else
      out.push_back({text, trusted});
  };
  for (auto& p : pieces_) {
    switch (p.kind) {
      case Piece::literal:
        add(p.text, true);
        break;
      case Piece::org_caption:
        if (sample && sample->caption) add(clip_org ? clip_org(*sample->caption) : *sample->caption, false);
        break;
      case Piece::url:
        if (sample) add(sample->url, false);
        break;
      case Piece::key:
        add(key, false);
        break;
      case Piece::column:
        if (sample) add(column_text(*sample, p.text), false);
        break;
    }
  }
  return out;
}

std::string PromptTemplate::skeleton() const {
  std::string s;
  for (auto& p : pieces_)
    if (p.kind == Piece::literal) s += p.text;
  return s;
}

}  // namespace capforge
