// DuckDB access for the dedup pass: typed streaming reads and appends.
#include <cstring>
#include <stdexcept>

#include "curate/dedup_internal.h"

namespace capforge::curate::detail {

Appender::Appender(duck::Database& db, const std::string& table) {
  if (duckdb_appender_create(db.conn(), nullptr, table.c_str(), &app_) != DuckDBSuccess) {
    std::string m = duck::short_error(duckdb_appender_error(app_));
    duckdb_appender_destroy(&app_);
    throw std::runtime_error(m);
  }
}

Appender::~Appender() {
  if (app_) duckdb_appender_destroy(&app_);
}

void Appender::check(duckdb_state st) {
  if (st != DuckDBSuccess) throw std::runtime_error(duck::short_error(duckdb_appender_error(app_)));
}
void Appender::u64(uint64_t v) { check(duckdb_append_int64(app_, (int64_t)v)); }
void Appender::i64(int64_t v) { check(duckdb_append_int64(app_, v)); }
void Appender::str(std::string_view v) { check(duckdb_append_varchar_length(app_, v.data(), v.size())); }
void Appender::f64(double v) { check(duckdb_append_double(app_, v)); }
void Appender::end_row() { check(duckdb_appender_end_row(app_)); }
void Appender::flush() { check(duckdb_appender_flush(app_)); }

std::string sql_list(const std::vector<std::string>& paths) {
  std::string out = "[";
  for (size_t i = 0; i < paths.size(); ++i) out += (i ? ", " : "") + duck::quote_string(paths[i]);
  return out + "]";
}

}  // namespace capforge::curate::detail
