// BLIP's decoding engine (one per worker). Images take image slots as they free up: each image is
// encoded once and its cross-attention keys/values are computed once, then its candidates decode in
// the sequence slots of that image slot. Every step advances every live sequence by one token in a
// single batch (prompt tokens first, then sampled ones), so a new image joins as soon as a slot
// frees (continuous batching). A candidate's tokens depend only on its image, key and index.
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <optional>
#include <set>
#include <stdexcept>
#include <thread>

#include "core/cpus.h"
#include "core/log.h"
#include "ggml-alloc.h"
#include "models/blip/model.h"
#include "models/clip/preprocess.h"
#include "models/ggml_util.h"
#include "models/prompt_template.h"
#include "models/sampling/candidate.h"
#include "models/vlm/captioner_checks.h"

namespace capforge {

using blip::Cache;
using blip::ImageGraph;

namespace {

struct Seq {
  bool busy = false;
  int image = 0;      // image slot
  int candidate = 0;  // index among the image's candidates
  size_t fed = 0;     // prompt tokens fed so far
  int pos = 0;        // position of the next token fed
  int next = -1;      // sampled token to feed next
  std::optional<sampling::CandidateDecoder> dec;
};

struct ImageSlot {
  bool busy = false;
  size_t request = 0;
  int live = 0;
  std::vector<std::optional<Candidate>> found;
};

size_t image_nodes(const blip::BlipConfig& c, size_t images) {
  return 64 * (size_t)(c.vision.layers + c.text.layers) + 16 * images * c.text.layers + 512;
}

struct Graph {  // a graph context and its allocator
  explicit Graph(ggml_backend_t backend)
      : alloc(ggml_gallocr_new(ggml_backend_get_default_buffer_type(backend))) {}
  ~Graph() { ggml_gallocr_free(alloc); }
  ggml_gallocr_t alloc;
  std::vector<uint8_t> meta;
};

class BlipEngine : public CaptionModel::Engine {
 public:
  BlipEngine(std::shared_ptr<const BlipModel> m, const CaptionerParams& p)
      : model_(std::move(m)), params_(p) {
    vlm::check_captioner_params(params_);
    // VLM-only settings would be silently ignored: refuse them
    auto refuse = [](bool set, const char* what) {
      if (set) throw std::invalid_argument(fmt::format("{} is not supported by the BLIP captioner", what));
    };
    refuse(params_.harvest_eos > 0, "--harvest-eos (use --force-eos, LAION-COCO's rule)");
    refuse(!params_.stop.empty(), "--stop");
    refuse(!params_.chat_template.empty(), "--chat-template");
    refuse(!params_.mmproj.empty(), "--mmproj");
    refuse(!params_.more_prompts.empty(), "more than one --prompt (multi-prompt runs need a VLM captioner)");
    refuse(PromptTemplate(params_.response_prefix).has_placeholders(),
           "a placeholder in BLIP's prompt (--response-prefix)");
    const blip::TextConfig& t = model_->config.text;
    prompt_.push_back(t.bos_id);  // HF: input_ids[:, 0] = bos; the prompt's [SEP] dropped
    for (int id : model_->tokenizer->encode(params_.response_prefix)) prompt_.push_back(id);
    for (int c = 0; c < params_.candidates; ++c) max_new_ = std::max(max_new_, sampling_of(c).max_new_tokens);
    const int len = (int)prompt_.size() + max_new_;
    if (len - 1 > t.max_positions)
      throw std::invalid_argument(
          fmt::format("the prompt ({} tokens with [DEC]) and --max-new-tokens {} exceed BLIP's {} positions",
                      prompt_.size(), max_new_, t.max_positions));
    backend_ = init_backend(model_->device, params_.threads);
    threads_ = params_.threads > 0 ? params_.threads : available_cpus();
    const int images = std::max(1, params_.parallel / params_.candidates);
    cache_ = std::make_unique<blip::Cache>(model_->config, images, params_.candidates, len, backend_,
                                           model_->graph.fast);
    seqs_.resize((size_t)cache_->seq_slots());
    images_.resize((size_t)images);
    image_graph_ = std::make_unique<Graph>(backend_);
    step_graph_ = std::make_unique<Graph>(backend_);
    spdlog::debug("BLIP engine: {} image slots x {} candidates, prompt {} tokens, up to {} new", images,
                  params_.candidates, prompt_.size(), max_new_);
  }

  ~BlipEngine() override {
    step_graph_.reset();
    image_graph_.reset();
    cache_.reset();
    if (backend_) ggml_backend_free(backend_);
  }

  std::vector<CaptionResult> run(const std::vector<CaptionRequest>& reqs) override;

 private:
  const SamplingParams& sampling_of(int c) const {
    return params_.schedule.empty() ? params_.sampling
                                    : params_.schedule[(size_t)c % params_.schedule.size()];
  }
  void admit(const std::vector<CaptionRequest>& reqs, size_t& next, std::vector<CaptionResult>& out);
  void step(std::vector<CaptionResult>& out);
  void finish(Seq& s, sampling::End end, std::vector<CaptionResult>& out);

  std::shared_ptr<const BlipModel> model_;
  CaptionerParams params_;
  std::vector<int> prompt_;
  int max_new_ = 0;
  int threads_ = 1;
  ggml_backend_t backend_ = nullptr;
  std::unique_ptr<blip::Cache> cache_;
  std::unique_ptr<Graph> image_graph_, step_graph_;
  std::vector<Seq> seqs_;
  std::vector<ImageSlot> images_;
  // where the time goes (logged at debug level after each run)
  double encode_s_ = 0, step_s_ = 0;
  int64_t images_encoded_ = 0, steps_ = 0, fed_ = 0, logit_rows_ = 0;
};

void BlipEngine::admit(const std::vector<CaptionRequest>& reqs, size_t& next,
                       std::vector<CaptionResult>& out) {
  std::vector<int> slots;
  std::vector<float> pixels;
  for (size_t i = 0; i < images_.size() && next < reqs.size(); ++i) {
    if (images_[i].busy) continue;
    // the next request with a usable image takes this slot
    while (next < reqs.size()) {
      const CaptionRequest& r = reqs[next];
      const size_t index = next++;
      if (!r.image || r.image->empty()) {
        out[index].error = "no decoded image";
        continue;
      }
      try {
        clip::preprocess(*r.image, model_->config.preprocess, pixels);
      } catch (const std::exception& e) {
        out[index].error = fmt::format("cannot preprocess the image: {}", e.what());
        continue;
      }
      ImageSlot& im = images_[i];
      im.busy = true;
      im.request = index;
      im.live = params_.candidates;
      im.found.assign((size_t)params_.candidates, std::nullopt);
      slots.push_back((int)i);
      for (int c = 0; c < params_.candidates; ++c) {
        Seq& s = seqs_[(size_t)(i * params_.candidates + c)];
        s = Seq{};
        s.busy = true;
        s.image = (int)i;
        s.candidate = c;
        s.dec.emplace(sampling_of(c), sampling::candidate_seed(params_.seed, r.key, c), prompt_,
                      params_.force_eos);
      }
      break;
    }
  }
  if (slots.empty()) return;
  const blip::BlipConfig& c = model_->config;
  const size_t nodes = image_nodes(c, slots.size());
  const auto t0 = std::chrono::steady_clock::now();
  compute_graph(
      backend_, image_graph_->alloc, image_graph_->meta, nodes, "BLIP",
      [&](ggml_context* ctx, ggml_cgraph* gf) {
        return blip::build_image(ctx, gf, c, *model_->weights, *cache_, slots, model_->graph);
      },
      [&](blip::ImageGraph& g) {
        ggml_backend_tensor_set(g.pixels, pixels.data(), 0, ggml_nbytes(g.pixels));
      },
      [](blip::ImageGraph&) {});
  encode_s_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  images_encoded_ += (int64_t)slots.size();
}

void BlipEngine::finish(Seq& s, sampling::End end, std::vector<CaptionResult>& out) {
  ImageSlot& im = images_[(size_t)s.image];
  const sampling::CandidateDecoder& d = *s.dec;
  if (d.n_new() > 0) {  // a candidate ended before its first token has no caption of its own
    Candidate cand;
    cand.text = model_->tokenizer->decode(d.tokens());
    cand.flags = {sampling::end_flag(end)};
    cand.tokens = d.n_new();
    cand.logprob = d.logprob();
    im.found[(size_t)s.candidate] = std::move(cand);
  }
  s.busy = false;
  s.dec.reset();
  if (--im.live > 0) return;
  CaptionResult& r = out[im.request];
  std::set<std::string> seen;  // de-duplicated, in candidate order
  for (auto& f : im.found)
    if (f && seen.insert(f->text).second) r.captions.push_back(std::move(*f));
  if (r.captions.empty()) r.error = "every candidate ended before its first token";
  im.busy = false;
  im.found.clear();
}

void BlipEngine::step(std::vector<CaptionResult>& out) {
  std::vector<int32_t> tokens, pos, live, want;
  std::vector<int64_t> rows;
  int span = 0;
  for (size_t i = 0; i < seqs_.size(); ++i) {
    Seq& s = seqs_[i];
    if (!s.busy) continue;
    const bool in_prompt = s.fed < prompt_.size();
    if (!in_prompt || s.fed + 1 == prompt_.size()) want.push_back((int32_t)live.size());
    tokens.push_back(in_prompt ? prompt_[s.fed] : s.next);
    pos.push_back(s.pos);
    rows.push_back((int64_t)i * cache_->max_len + s.pos);
    live.push_back((int32_t)i);
    span = std::max(span, s.pos + 1);
  }
  if (live.empty()) return;
  std::vector<int32_t> scatter(seqs_.size(), 0);
  for (size_t j = 0; j < live.size(); ++j) scatter[(size_t)live[j]] = (int32_t)j;
  const ggml_fp16_t zero = ggml_fp32_to_fp16(0.0f), masked = ggml_fp32_to_fp16(-INFINITY);
  std::vector<ggml_fp16_t> mask(seqs_.size() * (size_t)span, masked);
  for (size_t i = 0; i < seqs_.size(); ++i) mask[i * span] = zero;  // empty slots: a harmless row
  for (size_t j = 0; j < live.size(); ++j)
    for (int k = 0; k <= pos[j]; ++k) mask[(size_t)live[j] * span + k] = zero;
  const int n = (int)live.size(), m = (int)want.size(), V = model_->config.text.vocab;
  std::vector<float> logits;
  if (m == 0) want.push_back(0);  // the graph always computes one row; none is read then
  const auto t0 = std::chrono::steady_clock::now();
  compute_graph(
      backend_, step_graph_->alloc, step_graph_->meta, 64 * (size_t)model_->config.text.layers + 256, "BLIP",
      [&](ggml_context* ctx, ggml_cgraph* gf) {
        return blip::build_step(ctx, gf, model_->config, *model_->weights, *cache_, n, span, (int)want.size(),
                                model_->graph);
      },
      [&](blip::StepGraph& g) {
        ggml_backend_tensor_set(g.tokens, tokens.data(), 0, ggml_nbytes(g.tokens));
        ggml_backend_tensor_set(g.pos, pos.data(), 0, ggml_nbytes(g.pos));
        ggml_backend_tensor_set(g.rows, rows.data(), 0, ggml_nbytes(g.rows));
        ggml_backend_tensor_set(g.live, live.data(), 0, ggml_nbytes(g.live));
        ggml_backend_tensor_set(g.scatter, scatter.data(), 0, ggml_nbytes(g.scatter));
        ggml_backend_tensor_set(g.mask, mask.data(), 0, ggml_nbytes(g.mask));
        ggml_backend_tensor_set(g.out, want.data(), 0, ggml_nbytes(g.out));
        std::vector<float> cross((size_t)ggml_nelements(g.cross_mask), 0.0f);
        for (size_t r = 0; r < cross.size(); r += (size_t)cache_->padded_tokens)
          std::fill(cross.begin() + (long)r + cache_->image_tokens,
                    cross.begin() + (long)r + cache_->padded_tokens, -INFINITY);
        ggml_backend_tensor_set(g.cross_mask, cross.data(), 0, ggml_nbytes(g.cross_mask));
      },
      [&](blip::StepGraph& g) {
        if (m == 0) return;
        logits.resize((size_t)ggml_nelements(g.logits));
        ggml_backend_tensor_get(g.logits, logits.data(), 0, ggml_nbytes(g.logits));
      });
  step_s_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ++steps_, fed_ += n, logit_rows_ += m;
  // Token choice per row with logits (rows `want`, in live order), on the worker's threads: each
  // candidate's decoder is its own state, so the result does not depend on the split.
  const std::vector<int> eos = {model_->config.text.sep_id};
  std::vector<sampling::Step> chosen((size_t)m);
  // OpenMP, as ggml's CPU threads: the same pool, so its spinning workers do not compete with ours
#pragma omp parallel for num_threads(threads_) schedule(static) if (m >= 8)
  for (int r = 0; r < m; ++r)
    chosen[(size_t)r] =
        seqs_[(size_t)live[(size_t)want[(size_t)r]]].dec->next(logits.data() + (size_t)r * V, V, eos);

  size_t w = 0;
  for (size_t j = 0; j < live.size(); ++j) {
    Seq& s = seqs_[(size_t)live[j]];
    const bool had_logits = w < (size_t)m && want[w] == (int32_t)j;
    if (s.fed < prompt_.size()) ++s.fed;
    ++s.pos;
    if (!had_logits) continue;
    const sampling::Step& st = chosen[w++];
    if (st.end != sampling::End::none) {
      finish(s, st.end, out);
      continue;
    }
    s.next = st.token;
  }
}

std::vector<CaptionResult> BlipEngine::run(const std::vector<CaptionRequest>& reqs) {
  std::vector<CaptionResult> out(reqs.size());
  size_t next = 0;
  auto cancelled = [this] { return params_.cancel && params_.cancel->load(); };
  auto busy = [this] { return std::any_of(images_.begin(), images_.end(), [](auto& i) { return i.busy; }); };
  while (next < reqs.size() || busy()) {
    if (cancelled()) {
      for (auto& s : seqs_) s = Seq{};
      for (auto& i : images_) i = ImageSlot{};
      for (auto& r : out)
        if (r.captions.empty() && r.error.empty()) r.error = "interrupted";
      break;
    }
    admit(reqs, next, out);
    if (!busy()) continue;  // every remaining request so far failed before decoding
    step(out);
  }
  spdlog::debug(
      "BLIP timing: {} images encoded in {:.3f}s; {} decode steps in {:.3f}s, {} tokens fed, {} logit rows",
      images_encoded_, encode_s_, steps_, step_s_, fed_, logit_rows_);
  return out;
}

}  // namespace

std::vector<std::vector<float>> blip::vision_states(const BlipModel& m, const std::vector<float>& pixels,
                                                    int batch, int threads) {
  ggml_backend_t backend = init_backend(m.device, threads);
  std::vector<std::vector<float>> out;
  try {
    Cache cache(m.config, batch, 1, 2, backend, m.graph.fast);
    Graph graph(backend);
    std::vector<int> slots(batch);
    for (int b = 0; b < batch; ++b) slots[(size_t)b] = b;
    compute_graph(
        backend, graph.alloc, graph.meta, image_nodes(m.config, slots.size()), "BLIP",
        [&](ggml_context* ctx, ggml_cgraph* gf) {
          return build_image(ctx, gf, m.config, *m.weights, cache, slots, m.graph);
        },
        [&](ImageGraph& g) {
          if (pixels.size() != (size_t)ggml_nelements(g.pixels))
            throw std::logic_error("pixel buffer size mismatch");
          ggml_backend_tensor_set(g.pixels, pixels.data(), 0, ggml_nbytes(g.pixels));
        },
        [&](ImageGraph& g) {
          std::vector<float> all((size_t)ggml_nelements(g.hidden));
          ggml_backend_tensor_get(g.hidden, all.data(), 0, ggml_nbytes(g.hidden));
          const size_t per = all.size() / (size_t)batch;
          for (int b = 0; b < batch; ++b)
            out.emplace_back(all.begin() + b * per, all.begin() + (b + 1) * per);
        });
  } catch (...) {
    ggml_backend_free(backend);
    throw;
  }
  ggml_backend_free(backend);
  return out;
}

std::unique_ptr<CaptionModel::Engine> BlipModel::start(std::shared_ptr<const CaptionModel> self,
                                                       const CaptionerParams& params) const {
  if (self.get() != this) throw std::logic_error("BlipModel::start: self is another model");
  return std::make_unique<BlipEngine>(std::static_pointer_cast<const BlipModel>(self), params);
}

}  // namespace capforge
