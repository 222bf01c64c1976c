#include "rate/store.h"

#include <openssl/rand.h>
#include <sqlite3.h>

#include <algorithm>
#include <chrono>
#include <random>
#include <stdexcept>

#include "core/hash.h"
#include "core/sqlite_stmt.h"

namespace capforge::rate {

namespace {

constexpr const char* kWhat = "rating study";

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS samples(id INTEGER PRIMARY KEY, key TEXT UNIQUE NOT NULL, image BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS items(
  id INTEGER PRIMARY KEY, sample_id INTEGER NOT NULL REFERENCES samples(id),
  source TEXT NOT NULL CHECK (source IN ('human', 'ai')), origin TEXT NOT NULL, caption TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS raters(
  id INTEGER PRIMARY KEY, name TEXT UNIQUE NOT NULL, token_sha256 TEXT UNIQUE NOT NULL, created_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS assignments(
  rater_id INTEGER NOT NULL REFERENCES raters(id), position INTEGER NOT NULL, item_id INTEGER NOT NULL REFERENCES items(id),
  PRIMARY KEY (rater_id, position), UNIQUE (rater_id, item_id));
CREATE TABLE IF NOT EXISTS ratings(
  rater_id INTEGER NOT NULL REFERENCES raters(id), item_id INTEGER NOT NULL REFERENCES items(id),
  believed TEXT NOT NULL CHECK (believed IN ('human', 'ai')), score INTEGER NOT NULL CHECK (score BETWEEN 0 AND 5),
  rated_at REAL NOT NULL, PRIMARY KEY (rater_id, item_id));
)sql";

double now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

uint64_t fnv1a(const std::string& s) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  return h;
}

}  // namespace

std::string new_token() {
  unsigned char b[16];
  if (RAND_bytes(b, sizeof b) != 1) throw std::runtime_error("no randomness for rater tokens");
  static const char* hex = "0123456789abcdef";
  std::string t;
  for (unsigned char c : b) t += {hex[c >> 4], hex[c & 15]};
  return t;
}

RateStore::RateStore(const std::string& path) : path_(path) {
  if (sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                      nullptr) != SQLITE_OK) {
    std::string msg = db_ ? sqlite3_errmsg(db_) : "out of memory";
    sqlite3_close(db_);
    throw std::runtime_error("cannot open rating study " + path + ": " + msg);
  }
  sqlite3_busy_timeout(db_, 10000);
  try {
    exec("PRAGMA foreign_keys = ON");
    exec(kSchema);
  } catch (const std::exception& e) {
    sqlite3_close(db_);
    throw std::runtime_error(path + " is not a rating study: " + e.what());
  }
}

RateStore::~RateStore() { sqlite3_close(db_); }

void RateStore::exec(const char* sql) {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = err ? err : sqlite3_errmsg(db_);
    sqlite3_free(err);
    throw std::runtime_error(std::string(kWhat) + ": " + msg);
  }
}

std::string RateStore::meta(const std::string& key) {
  Stmt s(db_, "SELECT value FROM meta WHERE key = ?", kWhat);
  s.bind(1, key);
  return s.step() ? s.text(0) : "";
}

int64_t RateStore::sample_count() {
  std::lock_guard lock(mu_);
  Stmt s(db_, "SELECT count(*) FROM samples", kWhat);
  s.step();
  return s.i64(0);
}

void RateStore::add_samples(const std::vector<StudySample>& samples, uint64_t seed) {
  std::lock_guard lock(mu_);
  exec("BEGIN IMMEDIATE");
  try {
    Stmt m(db_, "INSERT OR REPLACE INTO meta(key, value) VALUES ('seed', ?)", kWhat);
    m.bind(1, std::to_string(seed)).step();
    Stmt s(db_, "INSERT INTO samples(key, image) VALUES (?, ?)", kWhat);
    Stmt it(db_, "INSERT INTO items(sample_id, source, origin, caption) VALUES (?, ?, ?, ?)", kWhat);
    for (auto& x : samples) {
      s.reset();
      s.bind(1, x.key).bind_blob(2, x.image_jpeg).step();
      int64_t id = sqlite3_last_insert_rowid(db_);
      for (auto [source, origin, caption] : {std::tuple{"human", x.human_origin, x.human_caption},
                                             std::tuple{"ai", std::string("re_caption"), x.ai_caption}}) {
        it.reset();
        it.bind(1, id).bind(2, std::string(source)).bind(3, origin).bind(4, caption).step();
      }
    }
    exec("COMMIT");
  } catch (...) {
    exec("ROLLBACK");
    throw;
  }
}

std::string RateStore::add_rater(const std::string& name) {
  if (name.empty()) throw std::invalid_argument("a rater needs a name");
  std::lock_guard lock(mu_);
  {
    Stmt s(db_, "SELECT 1 FROM raters WHERE name = ?", kWhat);
    if (s.bind(1, name).step()) throw std::invalid_argument("rater '" + name + "' exists already");
  }
  std::vector<int64_t> samples;
  {
    Stmt s(db_, "SELECT id FROM samples ORDER BY id", kWhat);
    while (s.step()) samples.push_back(s.i64(0));
  }
  std::string seed = meta("seed");
  std::mt19937_64 rng((seed.empty() ? 0 : std::stoull(seed)) ^ fnv1a(name));
  std::shuffle(samples.begin(), samples.end(), rng);  // the first half gets its human caption
  size_t humans = samples.size() / 2 + (samples.size() % 2 ? rng() % 2 : 0);
  std::vector<std::pair<int64_t, const char*>> picks;
  for (size_t i = 0; i < samples.size(); ++i) picks.emplace_back(samples[i], i < humans ? "human" : "ai");
  std::shuffle(picks.begin(), picks.end(), rng);  // shown order, independent of the source
  std::string token = new_token();
  exec("BEGIN IMMEDIATE");
  try {
    Stmt r(db_, "INSERT INTO raters(name, token_sha256, created_at) VALUES (?, ?, ?)", kWhat);
    r.bind(1, name).bind(2, sha256_hex(token)).bind(3, now()).step();
    int64_t rater = sqlite3_last_insert_rowid(db_);
    Stmt a(db_,
           "INSERT INTO assignments(rater_id, position, item_id) "
           "SELECT ?, ?, id FROM items WHERE sample_id = ? AND source = ?",
           kWhat);
    for (size_t i = 0; i < picks.size(); ++i) {
      a.reset();
      a.bind(1, rater)
          .bind(2, (int64_t)i + 1)
          .bind(3, picks[i].first)
          .bind(4, std::string(picks[i].second))
          .step();
    }
    exec("COMMIT");
  } catch (...) {
    exec("ROLLBACK");
    throw;
  }
  return token;
}

std::vector<std::string> RateStore::rater_names() {
  std::lock_guard lock(mu_);
  Stmt s(db_, "SELECT name FROM raters ORDER BY id", kWhat);
  std::vector<std::string> out;
  while (s.step()) out.push_back(s.text(0));
  return out;
}

std::optional<Rater> RateStore::rater_by_token(const std::string& token) {
  if (token.size() != 32) return std::nullopt;
  std::lock_guard lock(mu_);
  Stmt s(db_, "SELECT id, name FROM raters WHERE token_sha256 = ?", kWhat);
  if (!s.bind(1, sha256_hex(token)).step()) return std::nullopt;
  return Rater{s.i64(0), s.text(1)};
}

std::optional<Task> RateStore::next_task(int64_t rater_id) {
  std::lock_guard lock(mu_);
  Stmt s(db_,
         "SELECT a.item_id, a.position, (SELECT count(*) FROM assignments WHERE rater_id = ?1), i.caption "
         "FROM assignments a JOIN items i ON i.id = a.item_id "
         "WHERE a.rater_id = ?1 AND NOT EXISTS "
         "(SELECT 1 FROM ratings r WHERE r.rater_id = ?1 AND r.item_id = a.item_id) "
         "ORDER BY a.position LIMIT 1",
         kWhat);
  if (!s.bind(1, rater_id).step()) return std::nullopt;
  return Task{s.i64(0), (int)s.i64(1), (int)s.i64(2), s.text(3)};
}

std::pair<int, int> RateStore::progress(int64_t rater_id) {
  std::lock_guard lock(mu_);
  Stmt s(db_,
         "SELECT (SELECT count(*) FROM ratings WHERE rater_id = ?1), "
         "(SELECT count(*) FROM assignments WHERE rater_id = ?1)",
         kWhat);
  s.bind(1, rater_id).step();
  return {(int)s.i64(0), (int)s.i64(1)};
}

std::optional<std::string> RateStore::image_for(int64_t rater_id, int64_t item_id) {
  std::lock_guard lock(mu_);
  Stmt s(db_,
         "SELECT s.image FROM assignments a JOIN items i ON i.id = a.item_id JOIN samples s ON s.id = "
         "i.sample_id "
         "WHERE a.rater_id = ? AND a.item_id = ?",
         kWhat);
  if (!s.bind(1, rater_id).bind(2, item_id).step()) return std::nullopt;
  return s.blob(0);
}

Recorded RateStore::record(int64_t rater_id, int64_t item_id, const std::string& believed, int score) {
  if ((believed != "human" && believed != "ai") || score < 0 || score > 5) return Recorded::invalid;
  std::lock_guard lock(mu_);
  {
    Stmt s(db_, "SELECT 1 FROM assignments WHERE rater_id = ? AND item_id = ?", kWhat);
    if (!s.bind(1, rater_id).bind(2, item_id).step()) return Recorded::not_assigned;
  }
  Stmt s(db_,
         "INSERT INTO ratings(rater_id, item_id, believed, score, rated_at) VALUES (?, ?, ?, ?, ?) "
         "ON CONFLICT DO NOTHING",
         kWhat);
  s.bind(1, rater_id).bind(2, item_id).bind(3, believed).bind(4, (int64_t)score).bind(5, now()).step();
  return sqlite3_changes(db_) == 1 ? Recorded::ok : Recorded::already_rated;
}

std::vector<RatingRow> RateStore::ratings() {
  std::lock_guard lock(mu_);
  Stmt s(db_,
         "SELECT rt.name, s.key, i.id, i.source, i.origin, r.believed, r.score, i.caption, r.rated_at "
         "FROM ratings r JOIN raters rt ON rt.id = r.rater_id JOIN items i ON i.id = r.item_id "
         "JOIN samples s ON s.id = i.sample_id ORDER BY rt.id, r.rated_at, i.id",
         kWhat);
  std::vector<RatingRow> out;
  while (s.step())
    out.push_back({s.text(0), s.text(1), s.i64(2), s.text(3), s.text(4), s.text(5), (int)s.i64(6), s.text(7),
                   s.dbl(8)});
  return out;
}

}  // namespace capforge::rate
