// Prompt templates: a prompt with placeholders filled per sample. The filled values are web text
// (alt-texts, URLs, input columns): they come out as untrusted parts, which a model's tokenizer
// must treat as plain text, never as special tokens.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "capforge/sample.h"

namespace capforge {

struct PromptPart {
  std::string text;
  bool trusted = true;  // false: a filled placeholder
};

class PromptTemplate {
 public:
  // Placeholders: {org_caption}, {url}, {key}, {col:NAME}; {{ and }} are literal braces; any other
  // brace is literal text. Throws std::invalid_argument for an unknown {identifier} or an empty
  // {col:}, naming it.
  explicit PromptTemplate(const std::string& text);

  bool has_placeholders() const;
  bool uses(const std::string& placeholder) const;  // e.g. "org_caption"

  // Parts in order; adjacent trusted text merged. `sample` null: every value is empty. A missing
  // value (no caption, no such column, null) is empty. `clip_org` shortens the alt-text (e.g. to N
  // tokens); null: kept whole.
  std::vector<PromptPart> render(const std::string& key, const Sample* sample,
                                 const std::function<std::string(const std::string&)>& clip_org = {}) const;
  // The text with every value empty (for size checks and logs).
  std::string skeleton() const;

 private:
  struct Piece {
    enum Kind { literal, org_caption, url, key, column } kind;
    std::string text;  // literal text or column name
  };
  std::vector<Piece> pieces_;
};

// A prompt name: a letter, then letters, digits or '_' (it becomes part of column names).
bool is_prompt_name(const std::string& name);

// The text of an input column for {col:NAME}: strings as they are, null as empty, others as JSON.
std::string column_text(const Sample& s, const std::string& name);

}  // namespace capforge
