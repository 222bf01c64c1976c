// Loading and validating a repair model (see model.h).
#include "models/repair/model.h"

#include <sys/stat.h>

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <vector>

#include "core/log.h"
#include "ggml.h"
#include "gguf.h"
#include "models/gguf_hparams.h"
#include "models/nn/int8_blocked.h"
#include "models/repair/t5_weights.h"
#include "models/vlm/model.h"

namespace capforge::repair {

namespace {
struct GgufFree {
  void operator()(gguf_context* g) const { gguf_free(g); }
};

std::string str_key(gguf_context* g, const std::string& key) {
  int64_t k = gguf_find_key(g, key.c_str());
  if (k < 0 || gguf_get_kv_type(g, k) != GGUF_TYPE_STRING) return "";
  return gguf_get_val_str(g, k);
}

}  // namespace

void check_engine_name(const std::string& engine) {
  if (engine != "auto" && engine != "llama" && engine != "ggml")
    throw std::invalid_argument(fmt::format("repair engine must be auto, llama or ggml, not '{}'", engine));
}

static T5Matrices matrices_of(const std::string& weights) {
  return weights == "bf16" ? T5Matrices::bf16 : weights == "int8" ? T5Matrices::int8 : T5Matrices::stored;
}

void check_weights_name(const std::string& weights) {
  if (weights != "stored" && weights != "bf16" && weights != "int8")
    throw std::invalid_argument(
        fmt::format("repair weights must be stored, bf16 or int8, not '{}'", weights));
}

void init_llama_once() {
  static std::once_flag once;
  std::call_once(once, [] {
    vlm::capture_llama_logs();
    llama_backend_init();
  });
}

bool check_repair_gguf(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0)
    throw std::runtime_error(fmt::format("repair model {} does not exist", path));
  if (!S_ISREG(st.st_mode)) throw std::runtime_error(fmt::format("repair model {} is not a file", path));
  gguf_init_params gp{true, nullptr};
  std::unique_ptr<gguf_context, GgufFree> g(gguf_init_from_file(path.c_str(), gp));
  if (!g)
    throw std::runtime_error(vlm::with_llama_errors(
        fmt::format("repair model {} is not a valid GGUF file (corrupt or truncated?)", path)));
  gguf_context* c = g.get();
  // every tensor's data must lie inside the file (llama.cpp would read past its end)
  size_t end = gguf_get_data_offset(c);
  for (int64_t i = 0; i < gguf_get_n_tensors(c); ++i)
    end = std::max(end, gguf_get_data_offset(c) + gguf_get_tensor_offset(c, i) + gguf_get_tensor_size(c, i));
  if (end > (size_t)st.st_size)
    throw std::runtime_error(
        fmt::format("repair model {} is truncated: its tensors need {} bytes, the file has {}", path, end,
                    (long long)st.st_size));
  const std::string arch = str_key(c, "general.architecture");
  if (arch == "clip" || gguf_find_key(c, "clip.projector_type") >= 0 ||
      gguf_find_key(c, "clip.has_vision_encoder") >= 0)
    throw std::runtime_error(
        fmt::format("{} is a multimodal projector (mmproj), not a repair model: pass a T5 or a decoder-only "
                    "language model GGUF",
                    path));
  if (arch.empty())
    throw std::runtime_error(
        fmt::format("repair model {} has no general.architecture: not a llama.cpp model", path));
  if (gguf_find_key(c, "tokenizer.ggml.tokens") < 0)
    throw std::runtime_error(
        fmt::format("repair model {} has no tokenizer: not a usable language model", path));
  if (gguf_get_n_tensors(c) == 0)
    throw std::runtime_error(fmt::format("repair model {} has no weights (a vocab-only GGUF?)", path));
  check_llama_hparams(c, fmt::format("repair model {}", path));
  if (arch == "t5encoder")
    throw std::runtime_error(
        fmt::format("repair model {} is an encoder-only T5 (t5encoder): repair needs a T5 with its decoder "
                    "or a decoder-only LM",
                    path));
  if (gguf_find_key(c, (arch + ".pooling_type").c_str()) >= 0)
    throw std::runtime_error(fmt::format(
        "repair model {} is an embedding model ({}), not a text generator: pass a T5 or a decoder-only LM",
        path, arch));
  return gguf_find_tensor(c, "output.weight") >= 0;
}

bool output_tied_to_embeddings(const std::string& path) {
  ggml_context* meta = nullptr;
  std::unique_ptr<gguf_context, GgufFree> g(gguf_init_from_file(path.c_str(), gguf_init_params{true, &meta}));
  if (!g) return false;
  std::unique_ptr<ggml_context, void (*)(ggml_context*)> meta_owner(meta, ggml_free);
  gguf_context* c = g.get();
  const int64_t out = gguf_find_tensor(c, "output.weight"), emb = gguf_find_tensor(c, "token_embd.weight");
  if (out < 0) return true;
  if (emb < 0 || !meta) return false;
  const ggml_tensor* a = ggml_get_tensor(meta, "output.weight");
  const ggml_tensor* b = ggml_get_tensor(meta, "token_embd.weight");
  if (!a || !b || a->type != b->type || !ggml_are_same_shape(a, b)) return false;
  const size_t n = gguf_get_tensor_size(c, out);
  if (n != gguf_get_tensor_size(c, emb)) return false;
  std::unique_ptr<FILE, int (*)(FILE*)> f(std::fopen(path.c_str(), "rb"), std::fclose);
  if (!f) return false;
  const size_t base = gguf_get_data_offset(c);
  const size_t at_a = base + gguf_get_tensor_offset(c, out), at_b = base + gguf_get_tensor_offset(c, emb);
  std::vector<char> x(1 << 20), y(1 << 20);
  for (size_t done = 0; done < n;) {  // the file's size was checked by check_repair_gguf
    const size_t k = std::min(x.size(), n - done);
    if (std::fseek(f.get(), (long)(at_a + done), SEEK_SET) != 0 || std::fread(x.data(), 1, k, f.get()) != k ||
        std::fseek(f.get(), (long)(at_b + done), SEEK_SET) != 0 || std::fread(y.data(), 1, k, f.get()) != k)
      return false;
    if (std::memcmp(x.data(), y.data(), k) != 0) return false;
    done += k;
  }
  return true;
}

LlamaRepairModel::LlamaRepairModel(const RepairParams& p) : path(p.model) {
  check_engine_name(p.engine);
  check_weights_name(p.weights);
  init_llama_once();
  check_repair_gguf(path);
  std::string arch;
  {
    std::unique_ptr<gguf_context, GgufFree> g(
        gguf_init_from_file(path.c_str(), gguf_init_params{true, nullptr}));
    if (g) arch = str_key(g.get(), "general.architecture");
  }
  if (p.engine == "ggml" && arch != "t5")
    throw std::invalid_argument(fmt::format(
        "repair engine ggml runs T5 models only; {} is a '{}' model (use --repair-engine auto or llama)",
        path, arch));
  if (p.engine != "llama" && arch == "t5") engine = "ggml";
  llama_model_params mp = llama_model_default_params();
  if (!p.gpu) mp.n_gpu_layers = 0;
  mp.vocab_only = engine == "ggml";  // capforge's engine loads the weights itself
  model = llama_model_load_from_file(path.c_str(), mp);
  if (!model)
    throw std::runtime_error(vlm::with_llama_errors(fmt::format("cannot load repair model {}", path)));
  try {
    vocab = llama_model_get_vocab(model);
    n_vocab = llama_vocab_n_tokens(vocab);
    n_embd = llama_model_n_embd(model);
    n_ctx_train = llama_model_n_ctx_train(model);
    hidden.assign((size_t)n_vocab, 0);
    for (llama_token t = 0; t < n_vocab; ++t) {
      if (llama_vocab_is_eog(vocab, t)) eog.push_back(t);
      auto attr = llama_vocab_get_attr(vocab, t);
      const char* text = llama_vocab_get_text(vocab, t);
      hidden[(size_t)t] =
          (attr & (LLAMA_TOKEN_ATTR_CONTROL | LLAMA_TOKEN_ATTR_UNKNOWN)) ||
          ((attr & LLAMA_TOKEN_ATTR_USER_DEFINED) && text && std::strncmp(text, "<extra_id_", 10) == 0);
    }
    if (eog.empty())
      throw std::runtime_error(fmt::format("repair model {} has no end-of-generation token", path));
    char arch[64] = {0};
    llama_model_meta_val_str(model, "general.architecture", arch, sizeof arch);
    if (llama_model_has_encoder(model)) {
      if (std::string(arch) != "t5" || !llama_model_has_decoder(model))
        throw std::runtime_error(
            fmt::format("repair model {} is an encoder model of architecture '{}': repair supports T5 "
                        "encoder-decoders and "
                        "decoder-only LMs",
                        path, arch));
      t5 = true;
      decoder_start = llama_model_decoder_start_token(model);
      if (engine == "ggml") {
        try {
          if (p.weights == "int8" && !nn::int8_blocked_vnni())
            spdlog::warn(
                "--repair-dtype int8: this CPU has no AVX512-VNNI; the int8 products run in plain loops "
                "(slow)");
          t5w = std::make_shared<const T5Weights>(path, true, matrices_of(p.weights),
                                                  p.threads);  // throws naming the tensor
        } catch (const T5Unsupported& e) {
          if (p.engine != "auto") throw;
          // a T5 this engine does not run, which libllama does: load it whole there instead
          spdlog::warn("{}; running it on libllama", e.what());
          engine = "llama";
          llama_model_free(model);
          model = nullptr;
          mp.vocab_only = false;
          model = llama_model_load_from_file(path.c_str(), mp);
          if (!model)
            throw std::runtime_error(
                vlm::with_llama_errors(fmt::format("cannot load repair model {}", path)));
          vocab = llama_model_get_vocab(model);
          n_embd = llama_model_n_embd(model);
          n_ctx_train = llama_model_n_ctx_train(model);
          decoder_start = llama_model_decoder_start_token(model);
        }
      }
      if (t5w) {
        // llama.cpp loaded the file vocab-only (no hyperparameters): they come from our loader
        if (t5w->cfg.vocab != n_vocab)
          throw std::runtime_error(fmt::format("repair model {}: token_embd.weight has {} rows for {} tokens",
                                               path, t5w->cfg.vocab, n_vocab));
        n_embd = t5w->cfg.d_model;
        n_ctx_train = t5w->cfg.n_ctx_train;
        decoder_start = t5w->cfg.decoder_start;
      }
      if (decoder_start < 0) decoder_start = llama_vocab_bos(vocab);
      if (decoder_start < 0) decoder_start = llama_vocab_pad(vocab);
      if (decoder_start < 0) decoder_start = 0;
      if (output_tied_to_embeddings(path)) logit_scale = 1.0f / std::sqrt((float)n_embd);
    } else {
      if (!p.chat_template.empty()) {
        chat_template = p.chat_template;
      } else if (const char* t = llama_model_chat_template(model, nullptr); t && *t) {
        chat_template = t;
      } else {
        throw std::runtime_error(fmt::format(
            "repair model {} is a decoder-only model without a chat template; pass --repair-chat-template "
            "(a name such as chatml, llama3, or a template)",
            path));
      }
      llama_chat_message probe{"user", "x"};
      if (llama_chat_apply_template(chat_template.c_str(), &probe, 1, true, nullptr, 0) < 0)
        throw std::runtime_error(fmt::format("repair model {}: chat template '{}' is not one llama.cpp knows",
                                             path, chat_template.substr(0, 60)));
    }
  } catch (...) {
    llama_model_free(model);
    throw;
  }
}

LlamaRepairModel::~LlamaRepairModel() {
  if (model) llama_model_free(model);
}

std::string LlamaRepairModel::describe() const {
  char desc[128];
  llama_model_desc(model, desc, sizeof desc);
  if (t5w)  // llama.cpp loaded the file vocab-only: it does not know the model's size
    std::snprintf(desc, sizeof desc, "t5 d_model %d, %d+%d layers, %s", t5w->cfg.d_model, t5w->cfg.enc_layers,
                  t5w->cfg.dec_layers, ggml_type_name(t5w->tok_embd->type));
  std::string s = fmt::format("repair model {} ({}, {} tokens, context {}, {} engine)", desc, family(),
                              n_vocab, n_ctx_train, engine == "ggml" ? "capforge's ggml T5" : "libllama");
  if (logit_scale != 1.0f)
    s += fmt::format(", output tied to the embeddings: logits scaled by 1/sqrt({}) as in Hugging Face's T5",
                     n_embd);
  return s;
}

}  // namespace capforge::repair

namespace capforge {

std::shared_ptr<const RepairModel> load_repair_model(const RepairParams& params) {
  return std::make_shared<repair::LlamaRepairModel>(params);
}

}  // namespace capforge
