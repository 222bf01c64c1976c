// Internal pieces of the dedup pass shared by its source files.
#pragma once

#include <duckdb.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "curate/dedup.h"
#include "io/duckdb_util.h"

namespace capforge::curate::detail {

// Streamed queries are duck::Stream (str() for VARCHAR, u64() for BIGINT/UBIGINT cells).
using Query = duck::Stream;

// Appends rows to a table (RAII over duckdb_appender); flush() before the table is read.
class Appender {
 public:
  Appender(duck::Database& db, const std::string& table);
  ~Appender();
  Appender(const Appender&) = delete;
  Appender& operator=(const Appender&) = delete;
  void u64(uint64_t v);
  void i64(int64_t v);
  void str(std::string_view v);
  void f64(double v);
  void end_row();
  void flush();

 private:
  void check(duckdb_state st);
  duckdb_appender app_ = nullptr;
};

// Image hashes of the rows that have a decodable image: (rid, hash), sorted by rid. Computes and
// caches them per shard under `params.out`/.dedup/phash (a cache whose source changed is redone).
std::vector<std::pair<uint64_t, uint64_t>> row_phashes(duck::Database& db, const std::vector<OutputSet>& sets,
                                                       const DedupParams& params, DedupSummary& summary);

// Embeddings of the rows found in each set's img_emb/ + metadata/ (matched by key within the set),
// sorted by rid, one per rid, re-normalised to unit length.
struct RowEmbeddings {
  std::vector<uint64_t> rids;
  std::vector<float> x;  // rids.size() x dim
  int64_t dim = 0;
};
RowEmbeddings row_embeddings(duck::Database& db, const std::vector<OutputSet>& sets, DedupSummary& summary);

// The SQL list literal ['a', 'b'] of quoted paths.
std::string sql_list(const std::vector<std::string>& paths);

}  // namespace capforge::curate::detail
