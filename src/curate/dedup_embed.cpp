// Image embeddings for the dedup pass, from clip-retrieval's layout in each set:
// img_emb/img_emb_{i}.npy rows match metadata/metadata_{i}.parquet rows (key, url, caption).
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <filesystem>

#include "core/log.h"
#include "curate/dedup_internal.h"
#include "curate/npy_reader.h"

namespace fs = std::filesystem;

namespace capforge::curate::detail {

namespace {
// img_emb_{name}.npy files of a set: clip-retrieval numbers them ({i}), capforge names them after
// their shard ({shard}); numbers sort numerically, then names in byte order.
struct EmbFile {
  bool numeric;
  long long number;
  std::string name;
  fs::path path;
};

std::vector<EmbFile> embedding_files(const fs::path& dir) {
  std::vector<EmbFile> out;
  std::error_code ec;
  for (auto& e : fs::directory_iterator(dir / "img_emb", ec)) {
    std::string file = e.path().filename().string();
    const std::string pre = "img_emb_", ext = ".npy";
    if (file.size() <= pre.size() + ext.size() || file.compare(0, pre.size(), pre) != 0 ||
        file.compare(file.size() - ext.size(), ext.size(), ext) != 0)
      continue;
    std::string name = file.substr(pre.size(), file.size() - pre.size() - ext.size());
    bool numeric = name.size() <= 15 && std::all_of(name.begin(), name.end(), ::isdigit);
    out.push_back({numeric, numeric ? std::stoll(name) : 0, name, e.path()});
  }
  std::sort(out.begin(), out.end(), [](const EmbFile& x, const EmbFile& y) {
    if (x.numeric != y.numeric) return x.numeric;
    return x.number != y.number ? x.number < y.number : x.name < y.name;
  });
  return out;
}
}  // namespace

RowEmbeddings row_embeddings(duck::Database& db, const std::vector<OutputSet>& sets, DedupSummary& sum) {
  db.exec("CREATE TABLE emb(set_idx INTEGER, key VARCHAR, erow BIGINT)");
  std::vector<float> all;
  int64_t dim = 0, total = 0;
  {
    Appender app(db, "emb");
    for (size_t i = 0; i < sets.size(); ++i) {
      auto files = embedding_files(sets[i].dir);
      if (files.empty()) {
        warn("dedup: {} has no img_emb/img_emb_*.npy: no embeddings for its rows", sets[i].dir);
        continue;
      }
      for (auto& f : files) {
        const fs::path& npy = f.path;
        // metadata_{name}.parquet; a numbered file may also pair with an unpadded number
        fs::path meta = fs::path(sets[i].dir) / "metadata" / ("metadata_" + f.name + ".parquet");
        fs::path meta_num = fs::path(sets[i].dir) / "metadata" / fmt::format("metadata_{}.parquet", f.number);
        if (!fs::exists(meta) && f.numeric && fs::exists(meta_num)) meta = meta_num;
        if (!fs::exists(meta))
          throw std::runtime_error(fmt::format("{} has no metadata file {}", npy.string(), meta.string()));
        NpyMatrix m = read_npy(npy.string());
        if (m.rows == 0) continue;  // a shard without embeddings
        if (m.cols <= 0) throw std::runtime_error(npy.string() + ": zero-width embeddings");
        if (dim == 0) dim = m.cols;
        if (m.cols != dim)
          throw std::runtime_error(
              fmt::format("{}: {} dims, earlier files have {}", npy.string(), m.cols, dim));
        std::vector<std::optional<std::string>> keys;
        try {
          Query q(db, "SELECT CAST(\"key\" AS VARCHAR) FROM read_parquet(" +
                          duck::quote_string(meta.string()) +
                          ", file_row_number = true) ORDER BY file_row_number");
          while (q.next_chunk())
            for (size_t r = 0; r < q.rows(); ++r) {
              auto v = q.str(0, r);
              keys.emplace_back(v ? std::optional<std::string>(std::string(*v)) : std::nullopt);
            }
        } catch (const std::exception& e) {
          throw std::runtime_error(fmt::format("cannot read keys from {}: {}", meta.string(), e.what()));
        }
        if ((int64_t)keys.size() != m.rows)
          throw std::runtime_error(fmt::format("{} has {} rows but {} has {}: they must match row for row",
                                               npy.string(), m.rows, meta.string(), keys.size()));
        for (int64_t r = 0; r < m.rows; ++r) {
          if (!keys[r]) continue;
          app.i64((int64_t)i);
          app.str(*keys[r]);
          app.i64(total + r);
          app.end_row();
        }
        all.insert(all.end(), m.data.begin(), m.data.end());
        total += m.rows;
      }
    }
    app.flush();
  }
  sum.embeddings = total;
  RowEmbeddings out;
  out.dim = dim;
  Query q(db,
          "SELECT e.erow, min(c.rid) AS rid FROM emb e JOIN cat c ON c.set_idx = e.set_idx AND c.key = e.key "
          "GROUP BY "
          "e.erow ORDER BY rid, e.erow");
  int64_t matched = 0;
  while (q.next_chunk())
    for (size_t r = 0; r < q.rows(); ++r) {
      ++matched;
      const uint64_t erow = q.u64(0, r), rid = q.u64(1, r);
      if (!out.rids.empty() && out.rids.back() == rid) continue;  // one embedding per row: its first
      out.rids.push_back(rid);
      const float* v = all.data() + erow * dim;
      double norm = 0;
      for (int64_t k = 0; k < dim; ++k) norm += (double)v[k] * v[k];
      const float scale = norm > 0 ? (float)(1.0 / std::sqrt(norm)) : 0.f;
      for (int64_t k = 0; k < dim; ++k) out.x.push_back(v[k] * scale);
    }
  sum.embeddings_unmatched = total - matched;
  if (sum.embeddings_unmatched)
    warn("dedup: {} embedding row(s) have no row with their key in their set (left out)",
         sum.embeddings_unmatched);
  return out;
}

}  // namespace capforge::curate::detail
