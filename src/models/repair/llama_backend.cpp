// The libllama engine behind SeqBackend (seq_backend.h): one llama context with many sequences,
// a unified KV cache (see engine.h for how T5 waves use llama_encode / llama_decode).
#include <fmt/format.h>

#include <algorithm>
#include <stdexcept>
#include <thread>

#include "core/cpus.h"
#include "models/repair/model.h"
#include "models/repair/seq_backend.h"

namespace capforge::repair {

namespace {

class LlamaBackend : public SeqBackend {
 public:
  LlamaBackend(const LlamaRepairModel& m, const RepairParams& params, const LlamaContextShape& s)
      : n_batch_(s.n_batch) {
    llama_context_params cp = llama_context_default_params();
    cp.n_ctx = (uint32_t)s.n_ctx;
    cp.n_batch = (uint32_t)s.n_batch;
    cp.n_ubatch = (uint32_t)s.n_ubatch;
    cp.n_seq_max = (uint32_t)s.n_seq_max;
    cp.kv_unified = true;  // seq_cp shares cells; T5's cross-attention needs unsplit ubatches
    cp.type_k = cp.type_v = params.kv_type == "f32" ? GGML_TYPE_F32 : GGML_TYPE_F16;
    cp.flash_attn_type = params.flash_attn ? LLAMA_FLASH_ATTN_TYPE_ENABLED : LLAMA_FLASH_ATTN_TYPE_DISABLED;
    int threads = params.threads > 0 ? params.threads : available_cpus();
    cp.n_threads = cp.n_threads_batch = threads;
    cp.no_perf = true;
    ctx_ = llama_init_from_model(m.model, cp);
    if (!ctx_)
      throw std::runtime_error(
          fmt::format("cannot create a llama context for repair model {} ({} cells)", m.path, s.n_ctx));
    batch_ = llama_batch_init(s.n_batch, 0, s.ids_per_entry);
  }
  ~LlamaBackend() override {
    llama_batch_free(batch_);
    if (ctx_) llama_free(ctx_);
  }

  bool encode(const std::vector<EncodeItem>& wave, std::string& err) override {
    // one llama_encode for the wave: each caption's tokens at positions 0..n-1, tagged with every
    // seq id its beams may use (the decoder sees encoder tokens tagged with its own id)
    batch_.n_tokens = 0;
    for (const EncodeItem& it : wave)
      for (size_t k = 0; k < it.tokens->size(); ++k) {
        int i = batch_.n_tokens++;
        batch_.token[i] = (*it.tokens)[k];
        batch_.pos[i] = (llama_pos)k;
        batch_.n_seq_id[i] = (int32_t)it.ids->size();
        for (size_t s = 0; s < it.ids->size(); ++s) batch_.seq_id[i][s] = (*it.ids)[s];
        batch_.logits[i] = true;
      }
    int rc = llama_encode(ctx_, batch_);
    batch_.n_tokens = 0;
    if (rc != 0) {
      err = fmt::format("llama_encode failed ({})", rc);
      return false;
    }
    return true;
  }
  void begin() override { batch_.n_tokens = 0; }
  int pending() const override { return batch_.n_tokens; }
  int capacity() const override { return n_batch_; }
  void add(llama_token token, llama_pos pos, llama_seq_id id, bool logits) override {
    int i = batch_.n_tokens++;
    batch_.token[i] = token;
    batch_.pos[i] = pos;
    batch_.n_seq_id[i] = 1;
    batch_.seq_id[i][0] = id;
    batch_.logits[i] = logits;
  }
  bool decode(std::string& err) override {
    if (int rc = llama_decode(ctx_, batch_); rc != 0) {
      err = fmt::format("llama_decode failed ({})", rc);
      return false;
    }
    return true;
  }
  const float* logits(int i) const override { return llama_get_logits_ith(ctx_, i); }
  void seq_cp(llama_seq_id src, llama_seq_id dst) override {
    // in a unified KV cache this only tags src's cells with dst, nothing is copied
    llama_memory_seq_cp(llama_get_memory(ctx_), src, dst, -1, -1);
  }
  void seq_rm(llama_seq_id id) override { llama_memory_seq_rm(llama_get_memory(ctx_), id, -1, -1); }
  void clear() override { llama_memory_clear(llama_get_memory(ctx_), false); }  // metadata only

 private:
  llama_context* ctx_ = nullptr;
  llama_batch batch_{};
  int n_batch_ = 0;
};

}  // namespace

std::unique_ptr<SeqBackend> make_llama_backend(const LlamaRepairModel& model, const RepairParams& params,
                                               const LlamaContextShape& shape) {
  return std::make_unique<LlamaBackend>(model, params, shape);
}

}  // namespace capforge::repair
