// capforge sql QUERY: DuckDB SQL over outputs (read_parquet('out/*.parquet') etc.), JSON lines out.
#include <algorithm>
#include <cstdio>

#include "cli/common.h"
#include "io/duckdb_util.h"

namespace capforge::cli {

namespace {
struct SqlOptions {
  std::string query;
  bool table = false;
  size_t width = 40;
};

// Prints rows as an aligned text table, cutting cells to `width` display bytes.
void print_table(const std::vector<std::string>& names, const std::vector<std::vector<std::string>>& rows,
                 size_t width) {
  auto cut = [&](std::string v) {
    for (auto& c : v)
      if (c == '\n' || c == '\t') c = ' ';
    if (v.size() > width) v = v.substr(0, width - 3) + "...";
    return v;
  };
  std::vector<size_t> w(names.size());
  for (size_t c = 0; c < names.size(); ++c) w[c] = cut(names[c]).size();
  for (auto& r : rows)
    for (size_t c = 0; c < r.size(); ++c) w[c] = std::max(w[c], cut(r[c]).size());
  auto line = [&](const std::vector<std::string>& cells) {
    std::string out;
    for (size_t c = 0; c < cells.size(); ++c) {
      std::string v = cut(cells[c]);
      out += v + std::string(w[c] - v.size() + 2, ' ');
    }
    while (!out.empty() && out.back() == ' ') out.pop_back();
    std::printf("%s\n", out.c_str());
  };
  line(names);
  for (auto& r : rows) line(r);
}

int run_sql(const SqlOptions& o) {
  duck::Database db;
  std::vector<std::string> names;
  for (auto& r : db.rows("SELECT column_name FROM (DESCRIBE (" + o.query + "))"))
    names.push_back(r[0].value_or(""));
  duck::Stream text(db, "SELECT CAST(COLUMNS(*) AS VARCHAR) FROM (" + o.query + ")");
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
  auto* cmd = app.add_subcommand("sql",
                                 "Run a DuckDB query (e.g. over read_parquet('out/*.parquet')); prints JSON "
                                 "lines with every value as text");
  cmd->add_option("query", o->query, "SQL query")->required();
  cmd->add_flag("--table", o->table, "print an aligned table instead of JSON lines");
  cmd->add_option("--width", o->width, "--table: longest cell shown")->capture_default_str();
  cmd->callback([o, &action] { action = [o] { return run_sql(*o); }; });
}

}  // namespace capforge::cli
