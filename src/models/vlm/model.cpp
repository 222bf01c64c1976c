#include "models/vlm/model.h"

#include "core/cpus.h"
#include "core/log.h"
#include "ggml-cpu.h"
#include "models/nn/int8_blocked.h"
#include "models/vlm/lm_weights.h"
#include "models/vlm/mmproj_bf16.h"

#include <fmt/format.h>

#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <thread>

namespace capforge {

namespace {
int default_threads(int t) { return t > 0 ? t : available_cpus(); }

}  // namespace

VlmModel::VlmModel(const CaptionerParams& p) {
  static std::once_flag once;
  std::call_once(once, [] {
    vlm::capture_llama_logs();
    llama_backend_init();
  });
  vlm::check_text_model(p.model);
  llama_model_params mp = llama_model_default_params();
  if (!p.gpu || p.lm_engine == "int8") mp.n_gpu_layers = 0;
  if (p.lm_engine == "int8") mp.use_extra_bufts = false;  // libllama only tokenizes: no repacked copy
  model = llama_model_load_from_file(p.model.c_str(), mp);
  if (!model)
    throw std::runtime_error(vlm::with_llama_errors(fmt::format("cannot load language model {}", p.model)));
  try {
    vlm::check_mmproj(p.mmproj, llama_model_n_embd_inp(model));
    vocab = llama_model_get_vocab(model);
    n_vocab = llama_vocab_n_tokens(vocab);
    for (int t = 0; t < n_vocab; ++t)
      if (llama_vocab_is_eog(vocab, t)) eog.push_back(t);
    if (!p.chat_template.empty()) {
      chat_template = p.chat_template;
    } else if (const char* t = llama_model_chat_template(model, nullptr)) {
      chat_template = t;
    } else {
      throw std::runtime_error(
          fmt::format("{} has no chat template; pass --chat-template (a name such as chatml, "
                      "llama3, vicuna, or a template)",
                      p.model));
    }
    llama_chat_message probe{"user", "x"};
    if (llama_chat_apply_template(chat_template.c_str(), &probe, 1, true, nullptr, 0) < 0)
      throw std::runtime_error(
          fmt::format("chat template '{}' is not one llama.cpp knows", chat_template.substr(0, 60)));
    mtmd_context_params cp = mtmd_context_params_default();
    cp.use_gpu = p.gpu;
    cp.print_timings = false;
    cp.n_threads = default_threads(p.threads);
    cp.warmup = false;
    std::string mmproj = p.mmproj;
    struct Remove {  // the converted copy, once libmtmd has read it (or failed to)
      std::string path;
      ~Remove() {
        if (!path.empty()) std::remove(path.c_str());
      }
    } converted;
    if (p.mmproj_dtype == "bf16") {
      if (!ggml_cpu_has_avx512_bf16()) {
        warn(
            "--mmproj-dtype bf16: this CPU has no AVX512-BF16 (bf16 products would be slower); the projector "
            "loads as stored");
      } else {
        converted.path = mmproj = vlm::mmproj_as_bf16(p.mmproj);
      }
    }
    mtmd = mtmd_init_from_file(mmproj.c_str(), model, cp);
    if (!mtmd)
      throw std::runtime_error(vlm::with_llama_errors(fmt::format("cannot load mmproj {}", p.mmproj)));
    if (!mtmd_support_vision(mtmd))
      throw std::runtime_error(fmt::format("{} has no vision support", p.mmproj));
    if (p.lm_engine == "int8") {
      if (mtmd_decode_use_mrope(mtmd))
        throw std::invalid_argument(fmt::format(
            "{}: --lm-engine int8 does not run projectors with M-RoPE positions; use --lm-engine llama",
            p.mmproj));
      if (!nn::int8_blocked_vnni())
        warn("--lm-engine int8: this CPU has no AVX512-VNNI; the int8 products run in plain loops (slow)");
      try {
        lm_weights = std::make_shared<const vlm::LmWeights>(p.model, false, p.threads);
      } catch (const vlm::LmUnsupported& e) {
        throw std::invalid_argument(e.what());
      }
    }
  } catch (...) {
    if (mtmd) mtmd_free(mtmd);
    llama_model_free(model);
    throw;
  }
}

VlmModel::~VlmModel() {
  if (mtmd) mtmd_free(mtmd);
  if (model) llama_model_free(model);
}

std::string VlmModel::describe() const {
  char desc[128];
  llama_model_desc(model, desc, sizeof desc);
  return fmt::format("VLM {} ({} tokens)", desc, n_vocab);
}

}  // namespace capforge
