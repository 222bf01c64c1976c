// The int8 decoder's key/value cache and its attention (own_decoder.cpp): for each layer and
// sequence slot, a fixed block of positions. Keys are stored transposed in groups of 16 positions
// ([kv head][position / 16][head dim][16]), so that a query's scores for 16 keys come from 16-wide
// multiply-adds with no horizontal sums; values are rows ([position][kv head x head dim]). f32
// throughout, in lazily zeroed pages (only the positions written are ever touched).
//
// attend() is one (sequence, kv head) task: the group of query heads sharing that kv head, over
// positions 0..n-1; a task's result depends only on its inputs (AVX-512 where the head size is a
// multiple of 16, else plain loops).
#pragma once

#include <cstdint>
#include <cstdlib>
#include <memory>
#include <vector>

namespace capforge::vlm {

class LmCache {
 public:
  // Throws std::runtime_error when the memory cannot be had.
  LmCache(int layers, int slots, int cells, int kv_heads, int head_dim);

  int cells() const { return cells_; }
  // Writes position `pos` of `slot` in `layer`: k [kv_heads][head_dim] (head h at k + h * k_stride
  // floats), v [kv_heads * head_dim].
  void store(int layer, int slot, int pos, const float* k, int64_t k_stride, const float* v);
  // dst's first n positions (every layer) = src's.
  void copy(int src, int dst, int n);
  // out[g] (head_dim floats at out + g * head_dim) = softmax(scale q_g . K^T) V over positions
  // 0..n-1 of `slot`'s kv head `kh`, for the group's query heads q_g (at q + g * q_stride).
  void attend(int layer, int slot, int kh, int n, const float* q, int64_t q_stride, int group, float scale,
              float* out) const;

 private:
  struct Free {
    void operator()(float* p) const { std::free(p); }
  };
  float* keys(int layer, int slot, int kh) const;
  float* values(int layer, int slot) const;

  int layers_, slots_, cells_, kv_heads_, hd_;
  size_t slot_floats_;  // per layer and slot, keys or values: cells * kv_heads * hd
  std::vector<std::unique_ptr<float, Free>> k_, v_;
};

}  // namespace capforge::vlm
