// The captioner families behind capforge/captioner.h: chosen once, at load.
#include <fmt/format.h>

#include <stdexcept>

#include "capforge/captioner.h"
#include "models/blip/model.h"
#include "models/vlm/model.h"

namespace capforge {

std::shared_ptr<const CaptionModel> load_captioner(const CaptionerParams& params) {
  if (params.family == "vlm") return std::make_shared<const VlmModel>(params);
  if (params.family == "blip") return load_blip(params);
  throw std::invalid_argument(fmt::format("unknown captioner family '{}' (vlm or blip)", params.family));
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
