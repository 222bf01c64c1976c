// Curation outputs of `caption` and `embed-shards` (docs/curate-embeddings.md): clip-retrieval's
// embedding sets (--save-embeddings) and the safety scores (--nsfw-head, --unsafe-concepts), all
// from the first ranker's embeddings. The curation options are defined in cli/embed_options.cpp.
#pragma once

#include <CLI/CLI.hpp>

#include <memory>
#include <string>

#include "capforge/pipeline.h"
#include "capforge/sample.h"
#include "pipeline/model_stages.h"

namespace capforge::cli {

struct CurateCli {
  bool save_embeddings = false;
  std::string nsfw_head;        // safetensors head file (empty: no punsafe)
  std::string unsafe_concepts;  // concept config JSON, or "default" (empty: none)
  bool any() const { return save_embeddings || !nsfw_head.empty() || !unsafe_concepts.empty(); }
};

void add_curate_options(CLI::App* cmd, CurateCli& c, bool with_save_flag = true);
// The default concept config: $CAPFORGE_DATA/safety/concepts.json, else the source tree's data/.
std::string default_concepts_path();
// The safety stage for `first` (the first ranker), or null when no safety flag is set; loads and
// checks the head (its input size must be the ranker's embedding size) and embeds the concepts.
// Throws UsageError (exit 2) for a missing ranker, a broken head or config, or a size mismatch.
// Sets `dim` to the ranker's embedding size.
std::unique_ptr<Stage> make_curate_stage(const CurateCli& c, const RankerSpec* first, int& dim);
// Adds the settings that change the outputs to a run's fingerprint (only the ones that are set):
// the head's and the concept config's paths and the sha256 of their contents ("default" resolved).
void add_curate_fingerprint(Json& fp, const CurateCli& c);

// `capforge embed-shards` (cli/cmd_embed.cpp).
void add_embed_shards(CLI::App& app, std::function<int()>& action);

}  // namespace capforge::cli
