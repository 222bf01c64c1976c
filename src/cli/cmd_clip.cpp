// capforge tokenize / embed / score: the CLIP model on its own.
#include <fmt/format.h>

#include <cmath>
#include <cstdio>
#include <filesystem>

#include "capforge/clip.h"
#include "capforge/image.h"
#include "cli/captioner_options.h"
#include "cli/common.h"
#include "models/clip/config.h"
#include "models/clip/text_encoder.h"

namespace fs = std::filesystem;

namespace capforge::cli {

namespace {

struct ClipOptions {
  std::string model;
  std::vector<std::string> images, texts;
  std::string image;  // score
  ClipParams params;
};

void add_model_options(CLI::App* cmd, ClipOptions& o) {
  cmd->add_option(
         "--model", o.model,
         "model directory: Hugging Face CLIP or SigLIP (config.json, model.safetensors, ...), or open_clip "
         "(open_clip_config.json, open_clip_model.safetensors); or `demo` for the bundled demo CLIP")
      ->required()
      ->check(CLI::ExistingDirectory | CLI::IsMember({"demo"}));
  cmd->add_option("--dtype", o.params.dtype,
                  "convert weights at load: f32, f16, bf16, q8_0 or int8 (CPUs with VNNI)")
      ->capture_default_str()
      ->check(CLI::IsMember({"f32", "f16", "bf16", "q8_0", "int8"}));
  cmd->add_option("--threads", o.params.threads, "CPU threads (0: the CPUs this process may use)")
      ->capture_default_str()
      ->check(threads_count());
  cmd->add_flag("!--cpu", o.params.gpu, "stay on the CPU even when a GPU backend is built in");
}

void print(const Json& j) {
  std::printf("%s\n", j.dump(-1, ' ', false, Json::error_handler_t::replace).c_str());
}

// `--model demo`: the bundled demo CLIP, as caption's and eval's `demo` mean.
std::string model_dir(const std::string& model) {
  return model == "demo" ? (fs::path(demo_models_dir()) / "clip").string() : model;
}

std::shared_ptr<const ClipModel> load(const ClipOptions& o) {
  try {
    return load_clip(model_dir(o.model), o.params);
  } catch (const std::exception& e) {
    throw UsageError(
        fmt::format("cannot load CLIP model: {}", e.what()),
        "--model takes a Hugging Face CLIP or SigLIP directory or an open_clip directory, e.g. one "
        "downloaded with `huggingface-cli download openai/clip-vit-base-patch32 --local-dir DIR`");
  }
}

// Decodes each file for the model; failures are returned as messages (empty = ok).
std::vector<std::string> decode_files(const std::vector<std::string>& files, int edge,
                                      std::vector<Image>& out) {
  std::vector<std::string> errors;
  for (auto& f : files) {
    std::string bytes;
    DecodedImage d;
    DecodeParams p;
    p.short_edge = edge;
    std::string err = read_input_file(f, bytes);  // a directory or unreadable file: an error line
    if (err.empty()) err = decode_image(bytes, p, d);
    errors.push_back(err);
    out.push_back(std::move(d.pixels));
  }
  return errors;
}

int run_tokenize(const ClipOptions& o) {
  std::string dir = model_dir(o.model);
  std::unique_ptr<clip::TextEncoder> tok;
  try {
    tok = clip::load_text_encoder(dir, clip::load_clip_config(dir));
  } catch (const std::exception& e) {
    throw UsageError(fmt::format("cannot load the tokenizer: {}", e.what()));
  }
  for (auto& t : o.texts) print(Json(tok->encode(t)));
  return 0;
}

int run_embed(const ClipOptions& o) {
  ClipContext ctx(load(o));
  std::vector<Image> imgs;
  auto errors = decode_files(o.images, ctx.image_size(), imgs);
  std::vector<const Image*> ok;
  for (size_t i = 0; i < imgs.size(); ++i)
    if (errors[i].empty()) ok.push_back(&imgs[i]);
  auto ie = ctx.embed_images(ok);
  int failed = 0;
  for (size_t i = 0, k = 0; i < imgs.size(); ++i) {
    if (!errors[i].empty()) {
      print({{"type", "image"}, {"input", o.images[i]}, {"error", errors[i]}});
      ++failed;
    } else {
      print({{"type", "image"}, {"input", o.images[i]}, {"embedding", ie[k++]}});
    }
  }
  auto te = ctx.embed_texts(o.texts);
  for (size_t i = 0; i < o.texts.size(); ++i)
    print({{"type", "text"}, {"input", o.texts[i]}, {"embedding", te[i]}});
  return failed ? 1 : 0;
}

int run_score(const ClipOptions& o) {
  ClipContext ctx(load(o));
  std::vector<Image> imgs;
  auto errors = decode_files(o.images, ctx.image_size(), imgs);
  if (!errors[0].empty()) throw std::runtime_error(fmt::format("{}: {}", o.images[0], errors[0]));
  auto ie = ctx.embed_images({&imgs[0]});
  auto te = ctx.embed_texts(o.texts);
  for (size_t i = 0; i < o.texts.size(); ++i) {
    float cos = clip_cosine(ie[0], te[i]);
    Json line = {{"text", o.texts[i]}, {"similarity", cos}};
    if (float p = ctx.match_probability(cos); !std::isnan(p)) line["probability"] = p;  // SigLIP
    print(line);
  }
  return 0;
}

}  // namespace

void add_clip_commands(CLI::App& app, Action& action) {
  auto t = std::make_shared<ClipOptions>();
  auto* tok = app.add_subcommand(
      "tokenize",
      "Token ids of each TEXT as the model's text tower takes them (CLIP: BOS/EOS, cut to 77; SigLIP: padded "
      "to 64), one JSON array per line");
  tok->add_option("--model", t->model, "model directory (any layout `embed` takes), or `demo`")->required();
  tok->add_option("texts", t->texts, "texts")->required();
  tok->callback([t, &action] { action = [t] { return run_tokenize(*t); }; });

  auto e = std::make_shared<ClipOptions>();
  auto* emb = app.add_subcommand(
      "embed", "Projected, L2-normalised CLIP embeddings as JSON lines (images first, then texts)");
  add_model_options(emb, *e);
  emb->add_option("--image", e->images, "image file (repeatable)");
  emb->add_option("--text", e->texts, "text (repeatable)");
  emb->callback([e, &action] {
    if (e->images.empty() && e->texts.empty())
      throw CLI::ValidationError("embed", "give at least one --image or --text");
    action = [e] { return run_embed(*e); };
  });

  auto s = std::make_shared<ClipOptions>();
  auto* sc = app.add_subcommand(
      "score",
      "Cosine similarity of an image to each text, as JSON lines (SigLIP models add their sigmoid match "
      "probability)");
  add_model_options(sc, *s);
  sc->add_option("--image", s->image, "image file")->required();
  sc->add_option("--text", s->texts, "text (repeatable)")->required();
  sc->callback([s, &action] {
    s->images = {s->image};
    action = [s] { return run_score(*s); };
  });
}

}  // namespace capforge::cli
