// Captioner settings checked before llama.cpp sees them.
#include "models/vlm/captioner_checks.h"

#include <fmt/format.h>

#include <stdexcept>
#include <string>
#include <vector>

namespace capforge::vlm {

// Settings llama.cpp would abort on or that cannot caption anything: std::invalid_argument,
// before any llama context exists.
void check_captioner_params(const CaptionerParams& params) {
  auto bad = [](const std::string& m) { throw std::invalid_argument(m); };
  if (params.candidates < 1) bad(fmt::format("--candidates must be at least 1, got {}", params.candidates));
  if (params.parallel < 1 || params.parallel > 256)  // 256: llama.cpp's LLAMA_MAX_SEQ
    bad(fmt::format("--parallel must be from 1 to 256, got {}", params.parallel));
  if (params.batch < 1) bad(fmt::format("--batch must be at least 1, got {}", params.batch));
  if (params.threads < 0) bad(fmt::format("--threads must be >= 0 (0: all cores), got {}", params.threads));
  if (params.candidates > params.parallel)
    bad(fmt::format(
        "--candidates {} exceeds --parallel {}: every candidate of an image needs a sequence slot (raise "
        "--parallel or lower --candidates)",
        params.candidates, params.parallel));
  if (params.ctx_size < 0)
    bad(fmt::format("--ctx-size must be >= 0 (0: automatic), got {}", params.ctx_size));
  if (params.ctx_size > 0 && params.ctx_size < params.parallel)  // llama.cpp asserts on this
    bad(
        fmt::format("--ctx-size {} is smaller than --parallel {}: every sequence needs KV cells for the "
                    "image, the prompt and its tokens (0 picks 1024 per sequence)",
                    params.ctx_size, params.parallel));
  std::vector<SamplingParams> all = params.schedule;
  if (all.empty()) all.push_back(params.sampling);
  for (size_t i = 0; i < all.size(); ++i) {
    std::string where = all.size() > 1 ? fmt::format(" (list element {})", i + 1) : "";
    if (all[i].max_new_tokens < 1)
      bad(fmt::format("--max-new-tokens must be at least 1, got {}{}", all[i].max_new_tokens, where));
    if (all[i].min_new_tokens > all[i].max_new_tokens)
      bad(fmt::format("--min-new-tokens {} exceeds --max-new-tokens {}{}", all[i].min_new_tokens,
                      all[i].max_new_tokens, where));
  }
}

}  // namespace capforge::vlm
