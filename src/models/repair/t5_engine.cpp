// capforge's ggml T5 engine behind SeqBackend (seq_backend.h). A wave's captions are encoded in
// chunks of padded captions; each caption's cross-attention keys/values are computed once, into
// its caption slot, and every decode step reads them in place (llama.cpp's T5 graph recomputes them
// from the stored encoder output at every llama_decode, about 2/3 of a step's work). The
// self-attention caches are per seq id; seq_cp copies a sequence's rows with memcpy, which is why
// this engine runs on the CPU backend only (its caches live in host memory).
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <stdexcept>

#include "core/log.h"
#include "ggml-alloc.h"
#include "models/ggml_util.h"
#include "models/repair/model.h"
#include "models/repair/seq_backend.h"
#include "models/repair/t5_graph.h"

namespace capforge::repair {

namespace {

constexpr int kChunkTokens = 2048;  // padded encoder tokens per encoder graph (more than one caption)
constexpr int kLenRound = 16;       // decoder cache lengths and bias spans, a multiple of this
constexpr int kMinRows = 2;         // rows per decode step at least (ggml's tiled GEMM needs 2)

struct Graph {  // a graph context's metadata arena and its allocator, reused across calls
  explicit Graph(ggml_backend_t backend)
      : alloc(ggml_gallocr_new(ggml_backend_get_default_buffer_type(backend))) {}
  ~Graph() { ggml_gallocr_free(alloc); }
  ggml_gallocr_t alloc;
  std::vector<uint8_t> meta;
};

class T5Backend : public SeqBackend {
 public:
  T5Backend(std::shared_ptr<const T5Weights> w, int threads, int per_caption, int capacity)
      : w_(std::move(w)), per_(per_caption), capacity_(capacity) {
    backend_ = init_backend(pick_device(false), threads);
    enc_graph_ = std::make_unique<Graph>(backend_);
    step_graph_ = std::make_unique<Graph>(backend_);
  }
  ~T5Backend() override {
    spdlog::debug(
        "T5 engine timing: {} captions encoded in {:.3f}s; {} decode steps in {:.3f}s ({} entries); {} "
        "sequence copies in {:.3f}s; caches allocated {} times",
        encoded_, encode_s_, steps_, step_s_, entries_total_, copies_, copy_s_, allocs_);
    step_graph_.reset();
    enc_graph_.reset();
    cache_.reset();
    if (backend_) ggml_backend_free(backend_);
  }

  bool encode(const std::vector<EncodeItem>& wave, std::string& err) override {
    try {
      Timer t(encode_s_);
      encode_wave(wave);
      encoded_ += (int64_t)wave.size();
      return true;
    } catch (const std::exception& e) {
      err = fmt::format("T5 encoder: {}", e.what());
      dirty_ = true;
      return false;
    }
  }
  void begin() override { entries_.clear(); }
  int pending() const override { return (int)entries_.size(); }
  int capacity() const override { return capacity_; }
  void add(llama_token token, llama_pos pos, llama_seq_id id, bool logits) override {
    entries_.push_back({token, pos, id, logits});
  }
  bool decode(std::string& err) override {
    try {
      Timer t(step_s_);
      step();
      ++steps_, entries_total_ += (int64_t)entries_.size();
      return true;
    } catch (const std::exception& e) {
      err = fmt::format("T5 decoder: {}", e.what());
      dirty_ = true;
      return false;
    }
  }
  const float* logits(int i) const override {
    if (i < 0 || (size_t)i >= row_of_.size() || row_of_[(size_t)i] < 0)
      throw std::logic_error(fmt::format("T5 engine: no logits for entry {}", i));
    return logits_.data() + (size_t)row_of_[(size_t)i] * (size_t)w_->cfg.vocab;
  }
  void seq_cp(llama_seq_id src, llama_seq_id dst) override {
    if (!cache_ || src == dst) return;
    if (src < 0 || dst < 0 || (size_t)src >= len_.size() || (size_t)dst >= len_.size())
      throw std::logic_error(fmt::format("T5 engine: seq_cp({}, {}) outside the wave", src, dst));
    Timer t(copy_s_);
    ++copies_;
    const int n = len_[(size_t)src];
    const size_t A = (size_t)w_->cfg.inner(), L = (size_t)cache_->max_len;
    for (size_t l = 0; l < cache_->k.size(); ++l)
      for (ggml_tensor* t : {cache_->k[l], cache_->v[l]}) {
        float* d = (float*)t->data;  // host memory: the CPU backend's buffer
        std::memcpy(d + (size_t)dst * L * A, d + (size_t)src * L * A, (size_t)n * A * sizeof(float));
      }
    len_[(size_t)dst] = n;
  }
  void seq_rm(llama_seq_id id) override {
    if (id >= 0 && (size_t)id < len_.size()) len_[(size_t)id] = 0;
  }
  void clear() override {
    entries_.clear();
    len_.clear();  // the caches stay allocated for the next wave (encode_wave)
  }

 private:
  struct Entry {
    llama_token token;
    llama_pos pos;
    llama_seq_id id;
    bool logits;
  };
  void encode_wave(const std::vector<EncodeItem>& wave);
  void step();
  struct Timer {  // adds its lifetime to `total`
    explicit Timer(double& total) : total(total), t0(std::chrono::steady_clock::now()) {}
    ~Timer() { total += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(); }
    double& total;
    std::chrono::steady_clock::time_point t0;
  };

  std::shared_ptr<const T5Weights> w_;
  int per_, capacity_;
  ggml_backend_t backend_ = nullptr;
  std::unique_ptr<Graph> enc_graph_, step_graph_;
  std::unique_ptr<T5Cache> cache_;
  std::vector<int> len_;      // per seq slot: decoder positions held
  std::vector<int> enc_len_;  // per caption slot: encoder tokens
  std::vector<Entry> entries_;
  std::vector<float> logits_;
  std::vector<int> row_of_;  // entry -> logits row
  // where the time goes (logged at debug level when the engine ends)
  double encode_s_ = 0, step_s_ = 0, copy_s_ = 0;
  int64_t encoded_ = 0, steps_ = 0, entries_total_ = 0, copies_ = 0, allocs_ = 0;
  bool dirty_ = false;  // non-finite logits (or a failure) since the caches were last cleared
};

void T5Backend::encode_wave(const std::vector<EncodeItem>& wave) {
  const T5Config& c = w_->cfg;
  int captions = 0, max_len = 1, enc_max = 1;
  std::vector<int> slot_of;
  for (const EncodeItem& it : wave) {
    const std::vector<llama_seq_id>& ids = *it.ids;
    if ((int)ids.size() != per_ || ids[0] % per_ != 0)
      throw std::logic_error("a caption's seq ids must be an aligned block");
    for (size_t k = 0; k < ids.size(); ++k)
      if (ids[k] != ids[0] + (int)k) throw std::logic_error("a caption's seq ids must be contiguous");
    if (it.tokens->empty()) throw std::logic_error("a caption without encoder tokens");
    for (llama_token t : *it.tokens)
      if (t < 0 || t >= c.vocab) throw std::runtime_error(fmt::format("token {} outside the vocabulary", t));
    slot_of.push_back(ids[0] / per_);
    captions = std::max(captions, slot_of.back() + 1);
    max_len = std::max(max_len, it.max_len);
    enc_max = std::max(enc_max, (int)it.tokens->size());
  }
  // reuse the last wave's caches when they fit and are not much larger (fresh pages cost more than
  // mapped ones). Attention reads a sequence's or caption's own rows only; a cache that saw
  // non-finite logits is cleared all the same.
  max_len = round_up(max_len, kLenRound);  // fewer reallocations as waves' lengths vary
  const size_t need = T5Cache::bytes(c, captions, per_, max_len, enc_max);
  if (cache_ && cache_->captions >= captions && cache_->max_len >= max_len && cache_->enc_len >= enc_max &&
      ggml_backend_buffer_get_size(cache_->buf) <= 2 * need + (16u << 20)) {
    if (dirty_) cache_->clear();
  } else {
    cache_.reset();
    cache_ = std::make_unique<T5Cache>(c, captions, per_, max_len, enc_max, backend_);
    ++allocs_;
  }
  dirty_ = false;
  len_.assign((size_t)cache_->slots(), 0);
  enc_len_.assign((size_t)cache_->captions, 1);  // a slot without a caption: one harmless key
  for (size_t i = 0; i < wave.size(); ++i) enc_len_[(size_t)slot_of[i]] = (int)wave[i].tokens->size();

  // chunks of captions of similar length (sorted, stable), each padded to its longest: less
  // padding to run through the encoder than the wave's order would give
  std::vector<size_t> order(wave.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return wave[a].tokens->size() < wave[b].tokens->size(); });
  const int64_t H = c.n_head;
  for (size_t first = 0; first < order.size();) {
    size_t end = first;
    int Le = 0;
    while (end < order.size()) {
      const int le = std::max(Le, (int)wave[order[end]].tokens->size());
      if (end > first && (int64_t)le * (int64_t)(end - first + 1) > kChunkTokens) break;
      Le = le;
      ++end;
    }
    const int B = (int)(end - first);
    std::vector<int> slots, lens;
    for (size_t i = first; i < end; ++i) {
      slots.push_back(slot_of[order[i]]);
      lens.push_back((int)wave[order[i]].tokens->size());
    }
    std::vector<int32_t> tokens((size_t)Le * B, 0);
    std::vector<float> bias((size_t)Le * Le * H, 0.0f);
    for (int b = 0; b < B; ++b) {
      const std::vector<llama_token>& t = *wave[order[first + (size_t)b]].tokens;
      std::copy(t.begin(), t.end(), tokens.begin() + (long)b * Le);
      // padding repeats the caption's last token (not token 0, whose embedding a broken model may
      // hold non-finite); its outputs are never read
      std::fill(tokens.begin() + (long)b * Le + (long)t.size(), tokens.begin() + (long)(b + 1) * Le,
                t.back());
    }
    for (int q = 0; q < Le; ++q)
      for (int k = 0; k < Le; ++k) {
        const size_t bucket = (size_t)t5_position_bucket(k, q, c.buckets, true);
        for (int64_t h = 0; h < H; ++h) bias[((size_t)h * Le + q) * Le + k] = w_->enc_bias[bucket * H + h];
      }
    compute_graph(
        backend_, enc_graph_->alloc, enc_graph_->meta, t5_encode_nodes(c, slots.size()), "T5 encoder",
        [&](ggml_context* ctx, ggml_cgraph* gf) {
          return build_t5_encode(ctx, gf, *w_, *cache_, Le, slots, lens);
        },
        [&](T5EncodeGraph& g) {
          ggml_backend_tensor_set(g.tokens, tokens.data(), 0, ggml_nbytes(g.tokens));
          ggml_backend_tensor_set(g.bias, bias.data(), 0, ggml_nbytes(g.bias));
          ggml_backend_tensor_set(g.lens, lens.data(), 0, ggml_nbytes(g.lens));
        },
        [](T5EncodeGraph&) {});
    first = end;
  }
}

void T5Backend::step() {
  if (!cache_) throw std::logic_error("decode before encode");
  if (entries_.empty()) {
    row_of_.clear();
    return;
  }
  const T5Config& c = w_->cfg;
  const int P = cache_->slots(), Lmax = cache_->max_len, n = (int)entries_.size();
  const int64_t H = c.n_head, C = per_;
  std::vector<int32_t> tokens, cross, want, pos_of((size_t)P, -1);
  std::vector<int64_t> rows;
  int span = 1;
  row_of_.assign((size_t)n, -1);
  for (int i = 0; i < n; ++i) {
    const Entry& e = entries_[(size_t)i];
    if (e.id < 0 || e.id >= P || (size_t)e.id >= len_.size())
      throw std::logic_error(fmt::format("seq id {} outside the wave", e.id));
    // the next position of the sequence only: rows between its length and pos would be another
    // caption's (the caches are reused across waves)
    if (e.pos != len_[(size_t)e.id])
      throw std::logic_error(fmt::format("seq {}: position {} where its cache holds {} tokens", e.id, e.pos,
                                         len_[(size_t)e.id]));
    if (e.pos < 0 || e.pos >= Lmax)
      throw std::logic_error(fmt::format("decoder position {} beyond the cache ({})", e.pos, Lmax));
    if (pos_of[(size_t)e.id] >= 0) throw std::logic_error("two entries for one sequence in a step");
    if (e.token < 0 || e.token >= c.vocab)
      throw std::runtime_error(fmt::format("token {} outside the vocabulary", e.token));
    pos_of[(size_t)e.id] = e.pos;
    tokens.push_back(e.token);
    const int slot = e.id / (int)C;
    cross.push_back(slot);
    cross.push_back(enc_len_[(size_t)slot]);
    rows.push_back((int64_t)e.id * Lmax + e.pos);
    if (e.logits) row_of_[(size_t)i] = (int)want.size(), want.push_back(i);
    span = std::max(span, (int)e.pos + 1);
  }
  span = std::min(Lmax, round_up(span, kLenRound));  // the bias rows' width: fewer graph shapes
  // A lone entry runs as two identical rows (the second writes the same cache row with the same
  // values and is never read): ggml's matrix products take another path, which rounds otherwise,
  // for a single row than for several, and a sequence's output must not depend on whether it
  // decodes alone (the end of a wave, --repair-parallel 1). The logits likewise.
  const int rows_n = std::max(n, kMinRows);
  for (int i = n; i < rows_n; ++i) {
    tokens.push_back(tokens[0]);
    cross.push_back(cross[0]);
    cross.push_back(cross[1]);
    rows.push_back(rows[0]);
  }
  // self-attention: the decoder's position bias for keys up to the entry's position (f32, added
  // to the scores exactly); the rest of each row is never read
  std::vector<float> mask((size_t)span * H * rows_n, -INFINITY);
  for (int i = 0; i < rows_n; ++i) {
    const int qp = entries_[(size_t)(i < n ? i : 0)].pos;
    for (int k = 0; k <= qp; ++k) {
      const size_t bucket = (size_t)t5_position_bucket(k, qp, c.buckets, false);
      for (int64_t h = 0; h < H; ++h) mask[((size_t)i * H + h) * span + k] = w_->dec_bias[bucket * H + h];
    }
  }
  const int m = (int)want.size();
  while ((int)want.size() < kMinRows) want.push_back(m ? want[0] : 0);  // none read beyond m
  compute_graph(
      backend_, step_graph_->alloc, step_graph_->meta, t5_step_nodes(c), "T5 decoder",
      [&](ggml_context* ctx, ggml_cgraph* gf) {
        return build_t5_step(ctx, gf, *w_, *cache_, rows_n, span, (int)want.size());
      },
      [&](T5StepGraph& g) {
        ggml_backend_tensor_set(g.tokens, tokens.data(), 0, ggml_nbytes(g.tokens));
        ggml_backend_tensor_set(g.rows, rows.data(), 0, ggml_nbytes(g.rows));
        ggml_backend_tensor_set(g.cross, cross.data(), 0, ggml_nbytes(g.cross));
        ggml_backend_tensor_set(g.mask, mask.data(), 0, ggml_nbytes(g.mask));
        ggml_backend_tensor_set(g.out, want.data(), 0, ggml_nbytes(g.out));
      },
      [&](T5StepGraph& g) {
        if (m == 0) return;
        logits_.resize((size_t)ggml_nelements(g.logits));
        ggml_backend_tensor_get(g.logits, logits_.data(), 0, ggml_nbytes(g.logits));
        for (float v : logits_) dirty_ = dirty_ || !std::isfinite(v);
      });
  for (const Entry& e : entries_) len_[(size_t)e.id] = std::max(len_[(size_t)e.id], (int)e.pos + 1);
}

}  // namespace

std::unique_ptr<SeqBackend> make_t5_backend(const LlamaRepairModel& model, const RepairParams& params,
                                            int ids_per_caption, int capacity) {
  if (!model.t5w) throw std::logic_error("make_t5_backend: the model was loaded without its T5 weights");
  return std::make_unique<T5Backend>(model.t5w, params.threads, ids_per_caption, capacity);
}

}  // namespace capforge::repair
