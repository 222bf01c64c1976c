// The VLM captioning engine: construction, decode steps, finishing candidates (admission of
// images and prompts: admit.cpp).
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <thread>

#include "core/cpus.h"
#include "core/log.h"
#include "models/vlm/candidate_text.h"
#include "models/vlm/captioner_checks.h"
#include "models/vlm/engine.h"

namespace capforge::vlm {

VlmEngine::VlmEngine(std::shared_ptr<const VlmModel> m, CaptionerParams p)
    : model(std::move(m)), params(std::move(p)) {
  vlm::check_captioner_params(params);
  if (params.ctx_size <= 0) params.ctx_size = params.parallel * 1024;
  seq_cells = params.kv_unified ? params.ctx_size : params.ctx_size / params.parallel;
  if (params.lm_engine == "int8") {
    if (!model->lm_weights)
      throw std::invalid_argument("--lm-engine int8: the model was loaded for libllama (load it with int8)");
    const int threads = params.threads > 0 ? params.threads : available_cpus();
    lm = own_decoder(model->lm_weights, *model, params.parallel, seq_cells, params.batch, threads);
  } else {
    lm = llama_decoder(*model, params);
  }
  for (int i = params.parallel - 1; i >= 0; --i) free_ids.push_back(i);
  // the chat template once, split where the image and each prompt go
  frame = vlm::frame_prompt(model->chat_template);
  for (auto& pp : all_prompts(params)) {
    Prompt pr{pp, PromptTemplate(pp.prompt), {}, ptok.plain(pp.response_prefix), 0};
    for (int i = 0; i < pp.candidates; ++i)
      pr.max_new = std::max(pr.max_new, sampling_of(pp, i).max_new_tokens);
    if (!pr.tpl.has_placeholders()) pr.fixed_tail = tail_tokens(pr, "", nullptr);
    spdlog::debug("captioner prompt{}: {}{}{}{}{}", pp.name.empty() ? "" : " " + pp.name, frame.head,
                  frame.pre, pp.prompt, frame.post, pp.response_prefix);
    prompts.push_back(std::move(pr));
  }
  check_ctx_size();
}

VlmEngine::~VlmEngine() = default;

void VlmEngine::harvest(Seq& s) {
  if (s.text.empty() || !s.harvested.insert(s.text).second) return;
  std::vector<std::string> flags = {"harvested_eos"};
  Candidate c;
  const PromptParams& pp = prompts[s.prompt].p;
  c.text = vlm::clean_caption(pp.response_prefix + s.text, pp.prompt, false, false, flags);
  c.flags = flags;
  c.tokens = s.n_new;
  c.logprob = s.logprob;
  groups[s.group].per_prompt[s.prompt][(size_t)s.candidate].push_back(std::move(c));
}

void VlmEngine::finish(Seq& s, std::vector<std::string> flags, std::vector<CaptionResult>& out,
                       const std::string& error) {
  Group& g = groups[s.group];
  if (error.empty()) {
    bool truncated = std::find(flags.begin(), flags.end(), "max_length") != flags.end();
    Candidate c;
    const PromptParams& pp = prompts[s.prompt].p;
    c.text =
        vlm::clean_caption(pp.response_prefix + s.text, pp.prompt, params.drop_fragment, truncated, flags);
    c.flags = flags;
    c.tokens = s.n_new;
    c.logprob = s.logprob;
    g.per_prompt[s.prompt][(size_t)s.candidate].push_back(std::move(c));
  } else if (g.error.empty()) {
    g.error = error;
  }
  lm->seq_rm(s.id);
  free_ids.push_back(s.id);
  std::sort(free_ids.rbegin(),
            free_ids.rend());  // lowest id at the back: placement independent of finish order
  if (--g.live > 0) return;
  cells_used -= g.cells;
  CaptionResult& r = out[g.request];
  if (!g.error.empty()) {  // no captions from a model that gave non-finite logits for this image
    r.error = g.error;
    g.per_prompt.clear();
    return;
  }
  r.more.resize(prompts.size() - 1);
  for (size_t k = 0; k < prompts.size(); ++k) {
    auto& dst = k == 0 ? r.captions : r.more[k - 1];
    std::set<std::string> seen;
    for (auto& list : g.per_prompt[k])
      for (auto& cand : list)
        if (seen.insert(cand.text).second) dst.push_back(std::move(cand));
  }
  g.per_prompt.clear();
}

void VlmEngine::step(std::vector<CaptionResult>& out) {
  entries.clear();
  std::vector<size_t> in_batch;
  for (size_t i = 0; i < live.size(); ++i) {
    Seq& s = live[i];
    // NaN or +inf: a broken model (-inf is a masked token, which the sampler takes)
    if (!std::all_of(s.logits.begin(), s.logits.end(), [](float v) { return v < INFINITY; })) {
      finish(s, {}, out, "non-finite logits from the model (broken weights or projector?)");
      s.id = -1;
      continue;
    }
    sampling::Choice ch =
        sampling::choose(s.logits.data(), model->n_vocab, s.tokens, s.n_new, model->eog, s.p, s.rng);
    // LAION-COCO's force-EOS: a raw p(end) above the threshold completes the candidate whatever
    // n_new is; the token sampled at this step is dropped.
    const PromptParams& pp = prompts[s.prompt].p;
    if (pp.force_eos > 0 && ch.p_eos > pp.force_eos) {
      finish(s, {"forced_eos"}, out);
      s.id = -1;
      continue;
    }
    if (pp.harvest_eos > 0 && s.n_new >= s.p.min_new_tokens && ch.p_eos >= pp.harvest_eos) harvest(s);
    if (std::find(model->eog.begin(), model->eog.end(), ch.token) != model->eog.end()) {
      finish(s, {"eos"}, out);
      s.id = -1;
      continue;
    }
    s.logprob += ch.logprob;
    s.tokens.push_back(ch.token);
    s.n_new++;
    s.text += piece(ch.token);
    if (size_t at = vlm::find_stop(s.text, params.stop); at != std::string::npos) {
      s.text.resize(at);
      finish(s, {"stop"}, out);
      s.id = -1;
      continue;
    }
    std::vector<int> gen(s.tokens.begin() + (long)s.prefix_tokens, s.tokens.end());
    if (int keep = vlm::loop_cut(gen, params.loop_repeats); keep >= 0) {
      s.text.clear();
      for (int k = 0; k < keep; ++k) s.text += piece(gen[(size_t)k]);
      finish(s, {"loop"}, out);
      s.id = -1;
      continue;
    }
    if (s.n_new >= s.p.max_new_tokens) {
      finish(s, {"max_length"}, out);
      s.id = -1;
      continue;
    }
    entries.push_back({ch.token, s.pos++, s.id, true});
    in_batch.push_back(i);
  }
  if (!entries.empty()) {
    try {
      lm->decode(entries);
    } catch (const std::exception& e) {
      throw std::runtime_error(fmt::format("decoding failed during generation ({})", e.what()));
    }
    for (size_t j = 0; j < in_batch.size(); ++j) {
      const float* l = lm->logits((int)j);
      std::copy(l, l + model->n_vocab, live[in_batch[j]].logits.begin());
    }
  }
  live.erase(std::remove_if(live.begin(), live.end(), [](const Seq& s) { return s.id < 0; }), live.end());
}

void VlmEngine::abandon(std::vector<CaptionResult>& out) {
  for (Seq& s : live) {
    lm->seq_rm(s.id);
    free_ids.push_back(s.id);
  }
  std::sort(free_ids.rbegin(), free_ids.rend());
  live.clear();
  groups.clear();
  cells_used = 0;
  for (auto& r : out)
    if (r.captions.empty() && r.error.empty()) r.error = "interrupted";
}

std::vector<CaptionResult> VlmEngine::run(const std::vector<CaptionRequest>& reqs) {
  std::vector<CaptionResult> out(reqs.size());
  groups.clear();
  size_t next = 0;
  auto cancelled = [this] { return params.cancel && params.cancel->load(); };
  while (next < reqs.size() || !live.empty()) {
    while (next < reqs.size() && !cancelled() && admit(reqs[next], next, out)) ++next;
    if (cancelled()) {  // between images and decode steps: abandon the rest
      abandon(out);
      break;
    }
    if (live.empty()) {
      if (next < reqs.size())
        throw std::logic_error("captioner could not admit an image into an empty context");
      break;
    }
    step(out);
  }
  return out;
}

}  // namespace capforge::vlm

namespace capforge {

std::unique_ptr<CaptionModel::Engine> VlmModel::start(std::shared_ptr<const CaptionModel> self,
                                                      const CaptionerParams& params) const {
  if (self.get() != this) throw std::logic_error("VlmModel::start: self is another model");
  return std::make_unique<vlm::VlmEngine>(std::static_pointer_cast<const VlmModel>(self), params);
}

}  // namespace capforge
