#include "models/gguf_hparams.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <optional>
#include <stdexcept>

#include "gguf.h"

namespace capforge {

namespace {

constexpr int64_t kMaxLayers = 512, kMaxExperts = 1024;  // llama-hparams.h's caps

// Element i of data of type t when t is an integer type (a u64 over INT64_MAX saturates), else
// nullopt.
std::optional<int64_t> int_at(gguf_type t, const void* data, size_t i) {
  switch (t) {
    case GGUF_TYPE_UINT8:
      return ((const uint8_t*)data)[i];
    case GGUF_TYPE_INT8:
      return ((const int8_t*)data)[i];
    case GGUF_TYPE_UINT16:
      return ((const uint16_t*)data)[i];
    case GGUF_TYPE_INT16:
      return ((const int16_t*)data)[i];
    case GGUF_TYPE_UINT32:
      return ((const uint32_t*)data)[i];
    case GGUF_TYPE_INT32:
      return ((const int32_t*)data)[i];
    case GGUF_TYPE_UINT64:
      return (int64_t)std::min<uint64_t>(((const uint64_t*)data)[i], (uint64_t)INT64_MAX);
    case GGUF_TYPE_INT64:
      return ((const int64_t*)data)[i];
    default:
      return std::nullopt;
  }
}

}  // namespace

std::optional<int64_t> gguf_integer(gguf_context* g, int64_t key_id) {
  const gguf_type t = gguf_get_kv_type(g, key_id);
  if (t == GGUF_TYPE_ARRAY || t == GGUF_TYPE_STRING) return std::nullopt;  // no single value
  return int_at(t, gguf_get_val_data(g, key_id), 0);
}

namespace {

struct Keys {
  gguf_context* g;
  std::string what, arch;

  [[noreturn]] void fail(const std::string& key, const std::string& why) const {
    throw std::runtime_error(fmt::format("{}: {} {}", what, key, why));
  }
  int64_t find(const std::string& key) const { return gguf_find_key(g, key.c_str()); }
  // An integer key; `per_block`: a number or an array of numbers (one per block), read as its
  // largest. nullopt when absent.
  std::optional<int64_t> integer(const std::string& suffix, bool per_block = false) const {
    const std::string key = arch + "." + suffix;
    const int64_t k = find(key);
    if (k < 0) return std::nullopt;
    if (const auto v = gguf_integer(g, k)) return v;
    const gguf_type t = gguf_get_kv_type(g, k);
    const uint64_t zero = 0;  // int_at(type, &zero, 0): whether the elements are integers
    if (per_block && t == GGUF_TYPE_ARRAY && int_at(gguf_get_arr_type(g, k), &zero, 0)) {
      int64_t hi = 0;
      for (size_t i = 0; i < gguf_get_arr_n(g, k); ++i)
        hi = std::max(hi, *int_at(gguf_get_arr_type(g, k), gguf_get_arr_data(g, k), i));
      return hi;
    }
    fail(key, fmt::format("has type {}, expected an integer", gguf_type_name(t)));
  }
  void range(const std::string& suffix, std::optional<int64_t> v, int64_t lo, int64_t hi) const {
    if (v && (*v < lo || *v > hi))
      fail(arch + "." + suffix, fmt::format("= {} is outside {}..{}", *v, lo, hi));
  }
};

}  // namespace

void check_llama_hparams(gguf_context* g, const std::string& what) {
  Keys K{g, what, ""};
  if (const int64_t k = K.find("general.architecture"); k >= 0 && gguf_get_kv_type(g, k) == GGUF_TYPE_STRING)
    K.arch = gguf_get_val_str(g, k);
  if (K.arch.empty()) return;  // the callers report a missing architecture

  const auto blocks = K.integer("block_count");
  K.range("block_count", blocks, 1, kMaxLayers);
  K.range("nextn_predict_layers", K.integer("nextn_predict_layers"), 0, blocks.value_or(kMaxLayers));
  K.range("decoder_block_count", K.integer("decoder_block_count"), 1, kMaxLayers);

  int64_t experts = K.integer("expert_count").value_or(0);
  K.range("expert_count", experts, 0, kMaxExperts);
  int64_t used = K.integer("expert_used_count", true).value_or(0);
  if ((K.arch == "hunyuan-dense" || K.arch == "hunyuan_vl") && experts <= 1)
    experts = used = 0;  // llama.cpp zeroes both for these dense models
  const int64_t groups = K.integer("expert_group_count").value_or(0);
  const int64_t group_used = K.integer("expert_group_used_count").value_or(0);
  if (experts > 0) {
    K.range("expert_used_count", used, 1, experts);
    K.range("expert_group_count", groups, 0, experts - 1);
    if (groups > 1) {
      if (experts % groups != 0)
        K.fail(K.arch + ".expert_group_count",
               fmt::format("= {} does not divide expert_count {}", groups, experts));
      K.range("expert_group_used_count", group_used, 1, groups - 1);
    }
  } else {
    if (used != 0)
      K.fail(K.arch + ".expert_used_count", fmt::format("= {} without experts (expert_count 0)", used));
    if (groups != 0)
      K.fail(K.arch + ".expert_group_count", fmt::format("= {} without experts (expert_count 0)", groups));
  }

  if (const int64_t k = K.find(K.arch + ".rope.scaling.type"); k >= 0) {
    const std::string key = K.arch + ".rope.scaling.type";
    if (gguf_get_kv_type(g, k) != GGUF_TYPE_STRING) K.fail(key, "is not a string");
    const std::string v = gguf_get_val_str(g, k);
    if (v != "none" && v != "linear" && v != "yarn" && v != "longrope")
      K.fail(key, fmt::format("= '{}' is not one of none, linear, yarn, longrope", v));
  }
  K.range("context_length", K.integer("context_length"), 1, INT32_MAX);
  for (const char* suffix : {"attention.layer_norm_epsilon", "attention.layer_norm_rms_epsilon"}) {
    const std::string key = K.arch + "." + suffix;
    const int64_t k = K.find(key);
    if (k < 0) continue;
    if (gguf_get_kv_type(g, k) != GGUF_TYPE_FLOAT32) K.fail(key, "is not a FLOAT32");
    const float eps = gguf_get_val_f32(g, k);
    if (!std::isfinite(eps) || eps < 0) K.fail(key, fmt::format("= {} is not a finite value >= 0", eps));
  }
  if (const auto start = K.integer("decoder_start_token_id")) {
    const int64_t tokens = gguf_find_key(g, "tokenizer.ggml.tokens");
    const int64_t n = tokens >= 0 ? (int64_t)gguf_get_arr_n(g, tokens) : 0;
    if (*start < -1 || *start >= n)
      K.fail(K.arch + ".decoder_start_token_id",
             fmt::format("= {} is not a token of the {}-token vocabulary", *start, n));
  }
}

}  // namespace capforge
