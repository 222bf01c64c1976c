// Parquet, CSV/TSV and JSONL shards via DuckDB, streamed chunk by chunk (TXT lists: txt_reader.cpp).
#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <mutex>
#include <regex>
#include <stdexcept>

#include "capforge/image.h"
#include "core/log.h"
#include "core/text.h"
#include "io/duckdb_util.h"
#include "io/keys.h"
#include "io/readers.h"
#include "io/table_prescan.h"

namespace capforge {

namespace {

struct Column {
  std::string name, type;
};

// CSV/TSV/JSONL column types come from the whole file, not DuckDB's default 20,480-row sample: a value
// late in the file that does not fit a type sniffed from the sample (30,000 integers, then text)
// would otherwise fail the read mid-stream and lose the rest of the shard.
constexpr const char* kWholeFile = ", sample_size = -1";

// DuckDB's table function over `in`; text tables are read from their prescanned copy with the
// dialect the prescan found. `varchar_cols` are forced to VARCHAR (CSV/TSV: keeps zero-padded keys).
std::string source_expr(const ShardInput& in, const std::vector<std::string>& varchar_cols,
                        const TextTable* t) {
  std::string path = duck::quote_string(t ? t->read_path : in.path);
  std::string types;
  for (auto& c : varchar_cols) types += (types.empty() ? "" : ", ") + duck::quote_string(c) + ": 'VARCHAR'";
  if (!types.empty()) types = ", types = {" + types + "}";
  switch (in.format) {
    case InputFormat::parquet:
      return "read_parquet(" + path + ")";
    case InputFormat::csv:
      if (!t)
        return "read_csv(" + path + ", header = true" + kWholeFile + types + ")";  // no prescan: sniffed
      return "read_csv(" + path + ", header = true, delim = " +
             (t->delim == '\t' ? std::string("'\\t'") : duck::quote_string(std::string(1, t->delim))) +
             ", quote = '\"', escape = '\"'" + kWholeFile + types + ")";
    case InputFormat::tsv:
      return "read_csv(" + path + ", header = true, delim = '\\t', quote = ''" + kWholeFile + types + ")";
    case InputFormat::jsonl:
      return "read_json(" + path + ", format = 'newline_delimited'" + kWholeFile + ")";
    case InputFormat::txt:  // one URL per line (readers use txt_reader.cpp; this is for SQL users)
      return "read_csv(" + path + ", header = false, delim = '\t', quote = '', columns = {'url': 'VARCHAR'})";
    default:
      throw std::logic_error("not a table format");
  }
}

std::shared_ptr<const TextTable> prescan_if_text(const ShardInput& in) {
  return needs_prescan(in) ? prescan_text_table(in) : nullptr;
}

}  // namespace

std::string table_source_sql(const ShardInput& in) {
  // The SQL names the prescan's copy (if any), so it is held for the process: this serves the few
  // tables of eval / sql, never a dataset's shards (readers hold their copy only while open).
  static std::mutex mu;
  static std::vector<std::shared_ptr<const TextTable>> held;
  auto t = prescan_if_text(in);
  if (t && !t->temp_copy.empty()) {
    std::lock_guard lock(mu);
    held.push_back(t);
  }
  return source_expr(in, {}, t.get());
}

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
    throw ColumnError(
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

bool is_nested(const std::string& type) {
  return type.ends_with("]") || type.starts_with("STRUCT") || type.starts_with("MAP") ||
         type.starts_with("UNION");
}

// A key, url or caption column as text: strings as they are; a JSON column (JSONL rows that mix
// types) gives each string itself and a number, list or object its JSON text, per row; nested
// types give their JSON text; anything else its CAST.
std::string text_expr(const Column* c) {
  if (!c) return "NULL::VARCHAR";
  std::string q = duck::quote_ident(c->name);
  if (c->type == "VARCHAR") return q;
  if (c->type == "JSON") return "json_extract_string(" + q + ", '$')";
  if (is_nested(c->type)) return "CAST(to_json(" + q + ") AS VARCHAR)";
  return "CAST(" + q + " AS VARCHAR)";
}

constexpr const char* kImageTypes = "BLOB, STRUCT(bytes BLOB, path VARCHAR) or base64 text";

// Decodes a base64 text column (whitespace ignored) to BLOB; NULL where a value is not base64.
// Checked rather than TRY(): DuckDB 1.4's TRY also nulls the input column in a failing row.
std::string base64_expr(const std::string& quoted_col) {
  std::string b64 = "regexp_replace(" + quoted_col + ", '\\s+', '', 'g')";
  return "CASE WHEN regexp_full_match(" + b64 + ", '[A-Za-z0-9+/]*={0,2}') AND length(" + b64 +
         ") % 4 = 0 THEN from_base64(" + b64 + ") END";
}

// Whether the first non-null value of a text column is the base64 of an image (an auto-detected
// "image" column of file names, URLs or hex hashes stays metadata).
bool first_value_is_base64_image(duck::Database& db, const std::string& source, const std::string& col) {
  std::string q = duck::quote_ident(col);
  try {
    duck::Stream st(db,
                    "SELECT " + base64_expr(q) + " FROM " + source + " WHERE " + q + " IS NOT NULL LIMIT 1");
    if (!st.next_chunk() || st.rows() == 0) return false;
    auto v = st.str(0, 0);
    return v && !sniff_image_type(*v).empty();
  } catch (const std::exception&) {
    return false;
  }
}

// Samples of a table in file order. Text tables go through the prescan: a record it found bad
// becomes a sample of its own with status failed_to_read, between the good rows around it.
class TableReader : public SampleReader {
 public:
  TableReader(const ShardInput& in, const ReaderParams& p)
      : db_(2, "2GB"),
        stem_(path_stem(in.path)),
        shard_name_(in.name),
        index_digits_(p.index_digits),
        require_url_(p.require_url),
        left_(in.row_count) {
    text_ = prescan_if_text(in);
    if (text_ && text_->utf8_replaced && in.row_begin == 0)
      warn("{}: replaced {} invalid UTF-8 sequence(s) with U+FFFD", in.path, text_->utf8_replaced);
    std::vector<Column> cols;
    try {
      for (auto& r : db_.rows("DESCRIBE SELECT * FROM " + source_expr(in, {}, text_.get())))
        cols.push_back({r[0].value_or(""), r[1].value_or("")});
    } catch (const std::exception& e) {
      throw std::runtime_error(
          fmt::format("cannot read {} as {}: {}", in.path, format_name(in.format), e.what()));
    }
    const Column* key = find_column(cols, p.key_col, {"key", "uid"}, "--key-col", in.path);
    const Column* url = find_column(cols, p.url_col, {"url"}, "--url-col", in.path);
    if (!url && p.require_url) {
      std::string names;
      for (auto& c : cols) names += (names.empty() ? "" : ", ") + c.name;
      throw ColumnError(fmt::format(
          "{} has no url column (looked for url, URL); name it with --url-col. Its columns are: {}", in.path,
          names));
    }
    const Column* cap = find_column(cols, p.caption_col, {"caption", "text"}, "--caption-col", in.path);
    const Column* img =
        find_column(cols, p.image_col, {"image", "jpg", "png", "webp", "image_bytes", "img", "image_base64"},
                    "--image-col", in.path);
    std::vector<std::string> as_text;
    for (const Column* c : {key, url, cap})
      if (c) as_text.push_back(c->name);
    const std::string source = source_expr(
        in, in.format == InputFormat::parquet ? std::vector<std::string>{} : as_text, text_.get());
    std::string img_bytes = "NULL::BLOB", img_path = "NULL::VARCHAR", img_given = "NULL::VARCHAR";
    if (img) {
      std::string q = duck::quote_ident(img->name);
      if (img->type == "BLOB") {
        img_bytes = q;
      } else if (std::regex_search(img->type, std::regex(R"(^STRUCT\(.*\bbytes BLOB\b)"))) {
        img_bytes = q + ".bytes";
        if (std::regex_search(img->type, std::regex(R"(\bpath VARCHAR\b)"))) img_path = q + ".path";
      } else if (img->type == "VARCHAR" && (!p.image_col.empty() || img->name.ends_with("_base64") ||
                                            first_value_is_base64_image(db_, source, img->name))) {
        img_bytes = base64_expr(q);
        img_given = "CAST(" + q + " IS NOT NULL AS VARCHAR)";
        base64_col_ = img->name;
      } else if (!p.image_col.empty()) {
        throw ColumnError(fmt::format("{}: image column '{}' (--image-col) has type {}; expected {}", in.path,
                                      img->name, img->type, kImageTypes));
      } else {  // an "image" column of another type is metadata; say so when a sample lacks an image
        image_problem_ = fmt::format("column '{}' has type {}, not an image column ({})", img->name,
                                     img->type, kImageTypes);
        img = nullptr;
      }
    }
    const Column* ext = nullptr;  // written by our JSONL writer beside image_base64
    if (img)
      for (auto& c : cols)
        if (c.name == "image_ext") ext = &c;
    if (ext) img_path = "CAST(" + duck::quote_ident(ext->name) + " AS VARCHAR)";
    std::string meta = "json_object(";
    bool first = true;
    for (auto& kc : p.keep_cols)
      if (std::none_of(cols.begin(), cols.end(), [&](const Column& c) { return c.name == kc; }))
        throw ColumnError(fmt::format("{} has no column '{}' (--save-cols)", in.path, kc));
    for (auto& c : cols) {
      const bool kept = std::find(p.keep_cols.begin(), p.keep_cols.end(), c.name) != p.keep_cols.end();
      // A kept (--save-cols) column always reaches the outputs under its own name, whatever role
      // it also plays: the key column (keys may be replaced, e.g. by img2dataset's), and a url or
      // caption column whose name is not the output's "url" / "caption".
      const bool passes =
          kept && (&c == key || (&c == url && c.name != "url") || (&c == cap && c.name != "caption"));
      if (!passes && (&c == key || &c == url || &c == cap || &c == img || &c == ext)) continue;
      if (!p.keep_cols.empty() && !kept) continue;
      meta += (first ? "" : ", ") + duck::quote_string(c.name) + ", " + duck::quote_ident(c.name);
      first = false;
      meta_types_.emplace_back(c.name, c.type);
    }
    meta += ")";
    std::string cap_kind = cap && cap->type == "JSON" ? "json_type(" + duck::quote_ident(cap->name) + ")"
                                                      : std::string("NULL::VARCHAR");
    std::string sql = fmt::format("SELECT {}, {}, {}, {}, {}, CAST({} AS VARCHAR), {}, {} FROM {}",
                                  text_expr(key), text_expr(url), text_expr(cap), img_bytes, img_path,
                                  first ? "NULL" : meta, cap_kind, img_given, source);
    if (in.row_begin > 0 || in.row_count >= 0) {  // a slice of the samples: good rows and bad records
      const auto& bad = bad_records();
      while (bad_next_ < bad.size() && bad[bad_next_].before + (int64_t)bad_next_ < in.row_begin) ++bad_next_;
      good_seen_ = in.row_begin - (int64_t)bad_next_;
      if (in.row_count >= 0) sql += fmt::format(" LIMIT {}", in.row_count);
      sql += fmt::format(" OFFSET {}", good_seen_);
    }
    try {
      stream_ = std::make_unique<duck::Stream>(db_, sql);
    } catch (const std::exception& e) {
      throw std::runtime_error(fmt::format("cannot read {}: {}", in.path, e.what()));
    }
  }

  bool next(Sample& out) override {
    if (!error_.empty() || left_ == 0) return false;
    const auto& bad = bad_records();
    const BadRecord* b =
        bad_next_ < bad.size() && bad[bad_next_].before <= good_seen_ ? &bad[bad_next_] : nullptr;
    if (!b) {
      try {
        while (!done_ && row_ >= stream_->rows()) {
          done_ = !stream_->next_chunk();
          row_ = 0;
        }
      } catch (const std::exception& e) {
        error_ = fmt::format("read failed after {} row(s): {}", index_, e.what());
        return false;
      }
      if (done_) {
        if (bad_next_ >= bad.size()) return false;
        b = &bad[bad_next_];  // bad records after the last good row
      }
    }
    if (left_ > 0) --left_;
    out = Sample{};
    out.index = index_++;
    if (b) {
      ++bad_next_;
      out.key = default_key(out.index);
      out.fail(Status::failed_to_read, b->reason);
      return true;
    }
    ++good_seen_;
    const size_t r = row_++;
    auto key = stream_->str(0, r);
    out.key = index_digits_ == 0 && key && !key->empty() ? std::string(*key) : default_key(out.index);
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
    if (auto kind = stream_->str(6, r); kind && out.caption && *kind != "VARCHAR")
      out.note(fmt::format("caption is a JSON {}; kept as its JSON text", ascii_lower(*kind)));
    if (out.caption && repair_utf8(*out.caption)) out.note("caption had invalid UTF-8, replaced with U+FFFD");
    if (!require_url_ && !out.has_image) {  // downloads fetch images; other commands need one here
      if (auto given = stream_->str(7, r); given && *given == "true")
        out.fail(Status::failed_to_decode, fmt::format("image column '{}' is not valid base64", base64_col_));
      else if (!image_problem_.empty())
        out.fail(Status::failed_to_download, "sample has no image: " + image_problem_);
    }
    return true;
  }

  const std::string& error() const override { return error_; }
  std::vector<std::pair<std::string, std::string>> meta_types() const override { return meta_types_; }
  ~TableReader() override { stream_.reset(); }

 private:
  const std::vector<BadRecord>& bad_records() const {
    static const std::vector<BadRecord> none;
    return text_ ? text_->bad : none;
  }
  std::string default_key(int64_t index) const {
    return capforge::default_key(shard_name_, stem_, index, index_digits_);
  }

  duck::Database db_;
  std::shared_ptr<const TextTable> text_;  // prescan of a CSV/TSV/JSONL, .gz too (null for parquet)
  std::string stem_, shard_name_;
  int index_digits_ = 0;
  bool require_url_ = false;
  std::string base64_col_;     // the image column holds base64 text
  std::string image_problem_;  // why the auto-detected image column was not used
  std::unique_ptr<duck::Stream> stream_;
  std::vector<std::pair<std::string, std::string>> meta_types_;
  size_t row_ = 0;
  bool done_ = false;  // the stream is exhausted
  int64_t index_ = 0;
  int64_t left_ = -1;      // samples still to deliver (-1: to the end)
  int64_t good_seen_ = 0;  // good rows consumed, the slice's OFFSET included
  size_t bad_next_ = 0;    // next bad record to deliver
  std::string error_;
};

}  // namespace

int64_t count_rows(const ShardInput& in) {
  if (in.format == InputFormat::txt) return count_txt_urls(in.path);
  auto t = prescan_if_text(in);
  duck::Database db(2, "1GB");
  auto rows = db.rows("SELECT count(*) FROM " + source_expr(in, {}, t.get()));
  int64_t good = rows.empty() || !rows[0][0] ? 0 : std::stoll(*rows[0][0]);
  return good + (t ? (int64_t)t->bad.size() : 0);
}

std::unique_ptr<SampleReader> open_table_reader(const ShardInput& in, const ReaderParams& params) {
  if (in.format == InputFormat::txt) return open_txt_reader(in, params);
  return std::make_unique<TableReader>(in, params);
}

}  // namespace capforge
