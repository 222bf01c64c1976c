// capforge dedup: exact (sha256, normalised URL) and near (pHash, CLIP image embedding) duplicates
// across capforge output sets, grouped by union-find; writes a duplicates table and a copy of each
// set with a dup_of column. Inputs are only read.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "curate/dedup_search.h"

namespace capforge::curate {

enum class DedupMethod : uint8_t { sha256 = 1, url = 2, phash = 3, embedding = 4 };  // also their rank
const char* method_name(DedupMethod m);
bool method_from_name(const std::string& name, DedupMethod& out);

// URL normalisation for exact URL matching (see docs/dedup.md): surrounding whitespace trimmed;
// scheme and host lower-cased; a host's trailing dot, empty userinfo, an empty port and the
// scheme's default port (http 80, https 443, ftp 21, ws 80, wss 443) dropped; an empty path of a
// URL with an authority becomes "/"; "." and ".." path segments resolved; percent-escapes of
// unreserved characters (A-Z a-z 0-9 - . _ ~) decoded and the others' hex upper-cased; an empty
// query ("?" alone) and the fragment ("#..."), dropped. Everything else is kept as is: http and
// https stay different, as do "www." hosts, trailing slashes, query parameter order and case in
// paths, since any of them can name another resource.
std::string normalize_url(const std::string& url);

struct DedupParams {
  std::vector<std::string> inputs;  // output sets: folders of {shard}.parquet (+ .tar, img_emb/)
  std::string out;                  // --out folder
  std::vector<DedupMethod> methods = {DedupMethod::sha256, DedupMethod::url};
  // pHash: folders where a shard's images {stem}.tar are looked up when no {stem}.tar is beside its
  // parquet (e.g. the input shards of a `caption` run, whose outputs hold no images)
  std::vector<std::string> image_dirs;
  int phash_bits = 6;  // pHash pairs within this Hamming distance (of 64) are duplicates
  EmbeddingSearchParams embedding;
  int threads = 0;                   // image hashing and Faiss; 0: the CPUs this process may use
  std::string memory_limit = "2GB";  // DuckDB's; it spills to --out/.dedup/tmp past it
  const std::atomic<bool>* cancel = nullptr;
};

struct DedupSummary {
  int64_t rows = 0, groups = 0, duplicates = 0;   // duplicates: rows with a dup_of
  std::map<std::string, int64_t> pairs;           // candidate pairs found per method
  std::map<std::string, int64_t> rows_by_method;  // duplicate rows per (strongest) method
  int64_t images_hashed = 0, images_cached = 0, images_failed = 0, embeddings = 0, embeddings_unmatched = 0;
  EmbeddingSearchInfo embedding;
  std::vector<std::string> written;  // files written under --out
  double seconds = 0;
};

// One input set as found on disk.
struct OutputSet {
  std::string dir;                  // as given
  std::vector<std::string> shards;  // {stem}.parquet paths, sorted
  std::string out_subdir;           // "" (one set) or "NN-name" under --out
};

// Lists the sets: each input must be a folder with *.parquet shards at its top level (hidden files
// and the metadata/ folder are not shards). Throws std::invalid_argument for bad usage.
std::vector<OutputSet> discover_sets(const std::vector<std::string>& inputs);

// Runs the pass. Throws std::invalid_argument for bad usage (a set without a key column, ...),
// std::runtime_error for failed work (an unreadable shard, a malformed .npy).
DedupSummary run_dedup(const DedupParams& params, const std::vector<OutputSet>& sets);

}  // namespace capforge::curate
