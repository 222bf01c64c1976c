// capforge describe --model M.gguf --mmproj P.gguf IMAGE...: captions with a VLM, JSON lines.
#include <fmt/format.h>

#include <chrono>
#include <cstdio>
#include <memory>
#include <stdexcept>

#include "capforge/captioner.h"
#include "capforge/image.h"
#include "cli/captioner_options.h"
#include "cli/common.h"
#include "core/log.h"

namespace capforge::cli {

namespace {

struct DescribeOptions {
  CaptionerCli c;
  std::vector<std::string> images;
};

void print(const Json& j) {
  std::printf("%s\n", j.dump(-1, ' ', false, Json::error_handler_t::replace).c_str());
}

int run_describe(DescribeOptions& o) {
  resolve_demo_model(o.c.params);
  const bool blip = o.c.params.family == "blip";
  if (!blip && o.c.params.mmproj.empty())
    throw UsageError("--mmproj is required: the projector GGUF that goes with --model",
                     "or use --model demo, or --captioner blip with a BLIP dir");
  if (blip && !o.c.params.mmproj.empty())
    throw UsageError("--mmproj is for VLM captioners; BLIP's dir holds its vision tower");
  build_schedule(o.c);
  const CaptionerParams& params = o.c.params;
  std::shared_ptr<const CaptionModel> model;
  try {
    model = load_captioner(params);
  } catch (const std::exception& e) {
    throw UsageError(e.what(), blip
                                   ? captioner_model_hint(params)
                                   : "--model takes the language model GGUF and --mmproj its projector GGUF, "
                                     "e.g. llava-1.5 or SmolVLM files from ggml-org on Hugging Face");
  }
  std::unique_ptr<Captioner> cap;
  try {
    cap = std::make_unique<Captioner>(model, params);
  } catch (const std::invalid_argument& e) {  // settings that cannot work with this model
    throw UsageError(e.what(), "see `capforge describe --help` for the resource flags");
  }
  std::vector<Image> imgs(o.images.size());
  std::vector<std::string> errors(o.images.size());
  std::vector<CaptionRequest> reqs;
  std::vector<size_t> req_of;
  for (size_t i = 0; i < o.images.size(); ++i) {
    std::string bytes;
    DecodedImage d;
    errors[i] = read_input_file(o.images[i], bytes);  // a directory or unreadable file: its own error line
    if (errors[i].empty()) errors[i] = decode_image(bytes, DecodeParams{}, d);
    if (!errors[i].empty()) continue;
    imgs[i] = std::move(d.pixels);
    reqs.push_back({o.images[i], &imgs[i]});
    req_of.push_back(i);
  }
  auto t0 = std::chrono::steady_clock::now();
  auto results = cap->caption(reqs);
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  int64_t tokens = 0;
  for (auto& r : results)
    for (auto& c : r.captions) tokens += c.tokens;
  info("captioned {} image(s) in {:.2f}s: {:.2f} images/s, {:.1f} tokens/s in kept candidates", reqs.size(),
       secs, reqs.size() / std::max(secs, 1e-9), tokens / std::max(secs, 1e-9));
  std::vector<Json> lines(o.images.size());
  for (size_t k = 0; k < results.size(); ++k) {
    size_t i = req_of[k];
    if (!results[k].error.empty()) {
      errors[i] = results[k].error;
      continue;
    }
    auto list = [](const std::vector<Candidate>& cands) {
      Json caps = Json::array();
      for (auto& c : cands)
        caps.push_back({{"text", c.text}, {"tokens", c.tokens}, {"logprob", c.logprob}, {"flags", c.flags}});
      return caps;
    };
    lines[i] = {{"image", o.images[i]}, {"captions", list(results[k].captions)}};
    for (size_t m = 0; m < results[k].more.size(); ++m)  // more prompts: "captions_NAME"
      lines[i]["captions_" + params.more_prompts[m].name] = list(results[k].more[m]);
  }
  int failed = 0;
  for (size_t i = 0; i < o.images.size(); ++i) {
    if (!errors[i].empty()) {
      print({{"image", o.images[i]}, {"error", errors[i]}});
      ++failed;
    } else {
      print(lines[i]);
    }
  }
  return failed ? 1 : 0;
}

}  // namespace

void add_describe(CLI::App& app, Action& action) {
  auto o = std::make_shared<DescribeOptions>();
  auto* cmd =
      app.add_subcommand("describe",
                         "Caption images with a VLM (text GGUF + mmproj) or BLIP (a Hugging Face dir): "
                         "JSON lines with every candidate");
  cmd->add_option("images", o->images, "image files")->required();
  add_captioner_options(cmd, o->c, /*model_required=*/true);
  cmd->add_option("--captioner", o->c.params.family,
                  "vlm (--model and --mmproj GGUFs) or blip (--model: a BLIP dir)")
      ->capture_default_str()
      ->check(CLI::IsMember({"vlm", "blip"}));
  cmd->add_option("--threads", o->c.params.threads, "CPU threads (0: the CPUs this process may use)")
      ->capture_default_str()
      ->check(threads_count());
  cmd->callback([o, &action] { action = [o] { return run_describe(*o); }; });
}

}  // namespace capforge::cli
