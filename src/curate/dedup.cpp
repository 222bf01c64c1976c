#include "curate/dedup.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <stdexcept>

#include "capforge/sample.h"
#include "core/log.h"
#include "curate/dedup_internal.h"

namespace fs = std::filesystem;

namespace capforge::curate {

using detail::Appender;
using detail::Query;
using detail::sql_list;
using duck::quote_ident;
using duck::quote_string;

const char* method_name(DedupMethod m) {
  switch (m) {
    case DedupMethod::sha256:
      return "sha256";
    case DedupMethod::url:
      return "url";
    case DedupMethod::phash:
      return "phash";
    case DedupMethod::embedding:
      return "embedding";
  }
  return "?";
}

bool method_from_name(const std::string& name, DedupMethod& out) {
  for (auto m : {DedupMethod::sha256, DedupMethod::url, DedupMethod::phash, DedupMethod::embedding})
    if (name == method_name(m)) {
      out = m;
      return true;
    }
  return false;
}

std::vector<OutputSet> discover_sets(const std::vector<std::string>& inputs) {
  std::vector<OutputSet> sets;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const std::string& dir = inputs[i];
    std::error_code ec;
    if (!fs::is_directory(dir, ec))
      throw std::invalid_argument(dir +
                                  " is not a folder: dedup reads output sets (the --out folders of "
                                  "caption or download)");
    OutputSet s;
    s.dir = dir;
    for (auto& e : fs::directory_iterator(dir, ec)) {
      std::string name = e.path().filename().string();
      if (name.empty() || name[0] == '.' || e.path().extension() != ".parquet" || !e.is_regular_file())
        continue;
      s.shards.push_back(fs::absolute(e.path()).lexically_normal().string());
    }
    if (ec) throw std::runtime_error(fmt::format("cannot list {}: {}", dir, ec.message()));
    std::sort(s.shards.begin(), s.shards.end());
    if (s.shards.empty()) throw std::invalid_argument(dir + " has no .parquet shards");
    if (inputs.size() > 1) {
      std::string base = fs::absolute(dir).lexically_normal().filename().string();
      if (base.empty()) base = fs::absolute(dir).lexically_normal().parent_path().filename().string();
      s.out_subdir = fmt::format("{:02d}-{}", i, base);
    }
    sets.push_back(std::move(s));
  }
  return sets;
}

namespace {

// Union-find over rows; a component's root is its smallest rid (its first key in key order). Each
// row remembers its strongest direct match: the lowest method rank, then the smallest distance.
struct Groups {
  std::vector<uint32_t> parent;
  std::vector<uint8_t> method;
  std::vector<float> dist;
  explicit Groups(size_t n) : parent(n), method(n, 0), dist(n, 0.f) {
    for (size_t i = 0; i < n; ++i) parent[i] = (uint32_t)i;
  }
  uint32_t find(uint32_t x) {
    while (parent[x] != x) {
      parent[x] = parent[parent[x]];
      x = parent[x];
    }
    return x;
  }
  void note(uint32_t x, DedupMethod m, float d) {
    if (method[x] == 0 || (uint8_t)m < method[x] || ((uint8_t)m == method[x] && d < dist[x])) {
      method[x] = (uint8_t)m;
      dist[x] = d;
    }
  }
  void link(uint32_t a, uint32_t b, DedupMethod m, float d) {
    uint32_t ra = find(a), rb = find(b);
    if (ra < rb) parent[rb] = ra;
    if (rb < ra) parent[ra] = rb;
    note(a, m, d);
    note(b, m, d);
  }
};

std::vector<std::string> column_names(duck::Database& db, const std::string& from) {
  std::vector<std::string> names;
  Query q(db, "SELECT column_name FROM (DESCRIBE SELECT * FROM " + from + ")");
  while (q.next_chunk())
    for (size_t r = 0; r < q.rows(); ++r) names.emplace_back(q.str(0, r).value_or(""));
  return names;
}

bool has(const std::vector<std::string>& names, const std::string& n) {
  return std::find(names.begin(), names.end(), n) != names.end();
}

// The catalogue: one row per input row, rid = its position in (key, set, shard, row) order.
int64_t build_catalogue(duck::Database& db, const std::vector<OutputSet>& sets) {
  db.exec("CREATE TABLE shards(set_idx INTEGER, shard_idx INTEGER, path VARCHAR, out_name VARCHAR)");
  {
    Appender app(db, "shards");
    for (size_t i = 0; i < sets.size(); ++i)
      for (size_t j = 0; j < sets[i].shards.size(); ++j) {
        app.i64((int64_t)i);
        app.i64((int64_t)j);
        app.str(sets[i].shards[j]);
        std::string name = fs::path(sets[i].shards[j]).filename().string();
        app.str(sets[i].out_subdir.empty() ? name : sets[i].out_subdir + "/" + name);
        app.end_row();
      }
  }
  std::string parts;
  for (size_t i = 0; i < sets.size(); ++i) {
    std::string from = "read_parquet(" + sql_list(sets[i].shards) + ", union_by_name = true)";
    std::vector<std::string> cols;
    try {
      cols = column_names(db, from);
    } catch (const std::exception& e) {
      throw std::runtime_error(fmt::format("cannot read the shards of {}: {}", sets[i].dir, e.what()));
    }
    if (!has(cols, "key"))
      throw std::invalid_argument(sets[i].dir +
                                  " has no key column (dedup needs the key of every row; the "
                                  "laion-coco schema has none: dedup a capforge-schema run)");
    std::string url = has(cols, "url") ? "p.url" : has(cols, "URL") ? "p.\"URL\"" : "NULL";
    std::string sha = has(cols, "sha256") ? "lower(trim(CAST(p.sha256 AS VARCHAR)))" : "NULL";
    if (!parts.empty()) parts += " UNION ALL ";
    parts += fmt::format(
        "SELECT {0} AS set_idx, s.shard_idx, CAST(p.file_row_number AS BIGINT) AS row, CAST(p.\"key\" AS "
        "VARCHAR) AS "
        "key, CAST({1} AS VARCHAR) AS url, CAST({2} AS VARCHAR) AS sha256 FROM read_parquet({3}, filename = "
        "true, "
        "file_row_number = true, union_by_name = true) p JOIN shards s ON s.set_idx = {0} AND s.path = "
        "p.filename",
        i, url, sha, sql_list(sets[i].shards));
  }
  db.exec(
      "CREATE TABLE cat AS SELECT CAST(row_number() OVER (ORDER BY key NULLS LAST, set_idx, shard_idx, row) "
      "- 1 "
      "AS BIGINT) AS rid, * FROM (" +
      parts + ")");
  auto n = db.rows("SELECT count(*) FROM cat");
  return std::stoll(n.at(0).at(0).value_or("0"));
}

// Links every row of `source` (a query giving rid and a value) to the first row with its value.
int64_t exact_edges(duck::Database& db, const std::string& source, DedupMethod m, Groups& g) {
  Query q(db, "WITH src AS (" + source +
                  ") SELECT s.rid, g.m FROM src s JOIN (SELECT v, min(rid) AS m FROM src GROUP BY v HAVING "
                  "count(*) > "
                  "1) g ON s.v = g.v WHERE s.rid <> g.m");
  int64_t edges = 0;
  while (q.next_chunk())
    for (size_t r = 0; r < q.rows(); ++r, ++edges)
      g.link((uint32_t)q.u64(0, r), (uint32_t)q.u64(1, r), m, 0.f);
  return edges;
}

void normalise_urls(duck::Database& db) {
  db.exec("CREATE TABLE nurl(rid BIGINT, v VARCHAR)");
  Appender app(db, "nurl");
  Query q(db, "SELECT rid, url FROM cat WHERE url IS NOT NULL AND trim(url) <> ''");
  while (q.next_chunk())
    for (size_t r = 0; r < q.rows(); ++r) {
      app.u64(q.u64(0, r));
      app.str(normalize_url(std::string(*q.str(1, r))));
      app.end_row();
    }
  app.flush();
}

void link_pairs(const std::vector<Pair>& pairs, const std::vector<uint64_t>& rids, DedupMethod m, Groups& g) {
  for (auto& p : pairs) g.link((uint32_t)rids[p.a], (uint32_t)rids[p.b], m, p.distance);
}

// Writes via a temp file beside `final_path`, renamed into place.
void copy_to_parquet(duck::Database& db, const std::string& select, const std::string& final_path) {
  std::string tmp = final_path + ".tmp-dedup";
  db.exec("COPY (" + select + ") TO " + quote_string(tmp) + " (FORMAT parquet)");
  fs::rename(tmp, final_path);
}

}  // namespace

DedupSummary run_dedup(const DedupParams& p, const std::vector<OutputSet>& sets) {
  auto t0 = std::chrono::steady_clock::now();
  DedupSummary sum;
  fs::create_directories(fs::path(p.out) / ".dedup" / "tmp");
  duck::Database db(p.threads, p.memory_limit);
  db.exec("SET temp_directory = " + quote_string((fs::path(p.out) / ".dedup" / "tmp").string()));
  sum.rows = build_catalogue(db, sets);
  if (sum.rows >= (int64_t)UINT32_MAX)
    throw std::runtime_error("more than 4,294,967,294 rows: dedup in parts");
  info("dedup: {} row(s) in {} set(s)", sum.rows, sets.size());
  Groups g((size_t)sum.rows);
  auto wants = [&](DedupMethod m) {
    return std::find(p.methods.begin(), p.methods.end(), m) != p.methods.end();
  };
  auto cancelled = [&] {
    if (p.cancel && p.cancel->load()) throw std::runtime_error("interrupted");
  };
  if (wants(DedupMethod::sha256)) {
    sum.pairs["sha256"] =
        exact_edges(db, "SELECT rid, sha256 AS v FROM cat WHERE sha256 IS NOT NULL AND sha256 <> ''",
                    DedupMethod::sha256, g);
    info("dedup: sha256: {} row(s) repeat an earlier image", sum.pairs["sha256"]);
  }
  cancelled();
  if (wants(DedupMethod::url)) {
    normalise_urls(db);
    sum.pairs["url"] = exact_edges(db, "SELECT rid, v FROM nurl", DedupMethod::url, g);
    info("dedup: url: {} row(s) repeat an earlier normalised URL", sum.pairs["url"]);
  }
  cancelled();
  if (wants(DedupMethod::phash)) {
    auto hashed = detail::row_phashes(db, sets, p, sum);
    cancelled();
    std::vector<uint64_t> rids(hashed.size()), hashes(hashed.size());
    for (size_t i = 0; i < hashed.size(); ++i) std::tie(rids[i], hashes[i]) = hashed[i];
    hashed = {};
    auto pairs = phash_pairs(hashes, p.phash_bits);
    sum.pairs["phash"] = (int64_t)pairs.size();
    link_pairs(pairs, rids, DedupMethod::phash, g);
    info("dedup: phash: {} hashed image(s), {} pair(s) within {} bit(s)", rids.size(), pairs.size(),
         p.phash_bits);
  }
  cancelled();
  if (wants(DedupMethod::embedding)) {
    auto emb = detail::row_embeddings(db, sets, sum);
    cancelled();
    auto pairs =
        embedding_pairs(emb.x.data(), (int64_t)emb.rids.size(), emb.dim, p.embedding, &sum.embedding);
    sum.pairs["embedding"] = (int64_t)pairs.size();
    link_pairs(pairs, emb.rids, DedupMethod::embedding, g);
    const auto& e = sum.embedding;
    info(
        "dedup: embedding: {} row(s) ({} distinct) x {} dims, {} (nlist {}, nprobe {}, trained on {} rows), "
        "cosine >= {}: {} pair(s) in {:.1f}s",
        e.rows, e.distinct_rows, e.dim, e.index.empty() ? "no index" : e.index, e.nlist, e.nprobe,
        e.train_rows, p.embedding.min_cosine, pairs.size(), e.seconds);
  }
  cancelled();
  // Components: roots are their smallest rid (Groups::link), so the kept row is the first key.
  std::vector<bool> has_dups((size_t)sum.rows, false);
  for (uint32_t x = 0; x < (uint32_t)sum.rows; ++x)
    if (uint32_t r = g.find(x); r != x) has_dups[r] = true;
  db.exec("CREATE TABLE dups(rid BIGINT, gid BIGINT, method VARCHAR, distance DOUBLE)");
  {
    Appender app(db, "dups");
    for (uint32_t x = 0; x < (uint32_t)sum.rows; ++x) {
      uint32_t r = g.find(x);
      if (r == x && !has_dups[x]) continue;
      if (r == x)
        ++sum.groups;
      else {
        ++sum.duplicates;
        ++sum.rows_by_method[method_name((DedupMethod)g.method[x])];
      }
      app.u64(x);
      app.u64(r);
      app.str(method_name((DedupMethod)g.method[x]));
      app.f64(g.dist[x]);
      app.end_row();
    }
    app.flush();
  }
  // In a folder of its own, so that --out stays an output set whose top-level parquet files are shards.
  fs::create_directories(fs::path(p.out) / "duplicates");
  const std::string dup_file = (fs::path(p.out) / "duplicates" / "duplicates.parquet").string();
  copy_to_parquet(
      db,
      "SELECT c.key, d.gid AS group_id, k.key AS kept_key, d.rid = d.gid AS kept, d.method, d.distance, "
      "s.path AS source, c.row AS source_row FROM dups d JOIN cat c ON c.rid = d.rid JOIN cat k ON k.rid = "
      "d.gid JOIN shards s ON s.set_idx = c.set_idx AND s.shard_idx = c.shard_idx ORDER BY d.gid, d.rid",
      dup_file);
  sum.written.push_back(dup_file);
  db.exec(
      "CREATE TABLE dupof AS SELECT c.set_idx, c.shard_idx, c.row, k.key AS dup_of FROM dups d JOIN cat c ON "
      "c.rid "
      "= d.rid JOIN cat k ON k.rid = d.gid WHERE d.rid <> d.gid ORDER BY 1, 2, 3");
  for (size_t i = 0; i < sets.size(); ++i) {
    fs::path dir = fs::path(p.out) / sets[i].out_subdir;
    fs::create_directories(dir);
    for (size_t j = 0; j < sets[i].shards.size(); ++j) {
      cancelled();
      const std::string& in = sets[i].shards[j];
      std::string from = "read_parquet(" + quote_string(in) + ", file_row_number = true)";
      std::string exclude = "file_row_number";
      if (has(column_names(db, "read_parquet(" + quote_string(in) + ")"), "dup_of")) exclude += ", dup_of";
      std::string out = (dir / fs::path(in).filename()).string();
      copy_to_parquet(
          db,
          fmt::format("SELECT p.* EXCLUDE ({}), x.dup_of FROM {} p LEFT JOIN (SELECT row, dup_of FROM dupof "
                      "WHERE set_idx = {} AND shard_idx = {}) x ON x.row = p.file_row_number ORDER BY "
                      "p.file_row_number",
                      exclude, from, i, j),
          out);
      sum.written.push_back(out);
    }
  }
  sum.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  // The run's record: parameters, counts and the embedding index, for reruns and audits.
  Json rec = {{"inputs", p.inputs},
              {"methods", Json::array()},
              {"phash_max_bits", p.phash_bits},
              {"min_cosine", p.embedding.min_cosine},
              {"rows", sum.rows},
              {"groups", sum.groups},
              {"duplicates", sum.duplicates},
              {"pairs", sum.pairs},
              {"duplicates_by_method", sum.rows_by_method},
              {"images",
               {{"hashed", sum.images_hashed}, {"cached", sum.images_cached}, {"failed", sum.images_failed}}},
              {"embeddings", {{"rows", sum.embeddings}, {"unmatched", sum.embeddings_unmatched}}},
              {"seconds", sum.seconds}};
  for (auto m : p.methods) rec["methods"].push_back(method_name(m));
  if (!sum.embedding.index.empty())
    rec["embedding_index"] = {{"index", sum.embedding.index},
                              {"rows", sum.embedding.rows},
                              {"dim", sum.embedding.dim},
                              {"distinct_rows", sum.embedding.distinct_rows},
                              {"nlist", sum.embedding.nlist},
                              {"nprobe", sum.embedding.nprobe},
                              {"train_rows", sum.embedding.train_rows},
                              {"ivf_above", p.embedding.ivf_above},
                              {"seconds", sum.embedding.seconds}};
  const std::string rec_file = (fs::path(p.out) / "dedup_summary.json").string();
  {
    std::ofstream f(rec_file + ".tmp-dedup");
    f << rec.dump(2) << "\n";
    if (!f) throw std::runtime_error("cannot write " + rec_file);
  }
  fs::rename(rec_file + ".tmp-dedup", rec_file);
  sum.written.push_back(rec_file);
  std::error_code ec;
  fs::remove_all(fs::path(p.out) / ".dedup" / "tmp", ec);
  return sum;
}

}  // namespace capforge::curate
