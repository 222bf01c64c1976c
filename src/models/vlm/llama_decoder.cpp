// LmDecoder over libllama: one llama context with a KV stream per sequence (or one unified pool).
#include <algorithm>
#include <stdexcept>

#include "capforge/captioner.h"
#include "core/cpus.h"
#include "models/vlm/lm_decoder.h"
#include "models/vlm/model.h"
#include "mtmd-helper.h"

namespace capforge::vlm {

namespace {

class LlamaDecoder : public LmDecoder {
 public:
  LlamaDecoder(const VlmModel& m, const CaptionerParams& p) : model_(m), batch_size_(p.batch) {
    llama_context_params cp = llama_context_default_params();
    cp.n_ctx = (uint32_t)p.ctx_size;
    cp.n_batch = (uint32_t)std::max(p.batch, p.parallel);
    cp.n_ubatch = std::min<uint32_t>(cp.n_batch, 512);
    cp.n_seq_max = (uint32_t)p.parallel;
    // A stream per sequence: each token attends only over its own sequence's cells (a unified
    // cache makes every token scan every live sequence's cells); a prefix is copied once per
    // candidate instead, which costs far less.
    cp.kv_unified = p.kv_unified;
    const int threads = p.threads > 0 ? p.threads : available_cpus();
    cp.n_threads = cp.n_threads_batch = threads;
    cp.no_perf = true;
    ctx_ = llama_init_from_model(m.model, cp);
    if (!ctx_)
      throw std::runtime_error("cannot create a llama context (try a smaller --ctx-size or --parallel)");
    batch_ = llama_batch_init((int32_t)cp.n_batch, 0, 1);
    capacity_ = cp.n_batch;
  }
  ~LlamaDecoder() override {
    llama_batch_free(batch_);
    llama_free(ctx_);
  }

  void decode(const std::vector<LmEntry>& entries) override {
    if (entries.size() > capacity_)
      throw std::logic_error("llama decoder: more entries in one call than its batch holds");
    batch_.n_tokens = 0;
    for (const LmEntry& e : entries) {
      const int j = batch_.n_tokens++;
      batch_.token[j] = e.token;
      batch_.pos[j] = e.pos;
      batch_.n_seq_id[j] = 1;
      batch_.seq_id[j][0] = e.seq;
      batch_.logits[j] = e.logits;
    }
    if (llama_decode(ctx_, batch_) != 0) throw std::runtime_error("llama_decode failed");
  }
  const float* logits(int i) override { return llama_get_logits_ith(ctx_, i); }
  llama_pos decode_image(const mtmd_input_chunk* chunk, const float* embd, llama_pos pos,
                         llama_seq_id seq) override {
    llama_pos next = pos;
    if (mtmd_helper_decode_image_chunk(model_.mtmd, ctx_, chunk, const_cast<float*>(embd), pos, seq,
                                       batch_size_, &next, nullptr, nullptr) != 0)
      throw std::runtime_error("decoding the image embeddings failed");
    return next;
  }
  void seq_cp(llama_seq_id src, llama_seq_id dst) override {
    llama_memory_seq_cp(llama_get_memory(ctx_), src, dst, -1, -1);
  }
  void seq_rm(llama_seq_id seq) override { llama_memory_seq_rm(llama_get_memory(ctx_), seq, -1, -1); }

 private:
  const VlmModel& model_;
  int batch_size_;
  size_t capacity_ = 0;
  llama_context* ctx_ = nullptr;
  llama_batch batch_{};
};

}  // namespace

std::unique_ptr<LmDecoder> llama_decoder(const VlmModel& model, const CaptionerParams& params) {
  return std::make_unique<LlamaDecoder>(model, params);
}

}  // namespace capforge::vlm
