#include "models/safety/concepts.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <fstream>
#include <set>
#include <sstream>
#include <stdexcept>

namespace capforge {

std::vector<Concept> load_concepts(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error(fmt::format("{}: cannot read the concept config", path));
  std::stringstream ss;
  ss << f.rdbuf();
  auto j = nlohmann::json::parse(ss.str(), nullptr, false);
  if (j.is_discarded() || !j.is_object())
    throw std::runtime_error(fmt::format("{}: not a JSON object", path));
  if (!j.contains("concepts") || !j["concepts"].is_array() || j["concepts"].empty())
    throw std::runtime_error(fmt::format("{}: needs a non-empty \"concepts\" array", path));
  std::vector<Concept> out;
  std::set<std::string> names;
  size_t i = 0;
  for (auto& c : j["concepts"]) {
    auto bad = [&](const std::string& why) {
      return std::runtime_error(fmt::format("{}: concepts[{}]: {}", path, i, why));
    };
    if (!c.is_object()) throw bad("not an object");
    if (!c.contains("name") || !c["name"].is_string()) throw bad("\"name\" must be a string");
    if (!c.contains("prompt") || !c["prompt"].is_string() || c["prompt"].get<std::string>().empty())
      throw bad("\"prompt\" must be a non-empty string");
    if (!c.contains("threshold") || !c["threshold"].is_number()) throw bad("\"threshold\" must be a number");
    Concept k{c["name"].get<std::string>(), c["prompt"].get<std::string>(), c["threshold"].get<double>()};
    if (k.name.empty() ||
        k.name.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") !=
            std::string::npos)
      throw bad("\"name\" must be letters, digits, _ or -");
    if (!names.insert(k.name).second) throw bad("the name " + k.name + " is used twice");
    if (!std::isfinite(k.threshold) || k.threshold < -1 || k.threshold > 1)
      throw bad("\"threshold\" is a cosine, in [-1, 1]");
    out.push_back(std::move(k));
    ++i;
  }
  return out;
}

ConceptSafety::ConceptSafety(std::vector<Concept> concepts, std::vector<std::vector<float>> embeddings)
    : concepts_(std::move(concepts)), embeddings_(std::move(embeddings)) {
  if (concepts_.size() != embeddings_.size() || concepts_.empty())
    throw std::invalid_argument("one embedding per concept");
}

ConceptVerdict ConceptSafety::judge(const std::vector<float>& image) const {
  ConceptVerdict v;
  for (size_t c = 0; c < concepts_.size(); ++c) {
    const auto& e = embeddings_[c];
    if (e.size() != image.size()) throw std::invalid_argument("concept and image embeddings differ in size");
    double dot = 0;
    for (size_t k = 0; k < e.size(); ++k) dot += (double)e[k] * image[k];
    double m = dot - concepts_[c].threshold;
    if (c == 0 || m > v.margin) {
      v.margin = m;
      v.concept_ = concepts_[c].name;
    }
  }
  if (!(v.margin > 0)) v.concept_.reset();  // NaN (a non-finite image) flags nothing
  return v;
}

}  // namespace capforge
