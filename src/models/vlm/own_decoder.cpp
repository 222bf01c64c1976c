// capforge's decoder for llama-architecture text models (LmDecoder, lm_decoder.h): the graph of
// the pinned llama.cpp's src/models/llama.cpp (RMS norm, rope in llama.cpp's NORM mode, grouped-
// query causal attention, SwiGLU), its products on lm_weights' int8 blocks, on ggml's CPU backend.
// The caches are f32, a fixed block of rows per sequence (row = position), in lazily zeroed pages.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

#include "core/log.h"
#include "ggml-alloc.h"
#include "ggml-cpu.h"
#include "models/vlm/lm_cache.h"
#include "models/vlm/lm_decoder.h"
#include "models/vlm/lm_weights.h"
#include "models/vlm/model.h"

namespace capforge::vlm {

namespace {

class OwnDecoder : public LmDecoder {
 public:
  OwnDecoder(std::shared_ptr<const LmWeights> w, const VlmModel& m, int parallel, int seq_cells, int batch,
             int threads)
      : w_(std::move(w)),
        model_(m),
        slots_(parallel),
        cells_(seq_cells),
        batch_(std::max(batch, 1)),
        cache_(w_->cfg.n_layer, parallel, seq_cells, w_->cfg.n_head_kv, w_->cfg.head_dim) {
    const LmConfig& c = w_->cfg;
    if (mtmd_decode_use_mrope(m.mtmd))
      throw std::runtime_error(
          "--lm-engine int8 cannot run this projector (M-RoPE positions); use --lm-engine llama");
    kv_ = (int64_t)c.n_head_kv * c.head_dim;
    len_.assign((size_t)slots_, 0);
    ops_.resize((size_t)c.n_layer);
    for (int l = 0; l < c.n_layer; ++l) ops_[(size_t)l] = {this, l};
    x_.resize((size_t)batch_ * (size_t)c.n_embd);
    backend_ = ggml_backend_cpu_init();
    if (!backend_) throw std::runtime_error("cannot start ggml's CPU backend");
    ggml_backend_cpu_set_n_threads(backend_, threads);
    alloc_ = ggml_gallocr_new(ggml_backend_get_default_buffer_type(backend_));
  }
  ~OwnDecoder() override {
    ggml_gallocr_free(alloc_);
    ggml_backend_free(backend_);
  }

  void decode(const std::vector<LmEntry>& entries) override {
    const int D = w_->cfg.n_embd;
    for (size_t at = 0; at < entries.size(); at += (size_t)batch_) {
      const size_t n = std::min(entries.size() - at, (size_t)batch_);
      std::vector<LmEntry> part(entries.begin() + (long)at, entries.begin() + (long)(at + n));
      for (size_t i = 0; i < n; ++i) {
        if (part[i].token < 0 || part[i].token >= w_->cfg.n_vocab)
          throw std::runtime_error(
              fmt::format("int8 decoder: token {} is outside the vocabulary", part[i].token));
        w_->embed(part[i].token, x_.data() + i * (size_t)D);
      }
      run(part, (int)at);
    }
  }
  const float* logits(int i) override {
    const int row = want_[(size_t)i];
    if (row < 0) throw std::logic_error("int8 decoder: logits of an entry that did not ask for them");
    return logits_.data() + (size_t)row * (size_t)w_->cfg.n_vocab;
  }
  llama_pos decode_image(const mtmd_input_chunk* chunk, const float* embd, llama_pos pos,
                         llama_seq_id seq) override {
    if (mtmd_decode_use_non_causal(model_.mtmd, chunk))
      throw std::runtime_error("--lm-engine int8 cannot run this projector (non-causal image attention)");
    const int D = w_->cfg.n_embd;
    const int n = (int)mtmd_input_chunk_get_n_tokens(chunk);
    want_.clear();
    for (int at = 0; at < n; at += batch_) {
      const int m = std::min(n - at, batch_);
      std::vector<LmEntry> part((size_t)m);
      for (int i = 0; i < m; ++i) part[(size_t)i] = {0, pos + at + i, seq, false};
      std::memcpy(x_.data(), embd + (size_t)at * (size_t)D, (size_t)m * (size_t)D * sizeof(float));
      run(part, 0);
    }
    return pos + n;
  }
  void seq_cp(llama_seq_id src, llama_seq_id dst) override {
    check_slot(src), check_slot(dst);
    cache_.copy(src, dst, len_[(size_t)src]);
    len_[(size_t)dst] = len_[(size_t)src];
  }
  void seq_rm(llama_seq_id seq) override {
    check_slot(seq);
    len_[(size_t)seq] = 0;
  }

 private:
  struct LayerOp {
    OwnDecoder* d;
    int layer;
  };

  void check_slot(llama_seq_id s) const {
    if (s < 0 || s >= slots_)
      throw std::logic_error(fmt::format("int8 decoder: sequence {} out of range", s));
  }

  // Evaluates `part` (x_ holds its input rows); entry i's logits row (if asked) lands in logits_
  // for global index first + i.
  void run(const std::vector<LmEntry>& part, int first);

  // ggml op: writes src[0] (roped K [hd, Hkv, M]) and src[1] (V [KV, M]) into the layer's cache rows.
  static void store_op(ggml_tensor* dst, int ith, int nth, void* ud);
  // ggml op: dst [hd*H, M] = causal attention of src[0] (roped Q [hd, H, M]) over each entry's own
  // cache rows 0..pos (src[1]: the store op, for order).
  static void attend_op(ggml_tensor* dst, int ith, int nth, void* ud);

  std::shared_ptr<const LmWeights> w_;
  const VlmModel& model_;
  int slots_, cells_, batch_;
  int64_t kv_ = 0;
  LmCache cache_;
  std::vector<int> len_;  // per slot: positions written
  std::vector<LayerOp> ops_;
  const std::vector<LmEntry>* cur_ = nullptr;  // the entries being evaluated
  std::vector<float> x_;                       // their input rows
  std::vector<int> want_;                      // per entry: its logits row, or -1
  std::vector<float> logits_;
  ggml_backend_t backend_ = nullptr;
  ggml_gallocr_t alloc_ = nullptr;
  std::vector<uint8_t> meta_;
};

void OwnDecoder::store_op(ggml_tensor* dst, int ith, int nth, void* ud) {
  const auto& op = *(const LayerOp*)ud;
  OwnDecoder& d = *op.d;
  const ggml_tensor* k = dst->src[0];
  const ggml_tensor* v = dst->src[1];
  const auto& es = *d.cur_;
  const int64_t M = (int64_t)es.size();
  for (int64_t i = M * ith / nth; i < M * (ith + 1) / nth; ++i) {
    const LmEntry& e = es[(size_t)i];
    d.cache_.store(op.layer, e.seq, e.pos, (const float*)((const char*)k->data + i * k->nb[2]),
                   (int64_t)(k->nb[1] / sizeof(float)), (const float*)((const char*)v->data + i * v->nb[1]));
  }
}

void OwnDecoder::attend_op(ggml_tensor* dst, int ith, int nth, void* ud) {
  const auto& op = *(const LayerOp*)ud;
  OwnDecoder& d = *op.d;
  const ggml_tensor* q = dst->src[0];
  const auto& es = *d.cur_;
  const int hd = (int)q->ne[0], H = (int)q->ne[1], Hk = d.w_->cfg.n_head_kv, group = H / Hk;
  const float scale = 1.f / std::sqrt((float)hd);
  const int64_t tasks = (int64_t)es.size() * Hk;  // (entry, kv head): its group of query heads
  for (int64_t t = tasks * ith / nth; t < tasks * (ith + 1) / nth; ++t) {
    const int64_t i = t / Hk;
    const int kh = (int)(t % Hk);
    const LmEntry& e = es[(size_t)i];
    const auto* qh = (const float*)((const char*)q->data + i * q->nb[2] + (size_t)(kh * group) * q->nb[1]);
    float* out = (float*)((char*)dst->data + i * dst->nb[1]) + (size_t)(kh * group * hd);
    d.cache_.attend(op.layer, e.seq, kh, e.pos + 1, qh, (int64_t)(q->nb[1] / sizeof(float)), group, scale,
                    out);
  }
}

void OwnDecoder::run(const std::vector<LmEntry>& part, int first) {
  const LmConfig& c = w_->cfg;
  const int M = (int)part.size(), D = c.n_embd, hd = c.head_dim, H = c.n_head, Hk = c.n_head_kv;
  const int64_t Q = (int64_t)H * hd;
  std::vector<int32_t> pos((size_t)M), out;
  std::vector<int> len = len_;  // committed once the call succeeds
  for (int i = 0; i < M; ++i) {
    const LmEntry& e = part[(size_t)i];
    check_slot(e.seq);
    if (e.pos < 0 || e.pos >= cells_ || e.pos > len[(size_t)e.seq])
      throw std::runtime_error(
          fmt::format("int8 decoder: position {} of sequence {} is out of order or past its {} cells", e.pos,
                      e.seq, cells_));
    len[(size_t)e.seq] = e.pos + 1;
    pos[(size_t)i] = e.pos;
    if (e.logits) out.push_back(i);
  }
  if (first == 0) want_.clear();
  want_.resize((size_t)first + (size_t)M, -1);
  const size_t nodes = (size_t)c.n_layer * 32 + 64;
  meta_.resize(ggml_tensor_overhead() * nodes + ggml_graph_overhead_custom(nodes, false));
  ggml_context* ctx = ggml_init({meta_.size(), meta_.data(), true});
  std::unique_ptr<ggml_context, void (*)(ggml_context*)> owner(ctx, ggml_free);
  ggml_cgraph* gf = ggml_new_graph_custom(ctx, nodes, false);
  ggml_tensor* xin = ggml_new_tensor_2d(ctx, GGML_TYPE_F32, D, M);
  ggml_tensor* tpos = ggml_new_tensor_1d(ctx, GGML_TYPE_I32, M);
  ggml_set_input(xin), ggml_set_input(tpos);
  ggml_tensor* x = xin;
  for (int l = 0; l < c.n_layer; ++l) {
    const LmLayer& L = w_->layers[(size_t)l];
    ggml_tensor* h = ggml_mul(ctx, ggml_rms_norm(ctx, x, c.eps), L.attn_norm);
    ggml_tensor* qkv = L.qkv.apply(ctx, h);
    const size_t f = sizeof(float);
    ggml_tensor* q = ggml_view_3d(ctx, qkv, hd, H, M, hd * f, qkv->nb[1], 0);
    ggml_tensor* k = ggml_view_3d(ctx, qkv, hd, Hk, M, hd * f, qkv->nb[1], (size_t)Q * f);
    ggml_tensor* v = ggml_view_2d(ctx, qkv, kv_, M, qkv->nb[1], (size_t)(Q + kv_) * f);
    q = ggml_rope_ext(ctx, q, tpos, nullptr, hd, 0, c.n_ctx_train, c.rope_base, 1.f, 0.f, 1.f, 32.f, 1.f);
    k = ggml_rope_ext(ctx, k, tpos, nullptr, hd, 0, c.n_ctx_train, c.rope_base, 1.f, 0.f, 1.f, 32.f, 1.f);
    ggml_tensor* kv[2] = {k, v};
    ggml_tensor* stored =
        ggml_custom_4d(ctx, GGML_TYPE_F32, 1, 1, 1, 1, kv, 2, store_op, GGML_N_TASKS_MAX, &ops_[(size_t)l]);
    ggml_tensor* qs[2] = {q, stored};
    ggml_tensor* att =
        ggml_custom_4d(ctx, GGML_TYPE_F32, Q, M, 1, 1, qs, 2, attend_op, GGML_N_TASKS_MAX, &ops_[(size_t)l]);
    x = L.o.apply(ctx, att, x);
    h = ggml_mul(ctx, ggml_rms_norm(ctx, x, c.eps), L.ffn_norm);
    ggml_tensor* gu = L.gate_up.apply(ctx, h);
    ggml_tensor* act = ggml_swiglu_split(ctx, ggml_view_2d(ctx, gu, c.n_ff, M, gu->nb[1], 0),
                                         ggml_view_2d(ctx, gu, c.n_ff, M, gu->nb[1], (size_t)c.n_ff * f));
    x = L.down.apply(ctx, act, x);
  }
  ggml_tensor* logits = nullptr;
  ggml_tensor* rows = nullptr;
  if (!out.empty()) {
    rows = ggml_new_tensor_1d(ctx, GGML_TYPE_I32, (int64_t)out.size());
    ggml_set_input(rows);
    ggml_tensor* last = ggml_get_rows(ctx, x, rows);
    logits = w_->head.apply(ctx, ggml_mul(ctx, ggml_rms_norm(ctx, last, c.eps), w_->output_norm));
    ggml_set_output(logits);
    ggml_build_forward_expand(gf, logits);
  } else {
    ggml_set_output(x);
    ggml_build_forward_expand(gf, x);
  }
  if (!ggml_gallocr_alloc_graph(alloc_, gf))
    throw std::runtime_error("int8 decoder: cannot allocate its graph");
  ggml_backend_tensor_set(xin, x_.data(), 0, (size_t)M * (size_t)D * sizeof(float));
  ggml_backend_tensor_set(tpos, pos.data(), 0, pos.size() * sizeof(int32_t));
  if (rows) ggml_backend_tensor_set(rows, out.data(), 0, out.size() * sizeof(int32_t));
  cur_ = &part;
  const ggml_status st = ggml_backend_graph_compute(backend_, gf);
  cur_ = nullptr;
  if (st != GGML_STATUS_SUCCESS) throw std::runtime_error("int8 decoder: computing a step failed");
  len_ = std::move(len);
  if (first == 0) logits_.clear();
  if (!logits) return;
  const size_t V = (size_t)c.n_vocab, base = logits_.size() / V;
  logits_.resize(logits_.size() + out.size() * V);
  ggml_backend_tensor_get(logits, logits_.data() + base * V, 0, out.size() * V * sizeof(float));
  for (size_t j = 0; j < out.size(); ++j) want_[(size_t)first + (size_t)out[j]] = (int)(base + j);
}

}  // namespace

std::unique_ptr<LmDecoder> own_decoder(std::shared_ptr<const LmWeights> weights, const VlmModel& model,
                                       int parallel, int seq_cells, int batch, int threads) {
  return std::make_unique<OwnDecoder>(std::move(weights), model, parallel, seq_cells, batch, threads);
}

}  // namespace capforge::vlm
