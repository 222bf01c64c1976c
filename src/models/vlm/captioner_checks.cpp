// Captioner settings checked before llama.cpp sees them.
#include "models/vlm/captioner_checks.h"

#include "models/prompt_template.h"

#include <fmt/format.h>

#include <cctype>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

namespace capforge::vlm {

// Settings llama.cpp would abort on or that cannot caption anything: std::invalid_argument,
// before any llama context exists.
void check_captioner_params(const CaptionerParams& params) {
  auto bad = [](const std::string& m) { throw std::invalid_argument(m); };
  if (params.parallel < 1 || params.parallel > 256)  // 256: llama.cpp's LLAMA_MAX_SEQ
    bad(fmt::format("--parallel must be from 1 to 256, got {}", params.parallel));
  if (params.lm_engine != "llama" && params.lm_engine != "int8")
    bad(fmt::format("--lm-engine must be llama or int8, got '{}'", params.lm_engine));
  if (params.mmproj_dtype != "stored" && params.mmproj_dtype != "bf16")
    bad(fmt::format("--mmproj-dtype must be stored or bf16, got '{}'", params.mmproj_dtype));
  if (params.lm_engine == "int8" && params.kv_unified)
    bad("--kv-unified is libllama's cache layout; --lm-engine int8 keeps a block of cells per sequence");
  if (params.batch < 1) bad(fmt::format("--batch must be at least 1, got {}", params.batch));
  if (params.threads < 0)
    bad(fmt::format("--threads must be >= 0 (0: the CPUs this process may use), got {}", params.threads));
  if (params.org_caption_max_tokens < 0)
    bad(fmt::format("--org-caption-max-tokens must be >= 0, got {}", params.org_caption_max_tokens));
  const auto prompts = all_prompts(params);
  int total = 0;
  std::set<std::string> names;
  for (size_t k = 0; k < prompts.size(); ++k) {
    const PromptParams& pp = prompts[k];
    std::string of = prompts.size() > 1 ? fmt::format(" (prompt {})", pp.name.empty() ? "1" : pp.name) : "";
    if (pp.candidates < 1) bad(fmt::format("--candidates must be at least 1, got {}{}", pp.candidates, of));
    total += pp.candidates;
    PromptTemplate{pp.prompt};  // throws for an unknown placeholder
    if (!pp.name.empty() && !is_prompt_name(pp.name))
      bad(fmt::format("prompt name '{}' must be a letter then letters, digits or _", pp.name));
    if (k > 0 && pp.name.empty())
      bad(fmt::format("prompt {} has no name: only the first prompt may be unnamed", k + 1));
    std::string folded = pp.name;  // column names ignore case
    for (auto& ch : folded) ch = (char)std::tolower((unsigned char)ch);
    if (!pp.name.empty() && !names.insert(folded).second)
      bad(fmt::format("two prompts are named {}", pp.name));
    std::vector<SamplingParams> all = pp.schedule;
    if (all.empty()) all.push_back(pp.sampling);
    for (size_t i = 0; i < all.size(); ++i) {
      std::string where = all.size() > 1 ? fmt::format(" (list element {})", i + 1) : "";
      if (all[i].max_new_tokens < 1)
        bad(fmt::format("--max-new-tokens must be at least 1, got {}{}{}", all[i].max_new_tokens, where, of));
      if (all[i].min_new_tokens > all[i].max_new_tokens)
        bad(fmt::format("--min-new-tokens {} exceeds --max-new-tokens {}{}{}", all[i].min_new_tokens,
                        all[i].max_new_tokens, where, of));
    }
  }
  if (total > params.parallel)
    bad(
        fmt::format("{} exceeds --parallel {}: every candidate of an image needs a sequence slot (raise "
                    "--parallel or lower --candidates)",
                    prompts.size() > 1 ? fmt::format("{} candidates over {} prompts", total, prompts.size())
                                       : fmt::format("--candidates {}", total),
                    params.parallel));
  if (params.ctx_size < 0)
    bad(fmt::format("--ctx-size must be >= 0 (0: automatic), got {}", params.ctx_size));
  if (params.ctx_size > 0 && params.ctx_size < params.parallel)  // llama.cpp asserts on this
    bad(
        fmt::format("--ctx-size {} is smaller than --parallel {}: every sequence needs KV cells for the "
                    "image, the prompt and its tokens (0 picks 1024 per sequence)",
                    params.ctx_size, params.parallel));
}

}  // namespace capforge::vlm
