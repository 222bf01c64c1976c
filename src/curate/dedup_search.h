// Near-duplicate pair search: pHash by Hamming distance (multi-index hashing) and image embeddings
// by cosine (Faiss).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace capforge::curate {

struct Pair {
  uint32_t a = 0, b = 0;  // a < b, indices into the caller's arrays
  float distance = 0;     // Hamming bits (pHash) or 1 - cosine (embeddings)
};

// Every pair (a, b) with hamming(hashes[a], hashes[b]) <= max_bits, each once, sorted by (a, b).
// Identical hashes are chained to their first occurrence (distance 0) and only distinct values are
// searched, so a flood of one hash (blank images) costs O(n), not O(n^2).
// Scheme: multi-index hashing on 4 bands of 16 bits. If two hashes differ in <= max_bits bits, one
// band differs in <= floor(max_bits / 4) bits (pigeonhole), so every distinct value probes, in each
// band.s table, its band value and every value within that radius (1 + 16 probes per band at
// radius 1, 137 at 2, 697 at 3) and checks the full 64-bit distance of what it finds. Exact: no
// pair within max_bits is missed. max_bits is limited to 0..15.
// Memory: about 32 bytes per hash and 1 MiB of bucket offsets. Time: n * 4 * probes * (bucket
// size) popcounts; random hashes put n / 65536 values in a bucket.
std::vector<Pair> phash_pairs(const std::vector<uint64_t>& hashes, int max_bits);

struct EmbeddingSearchParams {
  float min_cosine = 0.94f;    // clip-retrieval's dedup threshold
  int64_t ivf_above = 5000;    // rows above which an IVF index replaces exact search
  int nlist = 0;               // IVF lists; 0: round(sqrt(n)), at least 1
  int nprobe = 8;              // IVF lists probed per query
  int64_t query_batch = 4096;  // queries per range search (bounds the result buffers)
  int threads = 0;             // OpenMP threads for Faiss; 0: its default
};

// What was searched and how (logged by the caller and in the summary).
struct EmbeddingSearchInfo {
  std::string index;  // "IndexFlatIP" or "IndexIVFFlat"
  int64_t rows = 0, dim = 0, nlist = 0, nprobe = 0, train_rows = 0;
  int64_t distinct_rows = 0;  // rows searched: identical vectors are chained first
  double seconds = 0;
};

// Every pair (a, b), a < b, of rows of the row-major `x` (n x d, L2-normalised) with inner
// product >= min_cosine, sorted by (a, b); bit-identical rows are instead chained to their first
// row (distance 0) and searched once, like phash_pairs does. Exact (IndexFlatIP range search) for n <=
// ivf_above, else IndexIVFFlat (inner product) trained on an evenly strided sample of min(n, 64 * nlist) rows
// (Faiss asks for 39 to 256 per list): a pair is found when b lies in one of the nprobe lists nearest to a,
// or a in b's.
std::vector<Pair> embedding_pairs(const float* x, int64_t n, int64_t d, const EmbeddingSearchParams& p,
                                  EmbeddingSearchInfo* info = nullptr);

}  // namespace capforge::curate
