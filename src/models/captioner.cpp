// The captioner families behind capforge/captioner.h: chosen once, at load.
#include <fmt/format.h>

#include <stdexcept>

#include "capforge/captioner.h"
#include "core/log.h"
#include "models/blip/model.h"
#include "models/vlm/model.h"

namespace capforge {

std::shared_ptr<const CaptionModel> load_captioner(const CaptionerParams& params) {
  std::shared_ptr<const CaptionModel> m;
  if (params.family == "vlm")
    m = std::make_shared<const VlmModel>(params);
  else if (params.family == "blip")
    m = load_blip(params);
  else
    throw std::invalid_argument(fmt::format("unknown captioner family '{}' (vlm or blip)", params.family));
  spdlog::debug("captioner: {}", m->describe());
  return m;
}

std::vector<PromptParams> all_prompts(const CaptionerParams& p) {
  PromptParams first;
  first.name = p.prompt_name;
  first.prompt = p.prompt;
  first.response_prefix = p.response_prefix;
  first.candidates = p.candidates;
  first.sampling = p.sampling;
  first.schedule = p.schedule;
  first.harvest_eos = p.harvest_eos;
  first.force_eos = p.force_eos;
  std::vector<PromptParams> all = {first};
  all.insert(all.end(), p.more_prompts.begin(), p.more_prompts.end());
  return all;
}

void set_prompts(CaptionerParams& p, const std::vector<PromptParams>& prompts) {
  const PromptParams& first = prompts.at(0);
  p.prompt_name = first.name;
  p.prompt = first.prompt;
  p.response_prefix = first.response_prefix;
  p.candidates = first.candidates;
  p.sampling = first.sampling;
  p.schedule = first.schedule;
  p.harvest_eos = first.harvest_eos;
  p.force_eos = first.force_eos;
  p.more_prompts.assign(prompts.begin() + 1, prompts.end());
}

Captioner::Captioner(std::shared_ptr<const CaptionModel> model, const CaptionerParams& params) {
  if (!model) throw std::invalid_argument("Captioner: no model");
  const CaptionModel& m = *model;
  engine_ = m.start(std::move(model), params);
}
Captioner::~Captioner() = default;

std::vector<CaptionResult> Captioner::caption(const std::vector<CaptionRequest>& requests) {
  return engine_->run(requests);
}

}  // namespace capforge
