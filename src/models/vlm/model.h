// Internal: the shared VLM (libllama text model + libmtmd projector) behind capforge/captioner.h.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "capforge/captioner.h"
#include "llama.h"
#include "mtmd-helper.h"
#include "mtmd.h"

namespace capforge {

namespace vlm {
class LmWeights;
}

class VlmModel : public CaptionModel {
 public:
  explicit VlmModel(const CaptionerParams& params);
  ~VlmModel() override;
  std::string describe() const override;
  std::unique_ptr<Engine> start(std::shared_ptr<const CaptionModel> self,
                                const CaptionerParams& params) const override;

  llama_model* model = nullptr;
  const llama_vocab* vocab = nullptr;
  int n_vocab = 0;
  std::vector<int> eog;       // end-of-generation tokens
  std::string chat_template;  // resolved: a built-in name or template text
  mutable mtmd_context* mtmd = nullptr;
  mutable std::mutex encode_mu;                      // libmtmd encoding is not thread-safe
  mutable std::atomic<int64_t> chunks_encoded{0};    // image chunks through the projector (tests)
  std::shared_ptr<const vlm::LmWeights> lm_weights;  // --lm-engine int8: the re-quantised text model
};

namespace vlm {
// Checks an mmproj GGUF before libmtmd sees it (libmtmd aborts or crashes on some malformed
// files): GGUF validity, a vision encoder, key types, required tensors, and (for the MLP
// projector) that it projects to `text_embd`. Throws std::runtime_error saying what is wrong.
void check_mmproj(const std::string& path, int text_embd);
// The part of check_mmproj that reads tensor shapes: hyper-parameters libmtmd cannot run with, and
// tensors missing, misshapen or of types ggml cannot compute with, for the vision tower and (mlp,
// idefics3) the projector. Throws std::runtime_error naming the file and the problem.
void check_mmproj_tensors(const std::string& path, int text_embd);
// Checks the text GGUF is a readable language model, not a projector. Throws on problems.
void check_text_model(const std::string& path);
// Routes llama.cpp / libmtmd logs to capforge's debug log; remembers the last error lines.
void capture_llama_logs();
// msg, plus the last few error lines llama.cpp / libmtmd logged (oldest first, in parentheses; the
// line naming the cause usually comes before the generic "failed to load model"), which are then
// forgotten.
std::string with_llama_errors(const std::string& msg);
}  // namespace vlm

}  // namespace capforge
