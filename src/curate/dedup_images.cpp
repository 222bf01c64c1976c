// Image hashes for the dedup pass: read from each shard's images (its {stem}.tar beside the parquet,
// or the parquet's own image column), computed in parallel, cached per shard.
#include <fmt/format.h>
#include <omp.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include "capforge/image.h"
#include "capforge/io.h"
#include "core/cpus.h"
#include "core/hash.h"
#include "core/log.h"
#include "curate/dedup_internal.h"
#include "curate/phash.h"

namespace fs = std::filesystem;

namespace capforge::curate::detail {

namespace {
struct Hashed {
  std::string key;
  bool ok = false;
  uint64_t hash = 0;
};

// The cache's first line: the source, its size and modification time; a changed source misses.
std::string cache_stamp(const std::string& source) {
  struct stat st {};
  if (::stat(source.c_str(), &st) != 0) return "";
  return fmt::format("capforge-phash-v1 {} {} {}.{:09d}", source, (long long)st.st_size,
                     (long long)st.st_mtim.tv_sec, (long)st.st_mtim.tv_nsec);
}

bool load_cache(const std::string& file, const std::string& stamp, std::vector<Hashed>& out) {
  std::ifstream f(file, std::ios::binary);
  std::string line;
  if (!f || !std::getline(f, line) || line != stamp) return false;
  uint64_t count = 0;
  if (!f.read((char*)&count, sizeof count)) return false;
  out.clear();
  for (uint64_t i = 0; i < count; ++i) {
    uint32_t len = 0;
    if (!f.read((char*)&len, sizeof len) || len > (1u << 20)) return false;
    Hashed h;
    h.key.resize(len);
    char ok = 0;
    if (!f.read(h.key.data(), len) || !f.read(&ok, 1) || !f.read((char*)&h.hash, sizeof h.hash)) return false;
    h.ok = ok != 0;
    out.push_back(std::move(h));
  }
  return f.peek() == std::char_traits<char>::eof();
}

void save_cache(const std::string& file, const std::string& stamp, const std::vector<Hashed>& hs) {
  const std::string tmp = file + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    f << stamp << "\n";
    uint64_t count = hs.size();
    f.write((const char*)&count, sizeof count);
    for (auto& h : hs) {
      uint32_t len = (uint32_t)h.key.size();
      char ok = h.ok ? 1 : 0;
      f.write((const char*)&len, sizeof len);
      f.write(h.key.data(), len);
      f.write(&ok, 1);
      f.write((const char*)&h.hash, sizeof h.hash);
    }
    if (!f) throw std::runtime_error("cannot write " + tmp);
  }
  fs::rename(tmp, file);
}

// Hashes every sample with an image; `error` gets a broken container's message.
std::vector<Hashed> hash_shard(const ShardInput& src, int threads, const std::atomic<bool>* cancel,
                               std::string& error) {
  auto reader = open_reader(src, ReaderParams{});
  std::vector<Hashed> out;
  std::vector<std::string> bytes;
  auto flush = [&](size_t begin) {
    const int64_t n = (int64_t)bytes.size();
#pragma omp parallel for schedule(dynamic, 4) num_threads(threads)
    for (int64_t i = 0; i < n; ++i) {
      Hashed& h = out[begin + i];
      h.ok = phash_image(bytes[i], h.hash).empty();
    }
    bytes.clear();
  };
  Sample s;
  size_t batch_begin = 0;
  while (reader->next(s)) {
    if (!s.has_image || s.image_bytes.empty()) continue;
    out.push_back({s.key, false, 0});
    bytes.push_back(std::move(s.image_bytes));
    s = Sample{};
    if (bytes.size() == 256) {
      if (cancel && cancel->load()) throw std::runtime_error("interrupted");
      flush(batch_begin);
      batch_begin = out.size();
    }
  }
  flush(batch_begin);
  error = reader->error();
  return out;
}

bool has_image_column(duck::Database& db, const std::string& parquet) {
  Query q(db, "SELECT column_name FROM (DESCRIBE SELECT * FROM read_parquet(" + duck::quote_string(parquet) +
                  "))");
  while (q.next_chunk())
    for (size_t r = 0; r < q.rows(); ++r) {
      auto n = q.str(0, r).value_or("");
      if (n == "image" || n == "jpg" || n == "png" || n == "image_bytes" || n == "image_base64") return true;
    }
  return false;
}
}  // namespace

std::vector<std::pair<uint64_t, uint64_t>> row_phashes(duck::Database& db, const std::vector<OutputSet>& sets,
                                                       const DedupParams& params, DedupSummary& sum) {
  init_vips();
  const fs::path cache_dir = fs::path(params.out) / ".dedup" / "phash";
  fs::create_directories(cache_dir);
  const int threads = params.threads > 0 ? params.threads : available_cpus();
  db.exec("CREATE TABLE ph(set_idx INTEGER, shard_idx INTEGER, key VARCHAR, h BIGINT)");
  {
    Appender app(db, "ph");
    for (size_t i = 0; i < sets.size(); ++i) {
      size_t without = 0;
      for (size_t j = 0; j < sets[i].shards.size(); ++j) {
        if (params.cancel && params.cancel->load()) throw std::runtime_error("interrupted");
        const fs::path parquet = sets[i].shards[j];
        const std::string name = parquet.stem().string() + ".tar";
        fs::path tar = parquet.parent_path() / name;
        std::error_code ec;
        for (size_t d = 0; d < params.image_dirs.size() && !fs::is_regular_file(tar, ec); ++d)
          tar = fs::path(params.image_dirs[d]) / name;
        ShardInput src{tar.string(), parquet.stem().string(), InputFormat::webdataset};
        if (!fs::is_regular_file(tar, ec)) {
          if (!has_image_column(db, parquet.string())) {
            ++without;
            continue;
          }
          src = {parquet.string(), parquet.stem().string(), InputFormat::parquet};
        }
        const std::string source = fs::weakly_canonical(src.path).string();
        const std::string stamp = cache_stamp(source);
        const std::string cache = (cache_dir / (sha256_hex(source).substr(0, 24) + ".phash")).string();
        std::vector<Hashed> hashed;
        if (!stamp.empty() && load_cache(cache, stamp, hashed)) {
          sum.images_cached += (int64_t)hashed.size();
        } else {
          std::string broken;
          try {
            hashed = hash_shard(src, threads, params.cancel, broken);
          } catch (const std::exception& e) {
            if (params.cancel && params.cancel->load()) throw;
            warn("dedup: cannot read the images of {}: {}", src.path, e.what());
            ++sum.images_failed;
            continue;
          }
          if (!broken.empty())
            warn("dedup: {} breaks after {} image(s): {}", src.path, hashed.size(), broken);
          sum.images_hashed += (int64_t)hashed.size();
          if (!stamp.empty() && broken.empty()) save_cache(cache, stamp, hashed);
        }
        for (auto& h : hashed) {
          if (!h.ok) {
            ++sum.images_failed;
            continue;
          }
          app.i64((int64_t)i);
          app.i64((int64_t)j);
          app.str(h.key);
          app.u64(h.hash);
          app.end_row();
        }
      }
      if (without == sets[i].shards.size())
        warn("dedup: {} has no images ({{shard}}.tar or an image column): no pHash for its rows",
             sets[i].dir);
      else if (without)
        warn("dedup: {} of {} shard(s) of {} have no images", without, sets[i].shards.size(), sets[i].dir);
    }
    app.flush();
  }
  std::vector<std::pair<uint64_t, uint64_t>> out;
  Query q(db,
          "SELECT min(c.rid) AS rid, p.h FROM ph p JOIN cat c ON c.set_idx = p.set_idx AND c.shard_idx = "
          "p.shard_idx "
          "AND c.key = p.key GROUP BY p.set_idx, p.shard_idx, p.key, p.h ORDER BY 1, 2");
  while (q.next_chunk())
    for (size_t r = 0; r < q.rows(); ++r) out.emplace_back(q.u64(0, r), q.u64(1, r));
  return out;
}

}  // namespace capforge::curate::detail
