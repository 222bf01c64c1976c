// capforge embed-shards IN... --out DIR --model CLIP_DIR: clip-retrieval's embedding sets without a
// captioner (the caption pipeline with captioner none, the model as the only ranker, no sample
// outputs), plus the curation options shared with `caption` (--save-embeddings, --nsfw-head,
// --unsafe-concepts, cli/embed_options.cpp).
#include <fmt/format.h>

#include "cli/caption_run.h"
#include "cli/common.h"
#include "cli/embed_options.h"

namespace capforge::cli {

namespace {

struct EmbedCli {
  std::vector<std::string> inputs;
  std::string out, model, db, rank_dtype = "f32";
  int threads = 0, batch_size = 16, image_size = 384;
  CurateCli curate;
  ReaderParams reader;
  DecodeParams decode;
  ProgressMode progress = ProgressMode::automatic;
};

}  // namespace

void add_embed_shards(CLI::App& app, Action& action) {
  auto e = std::make_shared<EmbedCli>();
  auto* cmd =
      app.add_subcommand("embed-shards",
                         "Embed shards with a CLIP model, no captioner: clip-retrieval's img_emb/, text_emb/ "
                         "and metadata/ per shard (resumable like caption)");
  cmd->add_option("inputs", e->inputs, "shards (.tar .parquet .csv .tsv .jsonl) or image folders");
  cmd->add_option("--out", e->out, "output directory: img_emb/, text_emb/, metadata/, {shard}_stats.json")
      ->required();
  cmd->add_option("--model", e->model, "CLIP dir (Hugging Face CLIP or SigLIP, or open_clip), or demo")
      ->required();
  cmd->add_option("--rank-dtype", e->rank_dtype,
                  "model weights: f32, f16, bf16, q8_0 or int8 (CPUs with VNNI)")
      ->capture_default_str()
      ->check(CLI::IsMember({"f32", "f16", "bf16", "q8_0", "int8"}));
  cmd->add_option("--db", e->db, "job store URL (default: sqlite:OUT/.capforge/jobs.db)");
  cmd->add_option("--threads", e->threads,
                  "threads for decoding and the model (0: the CPUs this process may use)")
      ->capture_default_str()
      ->check(threads_count());
  cmd->add_option("--batch-size", e->batch_size, "images per model batch")
      ->capture_default_str()
      ->check(int_range(1, 65536));
  cmd->add_option("--image-size", e->image_size,
                  "decode images to this shortest edge (as caption does, so the embeddings equal caption "
                  "--save-embeddings's)")
      ->capture_default_str()
      ->check(int_range(1, 65536));
  add_curate_options(cmd, e->curate, /*with_save_flag=*/false);
  add_reader_options(cmd, e->reader);
  add_decode_options(cmd, e->decode);
  add_progress_option(cmd, e->progress);
  cmd->callback([e, &action] {
    action = [e] {
      // caption's own options, never parsed: every caption flag reads as unset (its default)
      auto o = std::make_shared<CaptionOptions>();
      auto defaults = std::make_shared<CLI::App>("embed-shards");
      add_caption_options(defaults.get(), o);
      o->inputs = e->inputs;
      o->out = e->out;
      o->db = e->db;
      o->captioner = "none";
      o->repair = "none";
      o->rank = {e->model};
      o->rank_dtype = e->rank_dtype;
      o->formats.clear();  // no sample outputs: the embedding sets and the stats files only
      o->threads = e->threads;
      o->batch_size = e->batch_size;
      o->image_size = e->image_size;
      o->curate = e->curate;
      o->curate.save_embeddings = true;
      o->reader = e->reader;
      o->decode = e->decode;
      o->progress = e->progress;
      return run_caption(*o, defaults.get());
    };
  });
}

}  // namespace capforge::cli
