// capforge synth --out DIR --count N --seed S: procedural shape images with known captions, as
// webdataset shards (.jpg, a noisy web-like .txt alt-text, .json with the truth).
#include <fmt/format.h>

#include <filesystem>

#include "capforge/env.h"
#include "capforge/image.h"
#include "cli/common.h"
#include "core/log.h"
#include "synth/shapes.h"

namespace fs = std::filesystem;

namespace capforge::cli {

namespace {

struct SynthOptions {
  std::string out;
  int count = 64, shards = 1, size = 64, quality = 92;
  double text_prob = 0;
  uint64_t seed = 0;
};

int run_synth(const SynthOptions& o) {
  env().make_dirs(o.out);
  int per = (o.count + o.shards - 1) / o.shards;
  int made = 0;
  for (int sh = 0; sh < o.shards; ++sh) {
    std::string name = fmt::format("{:05d}", sh);
    WriterParams wp;
    wp.schema = OutputSchema::samples;
    auto w = open_writer(OutputFormat::webdataset, (fs::path(o.out) / (name + ".tar")).string(), wp);
    for (int i = 0; i < per && made < o.count; ++i, ++made) {
      uint64_t seed = o.seed * 1000003ull + (uint64_t)made;
      synth::Scene scene = synth::make_scene(seed);
      synth::add_word(scene, seed, o.text_prob);
      Sample s;
      s.key = fmt::format("{}{:04d}", name, i);
      s.index = i;
      s.url = fmt::format("synth://{}/{}", o.seed, made);
      s.caption = synth::alt_text(scene, seed);
      s.image_bytes = encode_jpeg(synth::render(scene, o.size), o.quality);
      s.has_image = true;
      s.image_ext = "jpg";
      Json shapes = Json::array();
      for (auto& x : scene.shapes) shapes.push_back({{"shape", x.kind}, {"colour", x.colour}});
      s.meta = {{"truth", scene.caption},
                {"background", scene.background},
                {"count", scene.shapes.size()},
                {"where", scene.where},
                {"shapes", shapes}};
      if (!scene.word.empty()) s.meta["text"] = scene.word;
      w->write(s);
    }
    w->commit();
  }
  remove_own_temp_dir(o.out);  // the writers' temp folder, now empty
  info("wrote {} synthetic samples in {} shard(s) to {}", made, o.shards, o.out);
  return 0;
}

}  // namespace

void add_synth(CLI::App& app, Action& action) {
  auto o = std::make_shared<SynthOptions>();
  auto* cmd = app.add_subcommand("synth",
                                 "Write procedural shape images with known captions as webdataset shards "
                                 "(.txt: noisy alt-text; .json: the truth)");
  cmd->add_option("--out", o->out, "output directory")->required();
  cmd->add_option("--count", o->count, "samples")->capture_default_str()->check(positive_int());
  cmd->add_option("--shards", o->shards, "shards to spread them over")
      ->capture_default_str()
      ->check(int_range(1, 100000));
  cmd->add_option("--seed", o->seed, "the same seed gives the same images")
      ->capture_default_str()
      ->check(seed_value());
  cmd->add_option("--size", o->size, "image side in pixels")
      ->capture_default_str()
      ->check(int_range(16, 1024));
  cmd->add_option("--quality", o->quality, "JPEG quality")->capture_default_str()->check(int_range(1, 100));
  cmd->add_option("--text-prob", o->text_prob,
                  "draw a word (SALE, OPEN, ...) in this fraction of the images, named in the truth "
                  "(the demo models were trained without)")
      ->capture_default_str()
      ->check(prob01());
  cmd->callback([o, &action] { action = [o] { return run_synth(*o); }; });
}

}  // namespace capforge::cli
