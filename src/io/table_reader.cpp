// Parquet, CSV/TSV and JSONL shards via DuckDB, streamed chunk by chunk.
#include <unistd.h>

#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <regex>
#include <stdexcept>

#include "capforge/env.h"
#include "capforge/image.h"
#include "core/log.h"
#include "core/text.h"
#include "io/duckdb_util.h"
#include "io/readers.h"
#include "io/sample_builder.h"

namespace capforge {

namespace {

struct Column {
  std::string name, type;
};

std::string source_expr(const ShardInput& in, const std::vector<std::string>& varchar_cols) {
  std::string path = duck::quote_string(in.path);
  std::string types;
  for (auto& c : varchar_cols) types += (types.empty() ? "" : ", ") + duck::quote_string(c) + ": 'VARCHAR'";
  switch (in.format) {
    case InputFormat::parquet:
      return "read_parquet(" + path + ")";
    case InputFormat::csv:
      return "read_csv(" + path + ", header = true" + (types.empty() ? "" : ", types = {" + types + "}") +
             ")";
    case InputFormat::tsv:
      return "read_csv(" + path + ", header = true, delim = '\\t', quote = ''" +
             (types.empty() ? "" : ", types = {" + types + "}") + ")";
    case InputFormat::jsonl:
      return "read_json(" + path + ", format = 'newline_delimited')";
    case InputFormat::txt:  // one URL per line
      return "read_csv(" + path + ", header = false, delim = '\t', quote = '', columns = {'url': 'VARCHAR'})";
    default:
      throw std::logic_error("not a table format");
  }
}

}  // namespace

std::string table_source_sql(const ShardInput& in) { return source_expr(in, {}); }

namespace {

// Finds `wanted` (exact) or else the first of `defaults` (exact, then case-insensitive).
const Column* find_column(const std::vector<Column>& cols, const std::string& wanted,
                          std::initializer_list<const char*> defaults, const char* flag,
                          const std::string& path) {
  if (!wanted.empty()) {
    for (auto& c : cols)
      if (c.name == wanted) return &c;
    std::string names;
    for (auto& c : cols) names += (names.empty() ? "" : ", ") + c.name;
    throw std::runtime_error(
        fmt::format("{} has no column '{}' ({}); its columns are: {}", path, wanted, flag, names));
  }
  for (const char* d : defaults)
    for (auto& c : cols)
      if (c.name == d) return &c;
  for (const char* d : defaults)
    for (auto& c : cols)
      if (ascii_lower(c.name) == ascii_lower(d)) return &c;
  return nullptr;
}

bool is_encoding_error(const std::string& msg) {
  return msg.find("Invalid unicode") != std::string::npos || msg.find("not utf-8") != std::string::npos ||
         msg.find("Invalid string encoding") != std::string::npos;
}

// Copies a text file with each invalid UTF-8 byte replaced by U+FFFD (line by line: newlines are
// ASCII, so no sequence spans two lines). Returns how many bytes were replaced.
size_t write_repaired_copy(const std::string& from, const std::string& to) {
  std::ifstream in(from, std::ios::binary);
  std::ofstream out(to, std::ios::binary);
  size_t bad = 0;
  for (std::string line; std::getline(in, line);) {
    bad += repair_utf8(line);
    if (!in.eof()) line += '\n';
    out << line;
  }
  if (!out) throw std::runtime_error("cannot write " + to);
  return bad;
}

class TableReader : public SampleReader {
 public:
  TableReader(const ShardInput& given, const ReaderParams& p) : db_(2, "2GB"), stem_(path_stem(given.path)) {
    ShardInput in = given;
    std::vector<Column> cols;
    for (int pass = 0;; ++pass) {
      try {
        for (auto& r : db_.rows("DESCRIBE SELECT * FROM " + source_expr(in, {})))
          cols.push_back({r[0].value_or(""), r[1].value_or("")});
        break;
      } catch (const std::exception& e) {
        // CSV/TSV/JSONL with invalid UTF-8: DuckDB refuses the whole file, so read a repaired copy
        // rather than lose every row.
        bool text = in.format != InputFormat::parquet && !ascii_lower(in.path).ends_with(".gz");
        if (pass > 0 || !text || !is_encoding_error(e.what()))
          throw std::runtime_error(
              fmt::format("cannot read {} as {}: {}", given.path, format_name(in.format), e.what()));
        std::string tmpl = (std::filesystem::temp_directory_path() / "capforge-utf8-XXXXXX").string();
        int fd = mkstemp(tmpl.data());
        if (fd < 0) throw std::runtime_error("cannot create a temp file for " + given.path);
        close(fd);
        repaired_ = tmpl;
        size_t bad = write_repaired_copy(given.path, repaired_);
        warn("{}: replaced {} invalid UTF-8 byte(s) with U+FFFD", given.path, bad);
        in.path = repaired_;
      }
    }
    const Column* key = find_column(cols, p.key_col, {"key", "uid"}, "--key-col", in.path);
    const Column* url = find_column(cols, p.url_col, {"url"}, "--url-col", in.path);
    if (!url && p.require_url) {
      std::string names;
      for (auto& c : cols) names += (names.empty() ? "" : ", ") + c.name;
      throw std::runtime_error(fmt::format(
          "{} has no url column (looked for url, URL); name it with --url-col. Its columns are: {}",
          given.path, names));
    }
    const Column* cap = find_column(cols, p.caption_col, {"caption", "text"}, "--caption-col", in.path);
    const Column* img =
        find_column(cols, p.image_col, {"image", "jpg", "png", "webp", "image_bytes", "img", "image_base64"},
                    "--image-col", in.path);
    std::string img_bytes = "NULL::BLOB", img_path = "NULL::VARCHAR";
    if (img) {
      std::string q = duck::quote_ident(img->name);
      if (img->type == "BLOB") {
        img_bytes = q;
      } else if (std::regex_search(img->type, std::regex(R"(^STRUCT\(.*\bbytes BLOB\b)"))) {
        img_bytes = q + ".bytes";
        if (std::regex_search(img->type, std::regex(R"(\bpath VARCHAR\b)"))) img_path = q + ".path";
      } else if (img->type == "VARCHAR" && img->name.size() > 7 &&
                 img->name.compare(img->name.size() - 7, 7, "_base64") == 0) {
        img_bytes = "TRY(from_base64(" + q + "))";
      } else if (!p.image_col.empty()) {
        throw std::runtime_error(fmt::format(
            "{}: column '{}' has type {}; an image column must be BLOB, STRUCT(bytes BLOB, path VARCHAR) "
            "or base64 text named *_base64",
            in.path, img->name, img->type));
      } else {
        img = nullptr;  // an "image" column of another type is just metadata
      }
    }
    const Column* ext = nullptr;  // written by our JSONL writer beside image_base64
    if (img)
      for (auto& c : cols)
        if (c.name == "image_ext") ext = &c;
    if (ext) img_path = "CAST(" + duck::quote_ident(ext->name) + " AS VARCHAR)";
    std::vector<std::string> as_text;
    for (const Column* c : {key, url, cap})
      if (c) as_text.push_back(c->name);
    std::string meta = "json_object(";
    bool first = true;
    for (auto& kc : p.keep_cols)
      if (std::none_of(cols.begin(), cols.end(), [&](const Column& c) { return c.name == kc; }))
        throw std::runtime_error(fmt::format("{} has no column '{}' (--save-cols)", given.path, kc));
    for (auto& c : cols) {
      if (&c == key || &c == url || &c == cap || &c == img || &c == ext) continue;
      if (!p.keep_cols.empty() &&
          std::find(p.keep_cols.begin(), p.keep_cols.end(), c.name) == p.keep_cols.end())
        continue;
      meta += (first ? "" : ", ") + duck::quote_string(c.name) + ", " + duck::quote_ident(c.name);
      first = false;
      meta_types_.emplace_back(c.name, c.type);
    }
    meta += ")";
    auto text = [](const Column* c) {
      return c ? "CAST(" + duck::quote_ident(c->name) + " AS VARCHAR)" : std::string("NULL::VARCHAR");
    };
    std::string sql = fmt::format(
        "SELECT {}, {}, {}, {}, {}, CAST({} AS VARCHAR) FROM {}", text(key), text(url), text(cap), img_bytes,
        img_path, first ? "NULL" : meta,
        source_expr(in, in.format == InputFormat::parquet ? std::vector<std::string>{} : as_text));
    if (in.row_count >= 0) sql += fmt::format(" LIMIT {} OFFSET {}", in.row_count, in.row_begin);
    index_digits_ = p.index_digits;
    shard_name_ = given.name;
    try {
      stream_ = std::make_unique<duck::Stream>(db_, sql);
    } catch (const std::exception& e) {
      throw std::runtime_error(fmt::format("cannot read {}: {}", given.path, e.what()));
    }
  }

  bool next(Sample& out) override {
    if (!error_.empty()) return false;
    try {
      while (row_ >= stream_->rows()) {
        if (!stream_->next_chunk()) return false;
        row_ = 0;
      }
    } catch (const std::exception& e) {
      error_ = fmt::format("read failed after {} row(s): {}", index_, e.what());
      return false;
    }
    const size_t r = row_++;
    out = Sample{};
    out.index = index_++;
    auto key = stream_->str(0, r);
    if (index_digits_ > 0)
      out.key = fmt::format("{}{:0{}d}", shard_name_, out.index, index_digits_);
    else
      out.key = key && !key->empty() ? std::string(*key) : fmt::format("{}_{:06d}", stem_, out.index);
    if (auto v = stream_->str(1, r)) out.url = *v;
    if (auto v = stream_->str(2, r)) out.caption = std::string(*v);
    if (auto v = stream_->str(3, r)) {
      out.has_image = true;
      out.image_bytes = *v;
    }
    if (auto v = stream_->str(4, r)) {  // an image path or a bare extension
      auto dot = v->rfind('.');
      auto e = dot == std::string_view::npos ? *v : v->substr(dot + 1);
      if (is_image_ext(e)) out.image_ext = ascii_lower(e);
    }
    if (out.image_ext.empty()) out.image_ext = sniff_image_ext(out.image_bytes);
    if (out.image_ext == "jpeg") out.image_ext = "jpg";
    if (auto v = stream_->str(5, r)) {
      out.meta = Json::parse(*v, nullptr, false);
      if (!out.meta.is_object()) out.meta = Json::object();
    }
    if (out.caption && repair_utf8(*out.caption)) out.note("caption had invalid UTF-8, replaced with U+FFFD");
    return true;
  }

  const std::string& error() const override { return error_; }
  std::vector<std::pair<std::string, std::string>> meta_types() const override { return meta_types_; }
  ~TableReader() override {
    stream_.reset();
    if (!repaired_.empty()) env().remove_file(repaired_);
  }

 private:
  std::string repaired_;  // repaired copy of a text input with invalid UTF-8
  int index_digits_ = 0;
  std::string shard_name_;
  duck::Database db_;
  std::string stem_;
  std::unique_ptr<duck::Stream> stream_;
  std::vector<std::pair<std::string, std::string>> meta_types_;
  size_t row_ = 0;
  int64_t index_ = 0;
  std::string error_;
};

}  // namespace

int64_t count_rows(const ShardInput& in) {
  duck::Database db(2, "1GB");
  auto rows = db.rows("SELECT count(*) FROM " + source_expr(in, {}));
  return rows.empty() || !rows[0][0] ? 0 : std::stoll(*rows[0][0]);
}

std::unique_ptr<SampleReader> open_table_reader(const ShardInput& in, const ReaderParams& params) {
  return std::make_unique<TableReader>(in, params);
}

}  // namespace capforge
