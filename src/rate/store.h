// The human rating study's state: one SQLite file with the samples (a re-encoded image, a human
// caption and a model caption each), the raters (only a hash of each token is kept), every
// rater's blind shuffled assignment, and the ratings. All SQL is parameterised. Thread-safe.
#pragma once

#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

struct sqlite3;

namespace capforge::rate {

struct StudySample {
  std::string key;
  std::string image_jpeg;
  std::string human_caption, human_origin;  // origin: "org_caption" or "reference"
  std::string ai_caption;
};

struct Rater {
  int64_t id = 0;
  std::string name;
};

// The next caption a rater has not rated yet.
struct Task {
  int64_t item_id = 0;
  int position = 0, total = 0;  // position counts from 1
  std::string caption;
};

// One rating, joined with what the rater did not see (for reports and export).
struct RatingRow {
  std::string rater, key;
  int64_t item_id = 0;
  std::string source;    // truth: "human" or "ai"
  std::string origin;    // org_caption, reference or re_caption
  std::string believed;  // the rater's guess: "human" or "ai"
  int score = 0;         // 0..5
  std::string caption;
  double rated_at = 0;  // unix seconds
};

enum class Recorded { ok, not_assigned, already_rated, invalid };

class RateStore {
 public:
  // Opens or creates the study file; throws std::runtime_error naming the file.
  explicit RateStore(const std::string& path);
  ~RateStore();
  RateStore(const RateStore&) = delete;
  RateStore& operator=(const RateStore&) = delete;

  int64_t sample_count();
  // Adds the samples (in one transaction) and remembers `seed` for the assignments.
  void add_samples(const std::vector<StudySample>& samples, uint64_t seed);
  // A new rater: each sample once, about half with its human caption and half with the model's,
  // shown in a shuffled order; both draws depend on the study seed and the name only. Returns the
  // rater's secret token. Throws std::invalid_argument if the name is taken or empty.
  std::string add_rater(const std::string& name);
  std::vector<std::string> rater_names();
  std::optional<Rater> rater_by_token(const std::string& token);

  std::optional<Task> next_task(int64_t rater_id);
  std::pair<int, int> progress(int64_t rater_id);  // (rated, assigned)
  // The image behind one of the rater's own items; nullopt for anyone else's.
  std::optional<std::string> image_for(int64_t rater_id, int64_t item_id);
  Recorded record(int64_t rater_id, int64_t item_id, const std::string& believed, int score);

  std::vector<RatingRow> ratings();

 private:
  void exec(const char* sql);
  std::string meta(const std::string& key);

  std::mutex mu_;
  sqlite3* db_ = nullptr;
  std::string path_;
};

// A fresh random token (128 bits from the OS, hex).
std::string new_token();

}  // namespace capforge::rate
