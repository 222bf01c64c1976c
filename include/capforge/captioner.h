// Batched multi-candidate image captioning. Two families behind one interface: any VLM libmtmd
// supports (text GGUF + mmproj) and BLIP (a Hugging Face BlipForConditionalGeneration dir).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "capforge/sample.h"

namespace capforge {

// How one candidate is decoded.
struct SamplingParams {
  bool greedy = false;
  float temperature = 1.0f;
  int top_k = 0;                    // 0: off
  float top_p = 1.0f;               // 1: off
  float min_p = 0.0f;               // 0: off
  float repetition_penalty = 1.0f;  // CTRL-style, on tokens generated so far (response prefix included)
  int no_repeat_ngram = 0;          // n > 0: never repeat an n-gram of generated tokens
  int min_new_tokens = 0;           // end-of-generation tokens are banned before this
  int max_new_tokens = 64;
};

// One more prompt of a multi-prompt run; the first prompt is CaptionerParams' own fields. Each
// image is encoded once for all prompts.
struct PromptParams {
  std::string name;  // [A-Za-z][A-Za-z0-9_]*: names its output columns and per-prompt options
  // A template (see prompt_template.h): {org_caption}, {url}, {key} and {col:NAME} are filled per
  // sample with untrusted text that is never parsed for special tokens; {{ and }} are braces.
  std::string prompt;
  std::string response_prefix;
  int candidates = 1;
  SamplingParams sampling;
  std::vector<SamplingParams> schedule;
  float harvest_eos = 0;
  float force_eos = 0;
};

struct CaptionerParams {
  std::string family = "vlm";  // "vlm" (libmtmd: model + mmproj GGUFs) or "blip" (model = HF dir)
  std::string model, mmproj;   // VLM: text GGUF, mmproj GGUF; BLIP: the model directory
  std::string dtype = "f32";   // BLIP: weights converted at load to f32, f16 or bf16
  // VLM: the instruction, a template as PromptParams::prompt says. BLIP: unused (BLIP takes no
  // instruction; its prompt is response_prefix).
  std::string prompt = "Describe this image in one sentence.";
  std::string prompt_name;                 // the first prompt's name ("": unnamed)
  std::vector<PromptParams> more_prompts;  // prompts 2.. (VLM only)
  int org_caption_max_tokens = 64;         // {org_caption} keeps the alt-text's first N tokens
  // Forced start of the answer (BLIP: the text prompt after [DEC]); stays part of the caption.
  std::string response_prefix;
  std::string chat_template;  // empty: the model's own (a name like "chatml" or a template)
  int candidates = 1;
  // Per-candidate parameters: candidate i uses schedule[i % schedule.size()]; empty: `sampling`.
  SamplingParams sampling;
  std::vector<SamplingParams> schedule;
  // LAION-COCO's force-EOS harvesting: after min_new_tokens, whenever p(EOS) >= harvest_eos the
  // current text is kept as an extra candidate and sampling goes on. 0: off.
  float harvest_eos = 0;
  // LAION-COCO's force-EOS: whenever the raw p(end) exceeds it, the candidate is complete (the token
  // sampled at that step is dropped; checked before min_new_tokens). 0: off.
  float force_eos = 0;
  std::vector<std::string> stop;  // stop strings (cut before them)
  int loop_repeats = 3;           // an n-gram (n <= 8) repeated this often in a row is a loop
  bool drop_fragment = true;      // cut an unfinished trailing sentence after a finished one
  uint64_t seed = 0;              // mixed with each sample's key
  // Resources
  int ctx_size = 0;         // KV cells for all sequences in flight (0: 1024 per sequence)
  int parallel = 16;        // sequences in flight (images x candidates)
  bool kv_unified = false;  // one KV pool for all sequences instead of a stream per sequence
  int batch = 512;          // prompt tokens per decode call
  int threads = 0;          // 0: the CPUs this process may use
  bool gpu = true;
  // VLM text model: "llama" (libllama, the GGUF's weights as stored) or "int8" (capforge's own
  // decoder for llama-architecture models: every matrix re-quantised to per-channel int8 at load,
  // on the CPU; faster decoding, captions close to but not equal to llama's).
  std::string lm_engine = "llama";
  // VLM projector: "stored" (as the mmproj GGUF holds it) or "bf16" (its matrices converted at load,
  // for CPUs with AVX512-BF16; the mlp and idefics3 projectors).
  std::string mmproj_dtype = "stored";
  // Set (e.g. by Ctrl-C): caption() stops between decode steps; requests it did not finish get
  // error "interrupted". Not owned; null: never.
  const std::atomic<bool>* cancel = nullptr;
};

// Every prompt of `p` in order: the first from p's own fields, then p.more_prompts.
std::vector<PromptParams> all_prompts(const CaptionerParams& p);
// The inverse: prompts[0] into p's own fields, the rest into p.more_prompts (prompts not empty).
void set_prompts(CaptionerParams& p, const std::vector<PromptParams>& prompts);

struct CaptionRequest {
  std::string key;  // seeds the sampler: same key, same captions
  const Image* image = nullptr;
  // Fills the prompts' placeholders ({org_caption}: caption, {url}, {col:NAME}: meta); null: all
  // empty. Not owned.
  const Sample* sample = nullptr;
};

struct CaptionResult {
  std::vector<Candidate> captions;           // first prompt: de-duplicated, in candidate order
  std::vector<std::vector<Candidate>> more;  // prompts 2.., likewise
  std::string error;                         // set when the image could not be captioned
};

// A loaded captioning model of any family, shared (read-only) by every Captioner.
class CaptionModel {
 public:
  virtual ~CaptionModel() = default;
  virtual std::string describe() const = 0;  // family and shape, for logs

  // Per-worker decoding state; what a Captioner runs.
  struct Engine {
    virtual ~Engine() = default;
    virtual std::vector<CaptionResult> run(const std::vector<CaptionRequest>& requests) = 0;
  };
  // `self` is this model (kept alive by the engine). Throws as Captioner's constructor says.
  virtual std::unique_ptr<Engine> start(std::shared_ptr<const CaptionModel> self,
                                        const CaptionerParams& params) const = 0;
};

// Loads params.model as params.family says and validates it; throws std::runtime_error with a
// clear message (missing file, not a GGUF, not a VLM projector, projector does not fit the model;
// a BLIP dir with a missing or misshapen tensor, a vocabulary without [DEC], ...), and
// std::invalid_argument for an unknown family.
std::shared_ptr<const CaptionModel> load_captioner(const CaptionerParams& params);

// Per-worker decoding state (VLM: a llama context with many sequences; BLIP: KV caches). Not
// thread-safe.
// The constructor throws std::invalid_argument for settings that cannot work (a --ctx-size too
// small for an image, the prompt and every candidate; --candidates above --parallel; values out
// of range), before llama.cpp sees them; std::runtime_error for other failures.
class Captioner {
 public:
  Captioner(std::shared_ptr<const CaptionModel> model, const CaptionerParams& params);
  ~Captioner();
  Captioner(const Captioner&) = delete;
  Captioner& operator=(const Captioner&) = delete;

  // Captions every request, continuously batching images and candidates. One result per request,
  // in order. The captions of a request depend only on its key, image, model and params.
  std::vector<CaptionResult> caption(const std::vector<CaptionRequest>& requests);

 private:
  std::unique_ptr<CaptionModel::Engine> engine_;
};

}  // namespace capforge
