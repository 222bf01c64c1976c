// TXT URL lists: one URL per line, surrounding whitespace trimmed, blank lines skipped. Read
// natively (never through DuckDB's CSV sniffer, which tab or quote characters confuse).
#include <fmt/format.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <stdexcept>

#include "core/text.h"
#include "io/keys.h"
#include "io/readers.h"

namespace capforge {

namespace {

// Next URL of the list (trimmed, non-blank, invalid UTF-8 repaired); false at the end.
bool next_url(std::ifstream& in, std::string& url, size_t& repaired) {
  std::string line;
  while (std::getline(in, line)) {
    size_t b = line.find_first_not_of(" \t\r\f\v");
    if (b == std::string::npos) continue;
    size_t e = line.find_last_not_of(" \t\r\f\v");
    url = line.substr(b, e - b + 1);
    repaired = repair_utf8(url);
    return true;
  }
  return false;
}

std::ifstream open_list(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(fmt::format("cannot read {}: {}", path, std::strerror(errno)));
  return in;
}

// "urls.txt" -> "urls": the prefix of generated keys.
std::string txt_stem(const std::string& path) {
  std::string stem = path_stem(path);
  if (ascii_lower(stem).ends_with(".txt")) stem.resize(stem.size() - 4);
  return stem;
}

class TxtReader : public SampleReader {
 public:
  TxtReader(const ShardInput& in, const ReaderParams& p)
      : in_(open_list(in.path)),
        stem_(txt_stem(in.path)),
        shard_name_(in.name),
        digits_(p.index_digits),
        left_(in.row_count) {
    if (!p.key_col.empty() || !p.caption_col.empty() || !p.image_col.empty() ||
        (!p.url_col.empty() && p.url_col != "url"))
      throw ColumnError(fmt::format(
          "{} is a TXT list (one URL per line, no columns): --key-col, --caption-col, --image-col and "
          "--url-col do not apply",
          in.path));
    if (!p.keep_cols.empty())
      throw ColumnError(
          fmt::format("{} is a TXT list (one URL per line): it has no columns for --save-cols", in.path));
    std::string skip;
    size_t bad = 0;
    for (int64_t i = 0; i < in.row_begin && next_url(in_, skip, bad); ++i) {
    }
  }

  bool next(Sample& out) override {
    if (left_ == 0) return false;
    std::string url;
    size_t bad = 0;
    if (!next_url(in_, url, bad)) return false;
    if (left_ > 0) --left_;
    out = Sample{};
    out.index = index_++;
    out.key = default_key(shard_name_, stem_, out.index, digits_);
    out.url = std::move(url);
    if (bad) out.note("url had invalid UTF-8, replaced with U+FFFD");
    return true;
  }
  const std::string& error() const override { return error_; }

 private:
  std::ifstream in_;
  std::string stem_, shard_name_;
  int digits_;
  int64_t left_;  // samples still to deliver (-1: to the end)
  int64_t index_ = 0;
  std::string error_;  // a text list has no container to break
};

}  // namespace

std::unique_ptr<SampleReader> open_txt_reader(const ShardInput& in, const ReaderParams& params) {
  return std::make_unique<TxtReader>(in, params);
}

int64_t count_txt_urls(const std::string& path) {
  auto in = open_list(path);
  std::string url;
  size_t bad = 0;
  int64_t n = 0;
  while (next_url(in, url, bad)) ++n;
  return n;
}

}  // namespace capforge
