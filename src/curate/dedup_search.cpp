#include "curate/dedup_search.h"

#include <faiss/IndexFlat.h>
#include <faiss/IndexIVFFlat.h>
#include <faiss/impl/AuxIndexStructures.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <stdexcept>

#include "curate/phash.h"

namespace capforge::curate {

namespace {
void sort_unique(std::vector<Pair>& pairs) {
  std::sort(pairs.begin(), pairs.end(), [](const Pair& x, const Pair& y) {
    return x.a != y.a ? x.a < y.a : x.b != y.b ? x.b < y.b : x.distance < y.distance;
  });
  pairs.erase(std::unique(pairs.begin(), pairs.end(),
                          [](const Pair& x, const Pair& y) { return x.a == y.a && x.b == y.b; }),
              pairs.end());
}

// Every 16-bit mask with at most `radius` bits set.
std::vector<uint16_t> probe_masks(int radius) {
  std::vector<uint16_t> out;
  for (uint32_t m = 0; m < 65536; ++m)
    if (__builtin_popcount(m) <= radius) out.push_back((uint16_t)m);
  return out;
}
}  // namespace

std::vector<Pair> phash_pairs(const std::vector<uint64_t>& hashes, int max_bits) {
  if (max_bits < 0 || max_bits > 15) throw std::invalid_argument("pHash distance must be 0..15");
  std::vector<Pair> pairs;
  // Distinct values, each with the first index holding it; later holders chain to it.
  std::vector<uint32_t> order(hashes.size());
  for (uint32_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](uint32_t x, uint32_t y) { return hashes[x] < hashes[y]; });
  std::vector<uint64_t> values;
  std::vector<uint32_t> first;
  for (size_t k = 0; k < order.size(); ++k) {
    if (k > 0 && hashes[order[k]] == hashes[order[k - 1]]) {
      pairs.push_back({std::min(first.back(), order[k]), std::max(first.back(), order[k]), 0.f});
      continue;
    }
    values.push_back(hashes[order[k]]);
    first.push_back(order[k]);
  }
  const int radius = max_bits / 4;
  const auto masks = probe_masks(radius);
  // One table per band: distinct indices bucketed by band value (counting sort), bucket v at
  // idx[start[v] .. start[v + 1]), indices ascending within a bucket.
  struct Table {
    std::vector<uint32_t> start, idx;
  };
  std::vector<Table> tables(4);
  for (int b = 0; b < 4; ++b) {
    auto& t = tables[b];
    t.start.assign(65537, 0);
    t.idx.resize(values.size());
    for (uint64_t v : values) ++t.start[((v >> (16 * b)) & 0xffff) + 1];
    for (size_t k = 1; k < t.start.size(); ++k) t.start[k] += t.start[k - 1];
    std::vector<uint32_t> fill(t.start.begin(), t.start.end() - 1);
    for (uint32_t i = 0; i < values.size(); ++i) t.idx[fill[(values[i] >> (16 * b)) & 0xffff]++] = i;
  }
  std::vector<Pair> near;
#pragma omp parallel
  {
    std::vector<Pair> local;
#pragma omp for schedule(dynamic, 1024)
    for (int64_t i = 0; i < (int64_t)values.size(); ++i) {
      for (int b = 0; b < 4; ++b) {
        const auto& t = tables[b];
        const uint16_t band = (uint16_t)(values[i] >> (16 * b));
        for (uint16_t m : masks) {
          const uint16_t probe = band ^ m;
          for (uint32_t k = t.start[probe]; k < t.start[probe + 1]; ++k) {
            const uint32_t j = t.idx[k];
            if (j <= (uint32_t)i) continue;
            int d = hamming(values[i], values[j]);
            if (d <= max_bits) {
              uint32_t a = first[i], c = first[j];
              local.push_back({std::min(a, c), std::max(a, c), (float)d});
            }
          }
        }
      }
    }
#pragma omp critical
    near.insert(near.end(), local.begin(), local.end());
  }
  pairs.insert(pairs.end(), near.begin(), near.end());
  sort_unique(pairs);
  return pairs;
}

namespace {
// The Faiss search proper, over rows that are all distinct.
std::vector<Pair> search_rows(const float* x, int64_t n, int64_t d, const EmbeddingSearchParams& p,
                              EmbeddingSearchInfo* info) {
  auto t0 = std::chrono::steady_clock::now();
  EmbeddingSearchInfo si;
  si.rows = n;
  si.dim = d;
  std::vector<Pair> pairs;
  if (n < 2) {
    if (info) *info = si;
    return pairs;
  }
  if (p.threads > 0) omp_set_num_threads(p.threads);
  faiss::IndexFlatIP quantizer(d);
  std::unique_ptr<faiss::IndexIVFFlat> ivf;
  faiss::Index* index = &quantizer;
  faiss::IndexFlatIP flat(d);
  if (n > p.ivf_above) {
    int64_t nlist = p.nlist > 0 ? p.nlist : std::max<int64_t>(1, std::llround(std::sqrt((double)n)));
    nlist = std::min<int64_t>(nlist, n);
    ivf = std::make_unique<faiss::IndexIVFFlat>(&quantizer, d, nlist, faiss::METRIC_INNER_PRODUCT);
    // Training sample: evenly strided rows, so the index depends only on the data.
    const int64_t train = std::min<int64_t>(n, 64 * nlist);
    std::vector<float> sample((size_t)(train * d));
    for (int64_t i = 0; i < train; ++i) {
      int64_t row = (int64_t)((__int128)i * n / train);
      std::copy(x + row * d, x + (row + 1) * d, sample.begin() + i * d);
    }
    ivf->cp.seed = 1234;
    ivf->train(train, sample.data());
    ivf->add(n, x);
    ivf->nprobe = std::min<int64_t>(p.nprobe, nlist);
    si.index = "IndexIVFFlat";
    si.nlist = nlist;
    si.nprobe = ivf->nprobe;
    si.train_rows = train;
    index = ivf.get();
  } else {
    flat.add(n, x);
    si.index = "IndexFlatIP";
    index = &flat;
  }
  // Faiss's range search keeps inner products strictly above the radius.
  const float radius = std::nextafter(p.min_cosine, -1.0f);
  for (int64_t q0 = 0; q0 < n; q0 += p.query_batch) {
    const int64_t nq = std::min(p.query_batch, n - q0);
    faiss::RangeSearchResult res(nq);
    index->range_search(nq, x + q0 * d, radius, &res);
    for (int64_t q = 0; q < nq; ++q) {
      const uint32_t a = (uint32_t)(q0 + q);
      for (size_t k = res.lims[q]; k < res.lims[q + 1]; ++k) {
        const int64_t b = res.labels[k];
        if (b < 0 || b == a || res.distances[k] < p.min_cosine) continue;
        pairs.push_back({std::min<uint32_t>(a, (uint32_t)b), std::max<uint32_t>(a, (uint32_t)b),
                         std::max(0.f, 1.f - res.distances[k])});
      }
    }
  }
  sort_unique(pairs);
  si.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (info) *info = si;
  return pairs;
}
}  // namespace

std::vector<Pair> embedding_pairs(const float* x, int64_t n, int64_t d, const EmbeddingSearchParams& p,
                                  EmbeddingSearchInfo* info) {
  // Identical vectors (byte copies embed identically) are chained to their first row and searched
  // once: a flood of one picture costs O(n), not O(n^2) result entries.
  auto t0 = std::chrono::steady_clock::now();
  const size_t row_bytes = (size_t)d * sizeof(float);
  std::vector<uint64_t> digest((size_t)n);
  for (int64_t i = 0; i < n; ++i) {
    uint64_t h = 1469598103934665603ull;  // FNV-1a
    const auto* bytes = reinterpret_cast<const unsigned char*>(x + i * d);
    for (size_t k = 0; k < row_bytes; ++k) h = (h ^ bytes[k]) * 1099511628211ull;
    digest[i] = h;
  }
  std::vector<uint32_t> order((size_t)n);
  for (uint32_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](uint32_t a, uint32_t b) {
    if (digest[a] != digest[b]) return digest[a] < digest[b];
    int c = std::memcmp(x + (int64_t)a * d, x + (int64_t)b * d, row_bytes);
    return c != 0 ? c < 0 : a < b;
  });
  std::vector<Pair> pairs;
  std::vector<uint32_t> first;  // distinct row -> its first index
  for (size_t k = 0; k < order.size(); ++k) {
    if (k > 0 && digest[order[k]] == digest[order[k - 1]] &&
        std::memcmp(x + (int64_t)order[k] * d, x + (int64_t)first.back() * d, row_bytes) == 0) {
      pairs.push_back({std::min(first.back(), order[k]), std::max(first.back(), order[k]), 0.f});
      continue;
    }
    first.push_back(order[k]);
  }
  std::vector<Pair> near;
  if (first.size() == (size_t)n) {
    near = search_rows(x, n, d, p, info);
  } else {
    std::sort(first.begin(), first.end());
    std::vector<float> distinct(first.size() * (size_t)d);
    for (size_t k = 0; k < first.size(); ++k)
      std::memcpy(distinct.data() + k * d, x + (int64_t)first[k] * d, row_bytes);
    near = search_rows(distinct.data(), (int64_t)first.size(), d, p, info);
    for (auto& pr : near) pr = {first[pr.a], first[pr.b], pr.distance};
  }
  pairs.insert(pairs.end(), near.begin(), near.end());
  sort_unique(pairs);
  if (info) {
    info->rows = n;
    info->distinct_rows = (int64_t)first.size();
    info->seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
  return pairs;
}

}  // namespace capforge::curate
