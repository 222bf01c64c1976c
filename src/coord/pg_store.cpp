// The fleet job store: PostgreSQL through libpq. Claims use FOR UPDATE SKIP LOCKED so any number
// of workers on any number of hosts lease shards without waiting on each other; lease times come
// from the database's clock, so workers' clocks may disagree. A lost connection (a server restart)
// is re-established and the statement retried for up to a minute.
#include <libpq-fe.h>

#include <fmt/format.h>

#include <chrono>
#include <stdexcept>
#include <thread>

#include "capforge/jobstore.h"
#include "coord/stores.h"

namespace capforge {

namespace {

constexpr const char* kCols =
    "id, name, input, format, state, attempts, COALESCE(last_error, ''), COALESCE(owner, ''), lease_until, "
    "samples";
constexpr const char* kNow = "extract(epoch from clock_timestamp())";

// A query result; throws on errors with the server's message.
class Result {
 public:
  explicit Result(PGresult* r) : r_(r) {}
  Result(Result&& o) noexcept : r_(o.r_) { o.r_ = nullptr; }
  ~Result() { PQclear(r_); }
  int rows() const { return PQntuples(r_); }
  std::string text(int row, int col) const {
    return PQgetisnull(r_, row, col) ? "" : PQgetvalue(r_, row, col);
  }
  int64_t i64(int row, int col) const { return std::stoll(text(row, col).empty() ? "0" : text(row, col)); }
  double dbl(int row, int col) const { return std::stod(text(row, col).empty() ? "0" : text(row, col)); }
  int64_t affected() const { return std::stoll(PQcmdTuples(r_)[0] ? PQcmdTuples(r_) : "0"); }
  bool ok() const {
    auto s = PQresultStatus(r_);
    return s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK;
  }
  std::string error() const {
    std::string m = r_ ? PQresultErrorMessage(r_) : "no result";
    while (!m.empty() && (m.back() == '\n' || m.back() == ' ')) m.pop_back();
    return m;
  }

 private:
  PGresult* r_;
};

// A connection error (retry after reconnecting) vs. any other error (report).
struct ConnectionLost : std::runtime_error {
  using std::runtime_error::runtime_error;
};

std::string redact(const std::string& url) {  // postgresql://user:secret@host -> user:***@host
  auto scheme = url.find("://"), at = url.find('@');
  if (scheme == std::string::npos || at == std::string::npos) return url;
  auto colon = url.find(':', scheme + 3);
  if (colon == std::string::npos || colon > at) return url;
  return url.substr(0, colon + 1) + "***" + url.substr(at);
}

ShardRecord read_record(const Result& r, int row) {
  ShardRecord s;
  s.id = r.i64(row, 0);
  s.input.name = r.text(row, 1);
  s.input.path = r.text(row, 2);
  s.input.format = input_format_from_name(r.text(row, 3));
  s.state = shard_state_from_name(r.text(row, 4));
  s.attempts = (int)r.i64(row, 5);
  s.last_error = r.text(row, 6);
  s.owner = r.text(row, 7);
  s.lease_until = r.dbl(row, 8);
  s.samples = r.i64(row, 9);
  return s;
}

class PgStore : public JobStore {
 public:
  explicit PgStore(std::string url) : url_(std::move(url)) {
    connect();
    retrying([&] {
      exec("BEGIN");
      exec("SELECT pg_advisory_xact_lock(7263541)");  // concurrent first opens create the schema once
      exec(
          "CREATE TABLE IF NOT EXISTS capforge_shards ("
          " id BIGSERIAL PRIMARY KEY, name TEXT NOT NULL UNIQUE, input TEXT NOT NULL, format TEXT NOT NULL,"
          " state TEXT NOT NULL DEFAULT 'pending', attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT,"
          " owner TEXT, lease_until DOUBLE PRECISION NOT NULL DEFAULT 0, samples BIGINT NOT NULL DEFAULT 0,"
          " updated_at DOUBLE PRECISION NOT NULL DEFAULT 0)");
      exec("CREATE INDEX IF NOT EXISTS capforge_shards_state ON capforge_shards(state, id)");
      exec("CREATE TABLE IF NOT EXISTS capforge_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)");
      exec("COMMIT");
      return 0;
    });
  }
  ~PgStore() override { PQfinish(conn_); }

  void add_shards(const std::vector<ShardInput>& inputs) override {
    retrying([&] {
      exec("BEGIN");
      for (auto& in : inputs)
        exec(fmt::format(
                 "INSERT INTO capforge_shards(name, input, format, updated_at) VALUES ($1, $2, $3, {}) "
                 "ON CONFLICT (name) DO NOTHING",
                 kNow),
             {in.name, in.path, format_name(in.format)});
      exec("COMMIT");
      return 0;
    });
  }

  std::optional<ShardRecord> claim(const std::string& owner, double lease_seconds) override {
    return retrying([&]() -> std::optional<ShardRecord> {
      exec_fail_exhausted(max_attempts());
      auto r = exec(
          fmt::format("WITH c AS (SELECT id FROM capforge_shards WHERE state = 'pending' OR "
                      "(state = 'running' AND lease_until < {0}) ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED) "
                      "UPDATE capforge_shards s SET state = 'running', owner = $1, lease_until = {0} + $2, "
                      "attempts = s.attempts + 1, updated_at = {0} FROM c WHERE s.id = c.id RETURNING {1}",
                      kNow, prefixed("s.")),
          {owner, std::to_string(lease_seconds)});
      if (r.rows() == 1) return read_record(r, 0);
      // a worker of this host that died without releasing: its pid is gone
      auto running = exec("SELECT id, owner FROM capforge_shards WHERE state = 'running' ORDER BY id");
      for (int i = 0; i < running.rows(); ++i) {
        if (!owner_is_dead_local(running.text(i, 1))) continue;
        auto t = exec(fmt::format("UPDATE capforge_shards SET owner = $1, lease_until = {0} + $2, "
                                  "attempts = attempts + 1, updated_at = {0} WHERE id = $3 AND owner = $4 "
                                  "AND state = 'running' RETURNING {1}",
                                  kNow, kCols),
                      {owner, std::to_string(lease_seconds), running.text(i, 0), running.text(i, 1)});
        if (t.rows() == 1) return read_record(t, 0);
      }
      return std::nullopt;
    });
  }

  bool heartbeat(int64_t id, const std::string& owner, double lease_seconds) override {
    return retrying([&] {
      return exec(fmt::format("UPDATE capforge_shards SET lease_until = {0} + $1, updated_at = {0} "
                              "WHERE id = $2 AND owner = $3 AND state = 'running'",
                              kNow),
                  {std::to_string(lease_seconds), std::to_string(id), owner})
                 .affected() == 1;
    });
  }

  bool complete(int64_t id, const std::string& owner, int64_t samples,
                const std::function<void()>& publish) override {
    return retrying([&] {
      exec("BEGIN");
      auto r =
          exec("SELECT state, owner FROM capforge_shards WHERE id = $1 FOR UPDATE", {std::to_string(id)});
      if (r.rows() != 1 || r.text(0, 1) != owner || r.text(0, 0) != "running") {
        exec("ROLLBACK");
        // done by us already: a retry after the connection dropped on COMMIT's reply
        return r.rows() == 1 && r.text(0, 1) == owner && r.text(0, 0) == "done";
      }
      try {
        if (publish) publish();  // the row is locked and ours: no one else can publish this shard now
      } catch (...) {
        exec("ROLLBACK");
        throw;
      }
      exec(fmt::format("UPDATE capforge_shards SET state = 'done', samples = $1, last_error = NULL, "
                       "lease_until = 0, updated_at = {} WHERE id = $2",
                       kNow),
           {std::to_string(samples), std::to_string(id)});
      exec("COMMIT");
      return true;
    });
  }

  void fail(int64_t id, const std::string& owner, const std::string& error) override {
    retrying([&] {
      exec(fmt::format("UPDATE capforge_shards SET state = 'failed', last_error = $1, lease_until = 0, "
                       "updated_at = {} WHERE id = $2 AND owner = $3 AND state = 'running'",
                       kNow),
           {error, std::to_string(id), owner});
      return 0;
    });
  }

  void release(int64_t id, const std::string& owner) override {
    retrying([&] {
      exec(fmt::format("UPDATE capforge_shards SET state = 'pending', owner = NULL, lease_until = 0, "
                       "attempts = GREATEST(attempts - 1, 0), updated_at = {} "
                       "WHERE id = $1 AND owner = $2 AND state = 'running'",
                       kNow),
           {std::to_string(id), owner});
      return 0;
    });
  }

  int reset_failed() override {
    return retrying([&] {
      return (int)exec(
                 fmt::format("UPDATE capforge_shards SET state = 'pending', owner = NULL, attempts = 0, "
                             "updated_at = {} WHERE state = 'failed'",
                             kNow))
          .affected();
    });
  }

  std::vector<ShardRecord> list() override {
    return retrying([&] {
      auto r = exec(fmt::format("SELECT {} FROM capforge_shards ORDER BY id", kCols));
      std::vector<ShardRecord> out;
      for (int i = 0; i < r.rows(); ++i) out.push_back(read_record(r, i));
      return out;
    });
  }

  std::optional<std::string> get_meta(const std::string& key) override {
    return retrying([&]() -> std::optional<std::string> {
      auto r = exec("SELECT value FROM capforge_meta WHERE key = $1", {key});
      if (r.rows() == 0) return std::nullopt;
      return r.text(0, 0);
    });
  }

  void set_meta(const std::string& key, const std::string& value) override {
    retrying([&] {
      exec(
          "INSERT INTO capforge_meta(key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = "
          "excluded.value",
          {key, value});
      return 0;
    });
  }

 private:
  static std::string prefixed(const std::string& p) {
    return fmt::format(
        "{0}id, {0}name, {0}input, {0}format, {0}state, {0}attempts, COALESCE({0}last_error, ''), "
        "COALESCE({0}owner, ''), {0}lease_until, {0}samples",
        p);
  }

  int max_attempts() {
    auto r = exec("SELECT value FROM capforge_meta WHERE key = 'max_attempts'");
    return r.rows() ? std::max(1, std::stoi(r.text(0, 0))) : kDefaultMaxAttempts;
  }

  // Shards whose lease expired on their last allowed attempt fail instead of being claimed again.
  void exec_fail_exhausted(int max) {
    exec(
        fmt::format("UPDATE capforge_shards SET state = 'failed', updated_at = {0}, last_error = "
                    "'lease expired on attempt ' || attempts || ' of ' || $1 || ' (the worker died or hung)' "
                    "WHERE state = 'running' AND lease_until < {0} AND attempts >= $1",
                    kNow),
        {std::to_string(max)});
  }

  void connect() {
    PQfinish(conn_);
    conn_ = PQconnectdb(url_.c_str());
    PQsetNoticeProcessor(
        conn_, [](void*, const char*) {}, nullptr);  // "already exists, skipping"
    if (PQstatus(conn_) != CONNECTION_OK) {
      std::string msg = PQerrorMessage(conn_);
      while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' ')) msg.pop_back();
      throw ConnectionLost(fmt::format("cannot connect to job store {}: {}", redact(url_), msg));
    }
  }

  Result exec(const std::string& sql, const std::vector<std::string>& params = {}) {
    std::vector<const char*> p;
    for (auto& s : params) p.push_back(s.c_str());
    Result r(PQexecParams(conn_, sql.c_str(), (int)p.size(), nullptr, p.data(), nullptr, nullptr, 0));
    return check(std::move(r), sql);
  }

  Result check(Result r, const std::string& sql) {
    if (PQstatus(conn_) != CONNECTION_OK)
      throw ConnectionLost("job store: lost the connection to PostgreSQL");
    if (!r.ok()) throw std::runtime_error(fmt::format("job store: {} (in: {:.80})", r.error(), sql));
    return r;
  }

  // Runs `fn`, reconnecting and retrying it while the server is unreachable (up to ~60 s).
  template <class F>
  auto retrying(F fn) -> decltype(fn()) {
    for (int attempt = 0;; ++attempt) {
      try {
        if (PQstatus(conn_) != CONNECTION_OK) connect();
        return fn();
      } catch (const ConnectionLost&) {
        if (attempt >= 60) throw;
        std::this_thread::sleep_for(std::chrono::seconds(1));
      } catch (...) {
        if (PQtransactionStatus(conn_) != PQTRANS_IDLE) PQclear(PQexec(conn_, "ROLLBACK"));
        throw;
      }
    }
  }

  std::string url_;
  PGconn* conn_ = nullptr;
};

}  // namespace

std::unique_ptr<JobStore> open_pg_store(const std::string& url) { return std::make_unique<PgStore>(url); }

}  // namespace capforge
