// capforge sql QUERY: one read-only DuckDB query over outputs (read_parquet('out/*.parquet') etc.),
// printed as JSON lines or, with --table, as an aligned text table safe for a terminal.
#include <fmt/format.h>

#include <algorithm>
#include <cstdio>
#include <optional>
#include <string_view>

#include "cli/common.h"
#include "io/duckdb_util.h"

namespace capforge::cli {

namespace {
struct SqlOptions {
  std::string query;
  bool table = false;
  size_t width = 40;
};

const char* kSqlHint =
    "`capforge sql` runs one read-only query: SELECT, WITH, VALUES or FROM ..., e.g. "
    "\"SELECT re_caption FROM read_parquet('out/*.parquet') LIMIT 5\"";

// Settings for the query's database, before it runs: no extension may be installed (community or
// known ones) or loaded on demand and, last, no setting may change. Reading local parquet/csv/json
// files still works: those readers are built in.
const char* kSqlLockdown =
    "SET allow_community_extensions = false; SET autoinstall_known_extensions = false; "
    "SET autoload_known_extensions = false; SET lock_configuration = true";

// Checks that `query` is exactly one statement (trailing ';' and comments are fine) and that DuckDB's
// binder types it as a read-only SELECT (SELECT, WITH, VALUES, FROM, ...); returns its column names.
// Throws UsageError for several statements, any other statement type (COPY, CREATE, INSERT, ATTACH,
// INSTALL, SET, ...) and queries that do not parse or bind. Nothing runs.
std::vector<std::string> check_query(duck::Database& db, const std::string& query) {
  duck::SingleStatement s;
  try {
    s = duck::prepare_single(db, query);
  } catch (const std::exception& e) {  // the query does not parse or names what is not there
    throw UsageError(e.what(), kSqlHint);
  }
  if (s.statements == 0) throw UsageError("empty query", kSqlHint);
  if (s.statements > 1)
    throw UsageError(fmt::format("only one query is supported, found {} statements", s.statements), kSqlHint);
  if (s.type != DUCKDB_STATEMENT_TYPE_SELECT)
    throw UsageError(fmt::format("{} statements are not supported: `capforge sql` runs one read-only query",
                                 duck::statement_type_name(s.type)),
                     kSqlHint);
  return s.names;
}

// A cell for a terminal: control characters (ESC, C1, DEL, ...) become spaces (line breaks, tabs) or "?",
// invalid UTF-8 bytes '?', and the text is cut to `width` characters, never inside one.
std::string table_cell(const std::string& v, size_t width) {
  std::string out;
  size_t chars = 0, i = 0;
  std::vector<size_t> ends;  // byte length after each character
  while (i < v.size()) {
    unsigned char ch = (unsigned char)v[i];
    size_t len = ch < 0x80 ? 1 : (ch >> 5) == 6 ? 2 : (ch >> 4) == 14 ? 3 : (ch >> 3) == 30 ? 4 : 0;
    bool valid = len > 0 && i + len <= v.size();
    for (size_t k = 1; valid && k < len; ++k) valid = ((unsigned char)v[i + k] >> 6) == 2;
    uint32_t cp = 0;
    if (valid && len == 2) cp = ((ch & 0x1f) << 6) | (v[i + 1] & 0x3f);
    if (!valid) {
      out += '?';
      i += 1;
    } else if (len == 1) {
      out += ch == '\n' || ch == '\t' || ch == '\r' ? ' ' : (ch < 0x20 || ch == 0x7f) ? '?' : (char)ch;
      i += 1;
    } else if (len == 2 && cp >= 0x80 && cp < 0xa0) {  // C1 controls (e.g. CSI)
      out += '?';
      i += 2;
    } else {
      out.append(v, i, len);
      i += len;
    }
    ++chars;
    ends.push_back(out.size());
  }
  if (chars > width) out = out.substr(0, ends[width - 4]) + "...";
  return out;
}

size_t display_chars(const std::string& s) {
  size_t n = 0;
  for (unsigned char ch : s) n += (ch >> 6) != 2;
  return n;
}

// Prints rows as an aligned text table, cells cut to `width` characters.
void print_table(const std::vector<std::string>& names, const std::vector<std::vector<std::string>>& rows,
                 size_t width) {
  std::vector<size_t> w(names.size());
  for (size_t c = 0; c < names.size(); ++c) w[c] = display_chars(table_cell(names[c], width));
  for (auto& r : rows)
    for (size_t c = 0; c < r.size() && c < w.size(); ++c)
      w[c] = std::max(w[c], display_chars(table_cell(r[c], width)));
  auto line = [&](const std::vector<std::string>& cells) {
    std::string out;
    for (size_t c = 0; c < cells.size() && c < w.size(); ++c) {
      std::string v = table_cell(cells[c], width);
      out += v + std::string(w[c] - display_chars(v) + 2, ' ');
    }
    while (!out.empty() && out.back() == ' ') out.pop_back();
    std::printf("%s\n", out.c_str());
  };
  line(names);
  for (auto& r : rows) line(r);
}

int run_sql(const SqlOptions& o) {
  duck::Database db;
  db.exec(kSqlLockdown);
  std::vector<std::string> names = check_query(db, o.query);
  // Every value as text: the checked query runs unchanged inside DuckDB's query() table function (its
  // text a string literal, so no comment or parenthesis in it can reach the wrapper), which parses it
  // again and accepts only a single SELECT.
  std::optional<duck::Stream> stream;
  try {
    stream.emplace(db, "SELECT CAST(COLUMNS(*) AS VARCHAR) FROM query(" + duck::quote_string(o.query) + ")");
  } catch (const std::exception& e) {  // e.g. PRAGMA show_tables: binds as a SELECT, is not one
    if (std::string_view(e.what()).starts_with("Parser Error")) throw UsageError(e.what(), kSqlHint);
    throw;
  }
  duck::Stream& text = *stream;
  if (o.table) {
    std::vector<std::vector<std::string>> rows;
    while (text.next_chunk())
      for (size_t r = 0; r < text.rows(); ++r) {
        auto& row = rows.emplace_back();
        for (size_t c = 0; c < text.columns(); ++c)
          row.push_back(std::string(text.str(c, r).value_or("NULL")));
      }
    print_table(names, rows, o.width);
    return 0;
  }
  while (text.next_chunk())
    for (size_t r = 0; r < text.rows(); ++r) {
      Json row = Json::object();
      for (size_t c = 0; c < text.columns() && c < names.size(); ++c) {
        auto v = text.str(c, r);
        row[names[c]] = v ? Json(std::string(*v)) : Json(nullptr);
      }
      std::printf("%s\n", row.dump(-1, ' ', false, Json::error_handler_t::replace).c_str());
    }
  return 0;
}
}  // namespace

void add_sql(CLI::App& app, Action& action) {
  auto o = std::make_shared<SqlOptions>();
  auto* cmd =
      app.add_subcommand("sql",
                         "Run one read-only DuckDB query (SELECT/WITH/VALUES/FROM, e.g. over "
                         "read_parquet('out/*.parquet')); prints JSON lines with every value as text");
  cmd->add_option("query", o->query, "SQL query (a trailing ';' is ignored)")->required();
  cmd->add_flag("--table", o->table,
                "print an aligned table instead of JSON lines (control characters shown as ?)");
  cmd->add_option("--width", o->width, "--table: longest cell shown, in characters")
      ->capture_default_str()
      ->check(int_range(4, 1 << 20));
  cmd->callback([o, &action] { action = [o] { return run_sql(*o); }; });
}

}  // namespace capforge::cli
