// capforge synth --out DIR --count N --seed S: procedural shape images with known captions, as
// webdataset shards (.jpg, a noisy web-like .txt alt-text, .json with the truth). --duplicates N
// then plants N copies of earlier samples (exact, re-encoded, resized, flipped), each recording in
// its .json what it copies (dup_of_key, dup_kind), spread over the shards after their own samples.
#include <fmt/format.h>

#include <filesystem>

#include "capforge/env.h"
#include "capforge/image.h"
#include "cli/common.h"
#include "core/log.h"
#include "synth/duplicates.h"
#include "synth/shapes.h"

namespace fs = std::filesystem;

namespace capforge::cli {

namespace {

struct SynthOptions {
  std::string out;
  int count = 64, shards = 1, size = 64, quality = 92, duplicates = 0;
  double text_prob = 0;
  uint64_t seed = 0;
};

Json scene_meta(const synth::Scene& scene) {
  Json shapes = Json::array();
  for (auto& x : scene.shapes) shapes.push_back({{"shape", x.kind}, {"colour", x.colour}});
  Json meta = {{"truth", scene.caption},
               {"background", scene.background},
               {"count", scene.shapes.size()},
               {"where", scene.where},
               {"shapes", shapes}};
  if (!scene.word.empty()) meta["text"] = scene.word;
  return meta;
}

int run_synth(const SynthOptions& o) {
  env().make_dirs(o.out);
  const int per = (o.count + o.shards - 1) / o.shards;
  auto seed_of = [&](int i) { return o.seed * 1000003ull + (uint64_t)i; };
  auto scene_of = [&](int i) {
    synth::Scene scene = synth::make_scene(seed_of(i));
    synth::add_word(scene, seed_of(i), o.text_prob);
    return scene;
  };
  // sample i: shard i / per, position i % per (the last shards may hold fewer)
  auto key_of = [&](int shard, int pos) { return fmt::format("{:05d}{:04d}", shard, pos); };
  auto url_of = [&](int i) { return fmt::format("synth://{}/{}", o.seed, i); };
  auto bytes_of = [&](const synth::Scene& scene) {
    return encode_jpeg(synth::render(scene, o.size), o.quality);
  };
  const std::vector<int> originals =
      o.duplicates > 0 ? synth::pick_originals(o.count, o.duplicates, o.seed, scene_of) : std::vector<int>{};
  int made = 0;
  for (int sh = 0; sh < o.shards; ++sh) {
    std::string name = fmt::format("{:05d}", sh);
    WriterParams wp;
    wp.schema = OutputSchema::samples;
    auto w = open_writer(OutputFormat::webdataset, (fs::path(o.out) / (name + ".tar")).string(), wp);
    int pos = 0;
    for (; pos < per && made < o.count; ++pos, ++made) {
      synth::Scene scene = scene_of(made);
      Sample s;
      s.key = key_of(sh, pos);
      s.index = pos;
      s.url = url_of(made);
      s.caption = synth::alt_text(scene, seed_of(made));
      s.image_bytes = bytes_of(scene);
      s.has_image = true;
      s.image_ext = "jpg";
      s.meta = scene_meta(scene);
      w->write(s);
    }
    // planted duplicates d = sh, sh + shards, ...: after this shard's own samples
    for (int d = sh; d < o.duplicates; d += o.shards, ++pos) {
      const int m = originals[(size_t)d];
      const synth::DupKind kind = synth::dup_kind(d);
      synth::Scene scene = scene_of(m);
      Sample s;
      s.key = key_of(sh, pos);
      s.index = pos;
      // a byte copy is the same picture re-posted under its URL; the others live elsewhere
      s.url = kind == synth::DupKind::exact ? url_of(m) : fmt::format("synth://{}/dup/{}", o.seed, d);
      s.caption = synth::alt_text(scene, seed_of(m));
      s.image_bytes = synth::make_duplicate(kind, scene, bytes_of(scene), o.size, o.quality);
      s.has_image = true;
      s.image_ext = "jpg";
      s.meta = scene_meta(kind == synth::DupKind::flip ? synth::mirror(scene) : scene);
      s.meta["dup_of_key"] = key_of(m / per, m % per);
      s.meta["dup_kind"] = synth::dup_kind_name(kind);
      w->write(s);
    }
    w->commit();
  }
  remove_own_temp_dir(o.out);  // the writers' temp folder, now empty
  if (o.duplicates > 0)
    info("wrote {} synthetic samples and {} planted duplicate(s) in {} shard(s) to {}", made, o.duplicates,
         o.shards, o.out);
  else
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
  cmd->add_option("--duplicates", o->duplicates,
                  "then plant this many copies of earlier samples, cycling exact byte copy, JPEG "
                  "re-encode, 75% resize, horizontal flip (a negative control for pHash); their .json "
                  "names the original (dup_of_key) and the kind (dup_kind)")
      ->capture_default_str()
      ->check(int_range(0, 1000000));
  cmd->callback([o, &action] { action = [o] { return run_synth(*o); }; });
}

}  // namespace capforge::cli
