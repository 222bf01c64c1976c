// The curation options shared by `caption` and `embed-shards` (cli/embed_options.h).
#include "cli/embed_options.h"

#include <fmt/format.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "capforge/clip.h"
#include "cli/common.h"
#include "core/hash.h"
#include "core/log.h"
#include "models/safety/safety_stage.h"

namespace fs = std::filesystem;

namespace capforge::cli {

namespace {
// The sha256 of a file's contents, so a run notices a file replaced under the same path; null when
// it cannot be read (make_curate_stage has already refused such a file before any work).
Json file_sha256(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return Json(nullptr);
  std::stringstream ss;
  ss << f.rdbuf();
  if (f.bad()) return Json(nullptr);
  return sha256_hex(ss.str());
}
}  // namespace

std::string default_concepts_path() {
  if (const char* d = std::getenv("CAPFORGE_DATA"); d && *d)
    return (fs::path(d) / "safety" / "concepts.json").string();
  return (fs::path(CAPFORGE_SOURCE_DATA_DIR) / "safety" / "concepts.json").string();
}

void add_curate_options(CLI::App* cmd, CurateCli& c, bool with_save_flag) {
  const char* g = "Curation";
  if (with_save_flag)
    cmd->add_flag("--save-embeddings", c.save_embeddings,
                  "write the first ranker's image and caption embeddings in clip-retrieval's layout: "
                  "OUT/img_emb/img_emb_{shard}.npy, text_emb/..., metadata/metadata_{shard}.parquet")
        ->group(g);
  cmd->add_option("--nsfw-head", c.nsfw_head,
                  "NSFW head (safetensors, from tools/safety/convert_*.py) over the first ranker's image "
                  "embeddings: a punsafe column")
      ->group(g);
  cmd->add_option("--unsafe-concepts", c.unsafe_concepts,
                  "zero-shot concept safety from a JSON config (`default`: data/safety/concepts.json): "
                  "unsafe_concept and unsafe_margin columns")
      ->group(g);
}

std::unique_ptr<Stage> make_curate_stage(const CurateCli& c, const RankerSpec* first, int& dim) {
  dim = 0;
  if (!c.any()) return nullptr;
  if (!first)
    throw UsageError("--save-embeddings, --nsfw-head and --unsafe-concepts need a ranker",
                     "add --rank DIR: its image embeddings are the ones saved and judged");
  dim = ClipContext(first->model).embedding_dim();
  std::shared_ptr<const NsfwHead> head;
  if (!c.nsfw_head.empty()) {
    try {
      head = std::make_shared<NsfwHead>(NsfwHead::load(c.nsfw_head));
    } catch (const std::exception& e) {
      throw UsageError(
          fmt::format("cannot load the NSFW head: {}", e.what()),
          "--nsfw-head takes a safetensors file written by tools/safety/convert_keras_nsfw.py or "
          "convert_h14_nsfw.py (docs/curate-embeddings.md)");
    }
    if (head->input_dim() != dim)
      throw UsageError(
          fmt::format("the NSFW head {} takes {}-value embeddings but the first ranker {} makes {}",
                      c.nsfw_head, head->input_dim(), first->name, dim),
          "use the head made for that CLIP model (ViT-B/32: 512, ViT-L/14: 768, ViT-H/14: 1024)");
    info("NSFW head {}: {}", c.nsfw_head, head->describe());
  }
  std::shared_ptr<const ConceptSafety> concepts;
  if (!c.unsafe_concepts.empty()) {
    std::string path = c.unsafe_concepts == "default" ? default_concepts_path() : c.unsafe_concepts;
    try {
      concepts = std::make_shared<ConceptSafety>(embed_concepts(load_concepts(path), first->model));
    } catch (const std::exception& e) {
      throw UsageError(fmt::format("cannot use the concept config: {}", e.what()),
                       "see docs/curate-embeddings.md for its format");
    }
  }
  if (!head && !concepts) return nullptr;
  return make_safety_stage(std::move(head), std::move(concepts));
}

void add_curate_fingerprint(Json& fp, const CurateCli& c) {
  if (c.save_embeddings) fp["save_embeddings"] = true;
  if (!c.nsfw_head.empty()) {
    fp["nsfw_head"] = c.nsfw_head;
    fp["nsfw_head_sha256"] = file_sha256(c.nsfw_head);
  }
  if (!c.unsafe_concepts.empty()) {
    fp["unsafe_concepts"] = c.unsafe_concepts;
    fp["unsafe_concepts_sha256"] =
        file_sha256(c.unsafe_concepts == "default" ? default_concepts_path() : c.unsafe_concepts);
  }
}

}  // namespace capforge::cli
