#include "io/duckdb_util.h"

#include <stdexcept>

namespace capforge::duck {

std::string short_error(const char* msg) {
  std::string m = msg ? msg : "unknown error";
  if (auto cut = m.find("\n\n"); cut != std::string::npos) m.resize(cut);  // drop DuckDB's hints
  for (auto& c : m)
    if (c == '\n') c = ' ';
  if (m.size() > 400) m = m.substr(0, 397) + "...";
  return m;
}

std::string quote_ident(std::string_view name) {
  std::string out = "\"";
  for (char c : name) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

std::string quote_string(std::string_view s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') out += '\'';
    out += c;
  }
  return out + "'";
}

Database::Database(int threads, const std::string& memory_limit) {
  duckdb_config config = nullptr;
  duckdb_create_config(&config);
  if (threads > 0) duckdb_set_config(config, "threads", std::to_string(threads).c_str());
  if (!memory_limit.empty()) duckdb_set_config(config, "memory_limit", memory_limit.c_str());
  duckdb_set_config(config, "autoinstall_known_extensions", "false");
  duckdb_set_config(config, "autoload_known_extensions", "true");
  char* err = nullptr;
  duckdb_state st = duckdb_open_ext(nullptr, &db_, config, &err);
  duckdb_destroy_config(&config);
  if (st != DuckDBSuccess) {
    std::string msg = err ? err : "unknown error";
    duckdb_free(err);
    throw std::runtime_error("cannot open DuckDB: " + msg);
  }
  if (duckdb_connect(db_, &con_) != DuckDBSuccess) {
    duckdb_close(&db_);
    throw std::runtime_error("cannot connect to DuckDB");
  }
}

Database::~Database() {
  if (con_) duckdb_disconnect(&con_);
  if (db_) duckdb_close(&db_);
}

void Database::exec(const std::string& sql) {
  duckdb_result res;
  if (duckdb_query(con_, sql.c_str(), &res) != DuckDBSuccess) {
    std::string msg = short_error(duckdb_result_error(&res));
    duckdb_destroy_result(&res);
    throw std::runtime_error(msg);
  }
  duckdb_destroy_result(&res);
}

std::vector<std::vector<std::optional<std::string>>> Database::rows(const std::string& sql) {
  Stream st(*this, "SELECT CAST(COLUMNS(*) AS VARCHAR) FROM (" + sql + ")");
  std::vector<std::vector<std::optional<std::string>>> out;
  while (st.next_chunk())
    for (size_t r = 0; r < st.rows(); ++r) {
      auto& row = out.emplace_back(st.columns());
      for (size_t c = 0; c < row.size(); ++c)
        if (auto v = st.str(c, r)) row[c] = std::string(*v);
    }
  return out;
}

Stream::Stream(Database& db, const std::string& sql) {
  auto fail = [&](const char* msg) {
    std::string m = short_error(msg);
    release();
    throw std::runtime_error(m);
  };
  if (duckdb_prepare(db.conn(), sql.c_str(), &stmt_) != DuckDBSuccess) fail(duckdb_prepare_error(stmt_));
  if (duckdb_pending_prepared_streaming(stmt_, &pending_) != DuckDBSuccess)
    fail(duckdb_pending_error(pending_));
  have_result_ = true;
  if (duckdb_execute_pending(pending_, &result_) != DuckDBSuccess) fail(duckdb_result_error(&result_));
}

Stream::~Stream() { release(); }

void Stream::release() {
  if (chunk_) duckdb_destroy_data_chunk(&chunk_);
  if (have_result_) duckdb_destroy_result(&result_);
  if (pending_) duckdb_destroy_pending(&pending_);
  if (stmt_) duckdb_destroy_prepare(&stmt_);
  chunk_ = nullptr;
  have_result_ = false;
  pending_ = nullptr;
  stmt_ = nullptr;
}

bool Stream::next_chunk() {
  if (chunk_) duckdb_destroy_data_chunk(&chunk_);
  rows_ = 0;
  chunk_ = duckdb_fetch_chunk(result_);
  if (!chunk_) {
    if (const char* e = duckdb_result_error(&result_)) throw std::runtime_error(short_error(e));
    return false;
  }
  rows_ = duckdb_data_chunk_get_size(chunk_);
  idx_t ncol = duckdb_data_chunk_get_column_count(chunk_);
  vecs_.resize(ncol);
  validity_.resize(ncol);
  for (idx_t c = 0; c < ncol; ++c) {
    vecs_[c] = duckdb_data_chunk_get_vector(chunk_, c);
    validity_[c] = duckdb_vector_get_validity(vecs_[c]);
  }
  return true;
}

std::optional<std::string_view> Stream::str(size_t col, size_t row) const {
  if (validity_[col] && !duckdb_validity_row_is_valid(validity_[col], row)) return std::nullopt;
  auto* data = static_cast<duckdb_string_t*>(duckdb_vector_get_data(vecs_[col]));
  duckdb_string_t& s = data[row];
  return std::string_view(duckdb_string_t_data(&s), duckdb_string_t_length(s));
}

}  // namespace capforge::duck

namespace capforge::duck {

std::string statement_type_name(duckdb_statement_type type) {
  switch (type) {
    case DUCKDB_STATEMENT_TYPE_SELECT:
      return "SELECT";
    case DUCKDB_STATEMENT_TYPE_INSERT:
      return "INSERT";
    case DUCKDB_STATEMENT_TYPE_UPDATE:
      return "UPDATE";
    case DUCKDB_STATEMENT_TYPE_EXPLAIN:
      return "EXPLAIN";
    case DUCKDB_STATEMENT_TYPE_DELETE:
      return "DELETE";
    case DUCKDB_STATEMENT_TYPE_PREPARE:
      return "PREPARE";
    case DUCKDB_STATEMENT_TYPE_CREATE:
      return "CREATE";
    case DUCKDB_STATEMENT_TYPE_EXECUTE:
      return "EXECUTE";
    case DUCKDB_STATEMENT_TYPE_ALTER:
      return "ALTER";
    case DUCKDB_STATEMENT_TYPE_TRANSACTION:
      return "TRANSACTION";
    case DUCKDB_STATEMENT_TYPE_COPY:
      return "COPY";
    case DUCKDB_STATEMENT_TYPE_ANALYZE:
      return "ANALYZE";
    case DUCKDB_STATEMENT_TYPE_VARIABLE_SET:
      return "SET VARIABLE";
    case DUCKDB_STATEMENT_TYPE_CREATE_FUNC:
      return "CREATE FUNCTION";
    case DUCKDB_STATEMENT_TYPE_DROP:
      return "DROP";
    case DUCKDB_STATEMENT_TYPE_EXPORT:
      return "EXPORT";
    case DUCKDB_STATEMENT_TYPE_PRAGMA:
      return "PRAGMA";
    case DUCKDB_STATEMENT_TYPE_VACUUM:
      return "VACUUM";
    case DUCKDB_STATEMENT_TYPE_CALL:
      return "CALL";
    case DUCKDB_STATEMENT_TYPE_SET:
      return "SET";
    case DUCKDB_STATEMENT_TYPE_LOAD:
      return "LOAD/INSTALL";
    case DUCKDB_STATEMENT_TYPE_RELATION:
      return "RELATION";
    case DUCKDB_STATEMENT_TYPE_EXTENSION:
      return "EXTENSION";
    case DUCKDB_STATEMENT_TYPE_LOGICAL_PLAN:
      return "LOGICAL PLAN";
    case DUCKDB_STATEMENT_TYPE_ATTACH:
      return "ATTACH";
    case DUCKDB_STATEMENT_TYPE_DETACH:
      return "DETACH";
    case DUCKDB_STATEMENT_TYPE_MULTI:
      return "MULTI";
    default:
      return "unknown";
  }
}

SingleStatement prepare_single(Database& db, const std::string& sql) {
  SingleStatement out;
  duckdb_extracted_statements extracted = nullptr;
  out.statements = duckdb_extract_statements(db.conn(), sql.c_str(), &extracted);
  if (out.statements == 0) {
    const char* err = extracted ? duckdb_extract_statements_error(extracted) : nullptr;
    std::string msg = err ? short_error(err) : "";
    duckdb_destroy_extracted(&extracted);
    if (!msg.empty()) throw std::runtime_error(msg);
    return out;
  }
  if (out.statements != 1) {
    duckdb_destroy_extracted(&extracted);
    return out;
  }
  duckdb_prepared_statement stmt = nullptr;
  duckdb_state st = duckdb_prepare_extracted_statement(db.conn(), extracted, 0, &stmt);
  duckdb_destroy_extracted(&extracted);
  if (st != DuckDBSuccess) {
    std::string msg = short_error(duckdb_prepare_error(stmt));
    duckdb_destroy_prepare(&stmt);
    throw std::runtime_error(msg);
  }
  out.type = duckdb_prepared_statement_type(stmt);
  if (out.type == DUCKDB_STATEMENT_TYPE_SELECT) {
    idx_t n = duckdb_prepared_statement_column_count(stmt);
    for (idx_t c = 0; c < n; ++c) {
      const char* name = duckdb_prepared_statement_column_name(stmt, c);
      out.names.push_back(name ? name : "");
      duckdb_free((void*)name);
    }
  }
  duckdb_destroy_prepare(&stmt);
  return out;
}

}  // namespace capforge::duck
