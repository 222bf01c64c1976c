// A prepared SQLite statement with typed binds and columns. Every error throws
// std::runtime_error prefixed with `what` (e.g. "job store: database is locked").
#pragma once

#include <sqlite3.h>

#include <fmt/format.h>

#include <optional>
#include <stdexcept>
#include <string>

namespace capforge {

class Stmt {
 public:
  Stmt(sqlite3* db, const char* sql, const char* what = "job store") : db_(db), what_(what) {
    if (sqlite3_prepare_v2(db, sql, -1, &st_, nullptr) != SQLITE_OK)
      throw std::runtime_error(fmt::format("{}: {} (in: {})", what_, sqlite3_errmsg(db), sql));
  }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;
  ~Stmt() { sqlite3_finalize(st_); }
  Stmt& bind(int i, const std::string& v) {
    return check(sqlite3_bind_text(st_, i, v.c_str(), (int)v.size(), SQLITE_TRANSIENT));
  }
  Stmt& bind(int i, int64_t v) { return check(sqlite3_bind_int64(st_, i, v)); }
  Stmt& bind(int i, int v) { return bind(i, (int64_t)v); }
  Stmt& bind(int i, double v) { return check(sqlite3_bind_double(st_, i, v)); }
  Stmt& bind_blob(int i, const std::string& v) {
    return check(sqlite3_bind_blob(st_, i, v.data(), (int)v.size(), SQLITE_TRANSIENT));
  }
  Stmt& bind_null(int i) { return check(sqlite3_bind_null(st_, i)); }
  void reset() {
    sqlite3_reset(st_);
    sqlite3_clear_bindings(st_);
  }
  // True while a row is available.
  bool step() {
    int rc = sqlite3_step(st_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    throw std::runtime_error(fmt::format("{}: {}", what_, sqlite3_errmsg(db_)));
  }
  int64_t i64(int c) { return sqlite3_column_int64(st_, c); }
  double dbl(int c) { return sqlite3_column_double(st_, c); }
  bool is_null(int c) { return sqlite3_column_type(st_, c) == SQLITE_NULL; }
  std::string text(int c) {
    auto* p = sqlite3_column_text(st_, c);
    return p ? std::string(reinterpret_cast<const char*>(p), (size_t)sqlite3_column_bytes(st_, c)) : "";
  }
  std::string blob(int c) {
    auto* p = static_cast<const char*>(sqlite3_column_blob(st_, c));
    return p ? std::string(p, (size_t)sqlite3_column_bytes(st_, c)) : "";
  }

 private:
  Stmt& check(int rc) {
    if (rc != SQLITE_OK) throw std::runtime_error(fmt::format("{}: {}", what_, sqlite3_errmsg(db_)));
    return *this;
  }
  sqlite3* db_;
  const char* what_;
  sqlite3_stmt* st_ = nullptr;
};

}  // namespace capforge
