// capforge describe --model M.gguf --mmproj P.gguf IMAGE...: captions with a VLM, JSON lines.
#include <fmt/format.h>

#include <chrono>
#include <cstdio>
#include <fstream>

#include "capforge/captioner.h"
#include "capforge/image.h"
#include "cli/common.h"
#include "core/log.h"

namespace capforge::cli {

namespace {

// Sampling flags take comma-separated lists; candidate i uses element i % size (LAION-COCO varied
// top_p, min and max length across its candidates).
struct ScheduleLists {
  std::vector<float> temperature, top_p, min_p;
  std::vector<int> top_k, min_new, max_new;
};

struct DescribeOptions {
  CaptionerParams params;
  ScheduleLists lists;
  std::vector<std::string> images;
  bool greedy = false;
};

template <typename T>
T pick(const std::vector<T>& v, size_t i, T fallback) {
  return v.empty() ? fallback : v[i % v.size()];
}

// Fills params.sampling / params.schedule from the flag lists.
void build_schedule(DescribeOptions& o) {
  auto& l = o.lists;
  size_t n = std::max({l.temperature.size(), l.top_p.size(), l.min_p.size(), l.top_k.size(), l.min_new.size(),
                       l.max_new.size(), (size_t)1});
  SamplingParams base = o.params.sampling;
  base.greedy = o.greedy;
  o.params.schedule.clear();
  for (size_t i = 0; i < n; ++i) {
    SamplingParams p = base;
    p.temperature = pick(l.temperature, i, p.temperature);
    p.top_p = pick(l.top_p, i, p.top_p);
    p.min_p = pick(l.min_p, i, p.min_p);
    p.top_k = pick(l.top_k, i, p.top_k);
    p.min_new_tokens = pick(l.min_new, i, p.min_new_tokens);
    p.max_new_tokens = pick(l.max_new, i, p.max_new_tokens);
    o.params.schedule.push_back(p);
  }
  o.params.sampling = o.params.schedule[0];
  if (n == 1) o.params.schedule.clear();
}

void print(const Json& j) {
  std::printf("%s\n", j.dump(-1, ' ', false, Json::error_handler_t::replace).c_str());
}

int run_describe(DescribeOptions& o) {
  build_schedule(o);
  std::shared_ptr<const VlmModel> model;
  try {
    model = load_vlm(o.params);
  } catch (const std::exception& e) {
    throw UsageError(e.what(),
                     "--model takes the language model GGUF and --mmproj its projector GGUF, e.g. "
                     "llava-1.5 or SmolVLM files from ggml-org on Hugging Face");
  }
  Captioner cap(model, o.params);
  std::vector<Image> imgs(o.images.size());
  std::vector<std::string> errors(o.images.size());
  std::vector<CaptionRequest> reqs;
  std::vector<size_t> req_of;
  for (size_t i = 0; i < o.images.size(); ++i) {
    std::ifstream f(o.images[i], std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(f)), {});
    DecodedImage d;
    errors[i] = !f && bytes.empty() ? "cannot read file" : decode_image(bytes, DecodeParams{}, d);
    if (!errors[i].empty()) continue;
    imgs[i] = std::move(d.pixels);
    reqs.push_back({o.images[i], &imgs[i]});
    req_of.push_back(i);
  }
  auto t0 = std::chrono::steady_clock::now();
  auto results = cap.caption(reqs);
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  int64_t tokens = 0;
  for (auto& r : results)
    for (auto& c : r.captions) tokens += c.tokens;
  info("captioned {} image(s) in {:.2f}s: {:.2f} images/s, {:.1f} tokens/s in kept candidates", reqs.size(), secs,
       reqs.size() / std::max(secs, 1e-9), tokens / std::max(secs, 1e-9));
  std::vector<Json> lines(o.images.size());
  for (size_t k = 0; k < results.size(); ++k) {
    size_t i = req_of[k];
    if (!results[k].error.empty()) {
      errors[i] = results[k].error;
      continue;
    }
    Json caps = Json::array();
    for (auto& c : results[k].captions)
      caps.push_back({{"text", c.text}, {"tokens", c.tokens}, {"logprob", c.logprob}, {"flags", c.flags}});
    lines[i] = {{"image", o.images[i]}, {"captions", caps}};
  }
  int failed = 0;
  for (size_t i = 0; i < o.images.size(); ++i) {
    if (!errors[i].empty()) {
      print({{"image", o.images[i]}, {"error", errors[i]}});
      ++failed;
    } else {
      print(lines[i]);
    }
  }
  return failed ? 1 : 0;
}

}  // namespace

void add_describe(CLI::App& app, Action& action) {
  auto o = std::make_shared<DescribeOptions>();
  auto* cmd = app.add_subcommand("describe",
                                 "Caption images with a VLM (text GGUF + mmproj): JSON lines with every "
                                 "candidate");
  cmd->add_option("images", o->images, "image files")->required();
  auto& p = o->params;
  auto& l = o->lists;
  const char* m = "Model";
  cmd->add_option("--model", p.model, "language model GGUF")->required()->group(m);
  cmd->add_option("--mmproj", p.mmproj, "multimodal projector GGUF")->required()->group(m);
  cmd->add_option("--chat-template", p.chat_template, "override the model's chat template (name or template)")
      ->group(m);
  const char* pr = "Prompt";
  cmd->add_option("--prompt", p.prompt, "the instruction")->capture_default_str()->group(pr);
  cmd->add_option("--response-prefix", p.response_prefix,
                  "forced start of the answer, kept in the caption (e.g. "
                  "'a picture of ')")
      ->group(pr);
  const char* d = "Decoding (lists: candidate i uses element i % length)";
  cmd->add_option("--candidates", p.candidates, "candidates per image")->capture_default_str()->group(d);
  cmd->add_flag("--greedy", o->greedy, "argmax decoding")->group(d);
  cmd->add_option("--temperature", l.temperature, "sampling temperature")->delimiter(',')->group(d);
  cmd->add_option("--top-k", l.top_k, "top-k (0: off)")->delimiter(',')->group(d);
  cmd->add_option("--top-p", l.top_p, "nucleus mass (1: off)")->delimiter(',')->group(d);
  cmd->add_option("--min-p", l.min_p, "min-p (0: off)")->delimiter(',')->group(d);
  cmd->add_option("--min-new-tokens", l.min_new, "no end of text before this many tokens")
      ->delimiter(',')
      ->group(d);
  cmd->add_option("--max-new-tokens", l.max_new, "at most this many tokens (default 64)")
      ->delimiter(',')
      ->group(d);
  cmd->add_option("--repetition-penalty", p.sampling.repetition_penalty,
                  "penalty on tokens already generated")
      ->capture_default_str()
      ->group(d);
  cmd->add_option("--no-repeat-ngram", p.sampling.no_repeat_ngram, "never repeat an n-gram (0: off)")
      ->group(d);
  cmd->add_option("--stop", p.stop, "stop string (repeatable)")->group(d);
  cmd->add_option("--harvest-eos", p.harvest_eos,
                  "keep the text as a candidate whenever p(EOS) >= P (LAION-COCO)")
      ->group(d);
  cmd->add_option("--loop-repeats", p.loop_repeats, "cut an n-gram repeated this many times in a row")
      ->capture_default_str()
      ->group(d);
  cmd->add_flag("!--keep-fragments", p.drop_fragment, "keep an unfinished trailing sentence")->group(d);
  cmd->add_option("--seed", p.seed, "mixed with each image's key (its path)")->group(d);
  const char* r = "Resources";
  cmd->add_option("--ctx-size", p.ctx_size, "KV cells for all sequences in flight (0: 1024 per sequence)")
      ->capture_default_str()
      ->group(r);
  cmd->add_flag("--kv-unified", p.kv_unified, "one KV pool shared by all sequences (default: one per sequence)")
      ->group(r);
  cmd->add_option("--parallel", p.parallel, "sequences in flight")->capture_default_str()->group(r);
  cmd->add_option("--batch", p.batch, "prompt tokens per decode")->capture_default_str()->group(r);
  cmd->add_option("--threads", p.threads, "CPU threads (0: all cores)")->group(r);
  cmd->add_flag("!--cpu", p.gpu, "stay on the CPU")->group(r);
  cmd->callback([o, &action] { action = [o] { return run_describe(*o); }; });
}

}  // namespace capforge::cli
