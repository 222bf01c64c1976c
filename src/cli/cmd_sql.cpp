// capforge sql QUERY: DuckDB SQL over outputs (read_parquet('out/*.parquet') etc.), JSON lines out.
#include <cstdio>

#include "cli/common.h"
#include "io/duckdb_util.h"

namespace capforge::cli {

namespace {
struct SqlOptions {
  std::string query;
};

int run_sql(const SqlOptions& o) {
  duck::Database db;
  std::vector<std::string> names;
  for (auto& r : db.rows("SELECT column_name FROM (DESCRIBE (" + o.query + "))")) names.push_back(r[0].value_or(""));
  duck::Stream text(db, "SELECT CAST(COLUMNS(*) AS VARCHAR) FROM (" + o.query + ")");
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
  auto* cmd = app.add_subcommand("sql", "Run a DuckDB query (e.g. over read_parquet('out/*.parquet')); prints JSON "
                                        "lines with every value as text");
  cmd->add_option("query", o->query, "SQL query")->required();
  cmd->callback([o, &action] { action = [o] { return run_sql(*o); }; });
}

}  // namespace capforge::cli
