// Thin RAII over DuckDB's C API: one database + connection, SQL helpers, streaming results.
#pragma once

#include <duckdb.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace capforge::duck {

// DuckDB's message on one line, without its multi-line hints.
std::string short_error(const char* msg);
std::string quote_ident(std::string_view name);  // "name" with "" escaping
std::string quote_string(std::string_view s);    // 'text' with '' escaping

class Database {
 public:
  // An in-memory database. `threads` 0 = DuckDB's default; memory_limit like "1GB" or empty.
  explicit Database(int threads = 0, const std::string& memory_limit = "");
  ~Database();
  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;

  duckdb_connection conn() const { return con_; }
  // Runs a statement; throws std::runtime_error with DuckDB's message.
  void exec(const std::string& sql);
  // Runs a query and returns every cell as text (NULL -> nullopt). For small results only.
  std::vector<std::vector<std::optional<std::string>>> rows(const std::string& sql);

 private:
  duckdb_database db_ = nullptr;
  duckdb_connection con_ = nullptr;
};

// A streamed query result read one chunk at a time.
class Stream {
 public:
  Stream(Database& db, const std::string& sql);  // throws with DuckDB's message
  ~Stream();
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;

  // Advances to the next chunk; false at the end. Throws if the query failed mid-way.
  bool next_chunk();
  size_t rows() const { return rows_; }
  size_t columns() const { return vecs_.size(); }
  // Cell access for VARCHAR/BLOB columns of the current chunk.
  std::optional<std::string_view> str(size_t col, size_t row) const;
  // Cell of a BIGINT/UBIGINT column of the current chunk (not NULL).
  uint64_t u64(size_t col, size_t row) const {
    return static_cast<const uint64_t*>(duckdb_vector_get_data(vecs_[col]))[row];
  }

 private:
  void release();
  duckdb_prepared_statement stmt_ = nullptr;
  duckdb_pending_result pending_ = nullptr;
  duckdb_result result_{};
  bool have_result_ = false;
  duckdb_data_chunk chunk_ = nullptr;
  size_t rows_ = 0;
  std::vector<duckdb_vector> vecs_;
  std::vector<uint64_t*> validity_;
};

}  // namespace capforge::duck

namespace capforge::duck {

// What DuckDB's parser and binder make of one query text (see prepare_single).
struct SingleStatement {
  size_t statements = 0;                                       // statements in the text
  duckdb_statement_type type = DUCKDB_STATEMENT_TYPE_INVALID;  // of the only one, when statements == 1
  std::vector<std::string> names;                              // its result columns
};

// The upper-case name of a statement type, e.g. "COPY", "CREATE", "ATTACH".
std::string statement_type_name(duckdb_statement_type type);

// Splits `sql` with DuckDB's own parser (comments, quotes and $$ strings as DuckDB reads them) and,
// when it holds exactly one statement, prepares (binds) it without running it to learn its type and
// result columns. Throws std::runtime_error with DuckDB's message when the text does not parse or the
// statement does not bind.
SingleStatement prepare_single(Database& db, const std::string& sql);

}  // namespace capforge::duck
