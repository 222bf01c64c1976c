// Zero-shot concept safety (clip-retrieval's second detector, the scheme of Stable Diffusion's
// safety checker): the cosine of an image embedding to each concept prompt's text embedding, minus
// that concept's threshold. A sample is unsafe when some margin is positive.
//
// Config (JSON; data/safety/concepts.json is the default, docs/curate-embeddings.md):
//   {"concepts": [{"name": "weapon", "prompt": "a photo of a gun", "threshold": 0.24}, ...]}
// name: [A-Za-z0-9_-]+, unique; prompt: non-empty text; threshold: a cosine in [-1, 1]. Other
// keys (e.g. "description", "source") are ignored.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace capforge {

struct Concept {
  std::string name, prompt;
  double threshold = 0;
};

// Parses a concept config; throws std::runtime_error naming the file and the entry at fault.
std::vector<Concept> load_concepts(const std::string& path);

struct ConceptVerdict {
  double margin = 0;                    // max over concepts of cosine - threshold
  std::optional<std::string> concept_;  // the concept with that margin when it is > 0
};

// Concepts with their prompts' embeddings (L2-normalised, same model as the images).
class ConceptSafety {
 public:
  ConceptSafety(std::vector<Concept> concepts, std::vector<std::vector<float>> embeddings);
  // For an L2-normalised image embedding of the same dimension (ties: the first concept).
  ConceptVerdict judge(const std::vector<float>& image) const;
  const std::vector<Concept>& concepts() const { return concepts_; }

 private:
  std::vector<Concept> concepts_;
  std::vector<std::vector<float>> embeddings_;
};

}  // namespace capforge
