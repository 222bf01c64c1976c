// The embedded job store: one SQLite file (WAL) shared by any number of local worker processes.
#include <signal.h>
#include <sqlite3.h>

#include <fmt/format.h>

#include <cerrno>
#include <chrono>
#include <stdexcept>
#include <thread>

#include "capforge/jobstore.h"
#include "coord/stores.h"
#include "core/sqlite_stmt.h"

namespace capforge {

namespace {

double now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

constexpr const char* kCols =
    "id, name, input, format, state, attempts, last_error, owner, lease_until, samples";

ShardRecord read_record(Stmt& s) {
  ShardRecord r;
  r.id = s.i64(0);
  r.input.name = s.text(1);
  r.input.path = s.text(2);
  r.input.format = input_format_from_name(s.text(3));
  r.state = shard_state_from_name(s.text(4));
  r.attempts = (int)s.i64(5);
  r.last_error = s.text(6);
  r.owner = s.text(7);
  r.lease_until = s.dbl(8);
  r.samples = s.i64(9);
  return r;
}

class SqliteStore : public JobStore {
 public:
  explicit SqliteStore(const std::string& path) {
    if (sqlite3_open_v2(path.c_str(), &db_,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
                        nullptr) != SQLITE_OK) {
      std::string msg = db_ ? sqlite3_errmsg(db_) : "out of memory";
      sqlite3_close(db_);
      throw std::runtime_error(fmt::format("cannot open job store {}: {}", path, msg));
    }
    sqlite3_busy_timeout(db_, 30000);
    // Switching to WAL and creating the schema can meet SQLITE_BUSY without the busy handler
    // when several processes open a new store at once: retry those.
    exec_retrying("PRAGMA journal_mode=WAL");
    exec("PRAGMA synchronous=FULL");
    exec_retrying(
        "CREATE TABLE IF NOT EXISTS shards ("
        " id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL UNIQUE, input TEXT NOT NULL,"
        " format TEXT NOT NULL, state TEXT NOT NULL DEFAULT 'pending', attempts INTEGER NOT NULL DEFAULT 0,"
        " last_error TEXT, owner TEXT, lease_until REAL NOT NULL DEFAULT 0,"
        " samples INTEGER NOT NULL DEFAULT 0, updated_at REAL NOT NULL)");
    exec_retrying("CREATE INDEX IF NOT EXISTS shards_state ON shards(state, id)");
    exec_retrying("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)");
  }
  ~SqliteStore() override { sqlite3_close(db_); }

  void add_shards(const std::vector<ShardInput>& inputs) override {
    Tx tx(*this);
    Stmt s(db_, "INSERT OR IGNORE INTO shards(name, input, format, updated_at) VALUES (?, ?, ?, ?)");
    for (auto& in : inputs) {
      s.bind(1, in.name).bind(2, in.path).bind(3, std::string(format_name(in.format))).bind(4, now()).step();
      s.reset();
    }
    tx.commit();
  }

  std::optional<ShardRecord> claim(const std::string& owner, double lease_seconds) override {
    Tx tx(*this);
    double t = now();
    {
      int max = kDefaultMaxAttempts;
      Stmt m(db_, "SELECT value FROM meta WHERE key = 'max_attempts'");
      if (m.step()) max = std::max(1, std::atoi(m.text(0).c_str()));
      Stmt f(
          db_,
          "UPDATE shards SET state = 'failed', updated_at = ?1, last_error = 'lease expired on attempt ' || "
          "attempts || ' of ' || ?2 || ' (the worker died or hung)' WHERE state = 'running' AND attempts >= "
          "?2 "
          "AND lease_until < ?1");
      f.bind(1, t).bind(2, (int64_t)max).step();
    }
    std::optional<int64_t> id;
    {
      Stmt s(db_,
             "SELECT id FROM shards WHERE state = 'pending' OR (state = 'running' AND lease_until < ?)"
             " ORDER BY id LIMIT 1");
      s.bind(1, t);
      if (s.step()) id = s.i64(0);
    }
    if (!id) {
      Stmt s(db_, "SELECT id, owner FROM shards WHERE state = 'running' ORDER BY id");
      while (!id && s.step())
        if (owner_is_dead_local(s.text(1))) id = s.i64(0);
    }
    if (!id) {
      tx.commit();  // keeps the exhausted shards failed
      return std::nullopt;
    }
    Stmt u(db_,
           "UPDATE shards SET state = 'running', owner = ?, lease_until = ?, attempts = attempts + 1,"
           " updated_at = ? WHERE id = ?");
    u.bind(1, owner).bind(2, t + lease_seconds).bind(3, t).bind(4, *id).step();
    auto rec = get(*id);
    tx.commit();
    return rec;
  }

  bool heartbeat(int64_t id, const std::string& owner, double lease_seconds) override {
    Stmt u(
        db_,
        "UPDATE shards SET lease_until = ?, updated_at = ? WHERE id = ? AND owner = ? AND state = 'running'");
    u.bind(1, now() + lease_seconds).bind(2, now()).bind(3, id).bind(4, owner).step();
    return sqlite3_changes(db_) == 1;
  }

  bool complete(int64_t id, const std::string& owner, int64_t samples,
                const std::function<void()>& publish) override {
    Tx tx(*this);  // the write lock: no other worker can claim, complete or publish meanwhile
    {
      Stmt s(db_, "SELECT state, owner FROM shards WHERE id = ?");
      s.bind(1, id);
      if (!s.step() || s.text(0) != "running" || s.text(1) != owner) return false;
    }
    if (publish) publish();
    Stmt u(db_,
           "UPDATE shards SET state = 'done', samples = ?, last_error = NULL, lease_until = 0, updated_at = ?"
           " WHERE id = ? AND owner = ? AND state = 'running'");
    u.bind(1, samples).bind(2, now()).bind(3, id).bind(4, owner).step();
    tx.commit();
    return true;
  }

  void fail(int64_t id, const std::string& owner, const std::string& error) override {
    Stmt u(db_,
           "UPDATE shards SET state = 'failed', last_error = ?, lease_until = 0, updated_at = ?"
           " WHERE id = ? AND owner = ? AND state = 'running'");
    u.bind(1, error).bind(2, now()).bind(3, id).bind(4, owner).step();
  }

  void release(int64_t id, const std::string& owner) override {
    Stmt u(
        db_,
        "UPDATE shards SET state = 'pending', owner = NULL, lease_until = 0, attempts = MAX(attempts - 1, 0),"
        " updated_at = ? WHERE id = ? AND owner = ? AND state = 'running'");
    u.bind(1, now()).bind(2, id).bind(3, owner).step();
  }

  int reset_failed() override {
    Stmt u(db_,
           "UPDATE shards SET state = 'pending', owner = NULL, attempts = 0, updated_at = ? WHERE state = "
           "'failed'");
    u.bind(1, now()).step();
    return sqlite3_changes(db_);
  }

  std::vector<ShardRecord> list() override {
    std::vector<ShardRecord> out;
    Stmt s(db_, fmt::format("SELECT {} FROM shards ORDER BY id", kCols).c_str());
    while (s.step()) out.push_back(read_record(s));
    return out;
  }

  std::optional<std::string> get_meta(const std::string& key) override {
    Stmt s(db_, "SELECT value FROM meta WHERE key = ?");
    s.bind(1, key);
    if (s.step()) return s.text(0);
    return std::nullopt;
  }

  void set_meta(const std::string& key, const std::string& value) override {
    Stmt s(
        db_,
        "INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value");
    s.bind(1, key).bind(2, value).step();
  }

 private:
  // BEGIN IMMEDIATE: takes the write lock up front, so concurrent claimers serialise.
  class Tx {
   public:
    explicit Tx(SqliteStore& s) : s_(s) { s_.exec("BEGIN IMMEDIATE"); }
    ~Tx() {
      if (!done_) sqlite3_exec(s_.db_, "ROLLBACK", nullptr, nullptr, nullptr);
    }
    void commit() {
      s_.exec("COMMIT");
      done_ = true;
    }

   private:
    SqliteStore& s_;
    bool done_ = false;
  };

  std::optional<ShardRecord> get(int64_t id) {
    Stmt s(db_, fmt::format("SELECT {} FROM shards WHERE id = ?", kCols).c_str());
    s.bind(1, id);
    if (s.step()) return read_record(s);
    return std::nullopt;
  }

  void exec_retrying(const char* sql) {
    for (int attempt = 0;; ++attempt) {
      int rc = sqlite3_exec(db_, sql, nullptr, nullptr, nullptr);
      if (rc == SQLITE_OK) return;
      if ((rc != SQLITE_BUSY && rc != SQLITE_LOCKED) || attempt >= 300) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    exec(sql);  // reports the error
  }

  void exec(const char* sql) {
    char* err = nullptr;
    if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
      std::string msg = err ? err : "unknown error";
      sqlite3_free(err);
      throw std::runtime_error(fmt::format("job store: {}", msg));
    }
  }

  sqlite3* db_ = nullptr;
};

}  // namespace

std::unique_ptr<JobStore> open_sqlite_store(const std::string& path) {
  return std::make_unique<SqliteStore>(path);
}

}  // namespace capforge
