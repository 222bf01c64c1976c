// The captioning engine: images are admitted while KV cells and sequence slots allow, each image's
// prompt (with the image) is evaluated once and copied to its candidates' sequences, and every
// step decodes one token for every live sequence in a single batch.
#include <fmt/format.h>

#include <algorithm>
#include <deque>
#include <memory>
#include <set>
#include <stdexcept>
#include <thread>

#include "core/log.h"
#include "models/vlm/candidate_text.h"
#include "models/vlm/captioner_checks.h"
#include "models/vlm/model.h"
#include "models/sampling/sampler.h"

namespace capforge {

namespace {

struct ChunksFree {
  void operator()(mtmd_input_chunks* c) const { mtmd_input_chunks_free(c); }
};
using Chunks = std::unique_ptr<mtmd_input_chunks, ChunksFree>;

struct Group {  // one image and its candidates
  size_t request = 0;
  int cells = 0;  // KV cells reserved
  int live = 0;   // candidates still decoding
  std::vector<std::vector<Candidate>> per_candidate;
};

struct Seq {
  size_t group = 0;
  int candidate = 0;
  llama_seq_id id = 0;
  llama_pos pos = 0;
  SamplingParams p;
  sampling::Rng rng{0};
  std::vector<int> tokens;  // response prefix tokens, then generated ones
  size_t prefix_tokens = 0;
  std::string text;  // generated text (without the response prefix)
  double logprob = 0;
  int n_new = 0;
  std::vector<float> logits;
  std::set<std::string> harvested;
};

}  // namespace

// One worker's llama context and the sequences in flight.
struct VlmEngine : CaptionModel::Engine {
  VlmEngine(std::shared_ptr<const VlmModel> m, CaptionerParams p) : model(std::move(m)), params(std::move(p)) {
    vlm::check_captioner_params(params);
    llama_context_params cp = llama_context_default_params();
    if (params.ctx_size <= 0) params.ctx_size = params.parallel * 1024;
    cp.n_ctx = (uint32_t)params.ctx_size;
    cp.n_batch = (uint32_t)std::max(params.batch, params.parallel);
    cp.n_ubatch = std::min<uint32_t>(cp.n_batch, 512);
    cp.n_seq_max = (uint32_t)params.parallel;
    // A stream per sequence: each token attends only over its own sequence's cells (a unified
    // cache makes every token scan every live sequence's cells); a prefix is copied once per
    // candidate instead, which costs far less.
    cp.kv_unified = params.kv_unified;
    seq_cells = params.kv_unified ? params.ctx_size : params.ctx_size / params.parallel;
    int threads =
        params.threads > 0 ? params.threads : (int)std::max(1u, std::thread::hardware_concurrency());
    cp.n_threads = cp.n_threads_batch = threads;
    cp.no_perf = true;
    ctx = llama_init_from_model(model->model, cp);
    if (!ctx)
      throw std::runtime_error("cannot create a llama context (try a smaller --ctx-size or --parallel)");
    for (int i = params.parallel - 1; i >= 0; --i) free_ids.push_back(i);
    batch = llama_batch_init(std::max(params.parallel, 1), 0, 1);
    prompt_batch = llama_batch_init(params.batch, 0, 1);
    // the prompt, once: chat template around the media marker and the prompt, then the prefix
    std::string content = std::string(mtmd_default_marker()) + params.prompt;
    llama_chat_message msg{"user", content.c_str()};
    int n = llama_chat_apply_template(model->chat_template.c_str(), &msg, 1, true, nullptr, 0);
    std::string buf((size_t)std::max(n, 0), '\0');
    llama_chat_apply_template(model->chat_template.c_str(), &msg, 1, true, buf.data(), n);
    prompt = buf + params.response_prefix;
    spdlog::debug("captioner prompt: {}", prompt);
    prefix_tokens = tokenize(params.response_prefix);
    for (int i = 0; i < params.candidates; ++i) {
      SamplingParams sp =
          params.schedule.empty() ? params.sampling : params.schedule[(size_t)i % params.schedule.size()];
      max_new = std::max(max_new, sp.max_new_tokens);
    }
    try {
      check_ctx_size();
    } catch (...) {  // the destructor does not run for a constructor that throws
      llama_batch_free(batch);
      llama_batch_free(prompt_batch);
      llama_free(ctx);
      throw;
    }
  }

  // The KV cells one small image needs with the prompt and every candidate's tokens; the context
  // must hold at least that (a larger image of a dynamic-resolution projector may need more,
  // which admit() reports per image).
  void check_ctx_size() {
    std::vector<unsigned char> grey(64 * 64 * 3, 128);
    mtmd_bitmap* bmp = mtmd_bitmap_init(64, 64, grey.data());
    Chunks chunks(mtmd_input_chunks_init());
    mtmd_input_text text{prompt.c_str(), prompt.size(), /*add_special=*/true, /*parse_special=*/true};
    const mtmd_bitmap* bitmaps[1] = {bmp};
    int32_t rc = mtmd_tokenize(model->mtmd, chunks.get(), &text, bitmaps, 1);
    mtmd_bitmap_free(bmp);
    if (rc != 0) return;  // the projector's own limits: admit() reports them per image
    const int prompt_cells = (int)mtmd_helper_get_n_tokens(chunks.get());
    int need = prompt_cells + params.candidates * max_new;
    // a stream per sequence: each candidate's stream holds the prompt and its own tokens
    if (!params.kv_unified && prompt_cells + max_new > 256)
      need = std::max(need, params.parallel * (prompt_cells + max_new));
    if (params.ctx_size < need)
      throw std::invalid_argument(fmt::format(
          "--ctx-size {} is too small: an image with the prompt takes {} KV cells and {} candidate(s) of up "
          "to {} "
          "new tokens need {} more; use --ctx-size {} or more (or 0: automatic)",
          params.ctx_size, prompt_cells, params.candidates, max_new, params.candidates * max_new, need));
  }

  ~VlmEngine() override {
    llama_batch_free(batch);
    llama_batch_free(prompt_batch);
    if (ctx) llama_free(ctx);
  }

  std::vector<int> tokenize(const std::string& text) const {
    if (text.empty()) return {};
    int n = -llama_tokenize(model->vocab, text.c_str(), (int)text.size(), nullptr, 0, false, false);
    std::vector<int> out((size_t)std::max(n, 0));
    llama_tokenize(model->vocab, text.c_str(), (int)text.size(), out.data(), n, false, false);
    return out;
  }

  std::string piece(int token) const {
    char buf[256];
    int n = llama_token_to_piece(model->vocab, token, buf, sizeof buf, 0, false);
    return n > 0 ? std::string(buf, (size_t)n) : std::string();
  }

  std::vector<CaptionResult> run(const std::vector<CaptionRequest>& reqs) override;
  bool admit(const CaptionRequest& req, size_t index, std::vector<CaptionResult>& out);
  // Evaluates `chunks` into sequence `seq` from position 0; returns the next position.
  llama_pos prefill(mtmd_input_chunks* chunks, llama_seq_id seq);
  void step(std::vector<CaptionResult>& out);
  void finish(Seq& s, std::vector<std::string> flags, std::vector<CaptionResult>& out);
  void harvest(Seq& s);
  // Cancelled: frees every live sequence; unfinished requests get error "interrupted".
  void abandon(std::vector<CaptionResult>& out);

  std::shared_ptr<const VlmModel> model;
  CaptionerParams params;
  llama_context* ctx = nullptr;
  llama_batch batch{};         // one token per live sequence
  llama_batch prompt_batch{};  // prompt tokens of one sequence
  std::string prompt;
  std::vector<int> prefix_tokens;
  int max_new = 0;
  std::vector<llama_seq_id> free_ids;
  int cells_used = 0;  // unified cache only
  int seq_cells = 0;   // KV cells one sequence may use
  std::vector<Group> groups;
  std::vector<Seq> live;
};

llama_pos VlmEngine::prefill(mtmd_input_chunks* chunks, llama_seq_id seq) {
  llama_pos n_past = 0;
  const size_t n = mtmd_input_chunks_size(chunks);
  for (size_t i = 0; i < n; ++i) {
    const mtmd_input_chunk* chunk = mtmd_input_chunks_get(chunks, i);
    const bool last_chunk = i + 1 == n;
    if (mtmd_input_chunk_get_type(chunk) == MTMD_INPUT_CHUNK_TYPE_TEXT) {
      size_t nt = 0;
      const llama_token* toks = mtmd_input_chunk_get_tokens_text(chunk, &nt);
      for (size_t k = 0; k < nt;) {
        prompt_batch.n_tokens = 0;
        for (; k < nt && prompt_batch.n_tokens < params.batch; ++k) {
          int j = prompt_batch.n_tokens++;
          prompt_batch.token[j] = toks[k];
          prompt_batch.pos[j] = n_past++;
          prompt_batch.n_seq_id[j] = 1;
          prompt_batch.seq_id[j][0] = seq;
          prompt_batch.logits[j] = last_chunk && k + 1 == nt;
        }
        if (llama_decode(ctx, prompt_batch) != 0) throw std::runtime_error("decoding the prompt failed");
      }
      continue;
    }
    std::vector<float> embd;
    {
      std::lock_guard lock(model->encode_mu);
      if (mtmd_encode_chunk(model->mtmd, chunk) != 0)
        throw std::runtime_error("the projector could not encode the image");
      size_t len = (size_t)llama_model_n_embd_inp(model->model) * mtmd_input_chunk_get_n_tokens(chunk);
      const float* out = mtmd_get_output_embd(model->mtmd);
      embd.assign(out, out + len);
    }
    llama_pos next = n_past;
    if (mtmd_helper_decode_image_chunk(model->mtmd, ctx, chunk, embd.data(), n_past, seq, params.batch, &next,
                                       nullptr, nullptr) != 0)
      throw std::runtime_error("decoding the image embeddings failed");
    n_past = next;
    if (last_chunk) throw std::runtime_error("the prompt ends with the image: no text to continue from");
  }
  return n_past;
}

bool VlmEngine::admit(const CaptionRequest& req, size_t index, std::vector<CaptionResult>& out) {
  const Image& img = *req.image;
  if (img.empty()) {
    out[index].error = "no decoded image";
    return true;
  }
  mtmd_bitmap* bmp = mtmd_bitmap_init((uint32_t)img.width, (uint32_t)img.height, img.rgb.data());
  Chunks chunks(mtmd_input_chunks_init());
  mtmd_input_text text{prompt.c_str(), prompt.size(), /*add_special=*/true, /*parse_special=*/true};
  const mtmd_bitmap* bitmaps[1] = {bmp};
  int32_t rc = mtmd_tokenize(model->mtmd, chunks.get(), &text, bitmaps, 1);
  mtmd_bitmap_free(bmp);
  if (rc != 0) {
    out[index].error =
        fmt::format("the projector rejected the image ({}x{}, code {})", img.width, img.height, rc);
    return true;
  }
  const int n_cand = params.candidates;
  const int cells = (int)mtmd_helper_get_n_tokens(chunks.get()) + n_cand * max_new;
  if (cells > params.ctx_size) {
    out[index].error = fmt::format(
        "image and prompt need {} KV cells with {} candidates of up to {} tokens; raise "
        "--ctx-size (now {})",
        cells, n_cand, max_new, params.ctx_size);
    return true;
  }
  if ((int)free_ids.size() < n_cand || cells_used + cells > params.ctx_size) return false;  // wait for space

  llama_seq_id first = free_ids.back();
  llama_pos pos = 0;
  try {
    pos = prefill(chunks.get(), first);
  } catch (const std::exception& e) {
    llama_memory_seq_rm(llama_get_memory(ctx), first, -1, -1);
    out[index].error = e.what();
    return true;
  }
  const float* logits = llama_get_logits_ith(ctx, -1);
  Group g;
  g.request = index;
  g.cells = cells;
  g.live = n_cand;
  g.per_candidate.resize((size_t)n_cand);
  groups.push_back(std::move(g));
  cells_used += cells;
  for (int c = 0; c < n_cand; ++c) {
    Seq s;
    s.group = groups.size() - 1;
    s.candidate = c;
    s.id = free_ids.back();
    free_ids.pop_back();
    if (s.id != first) llama_memory_seq_cp(llama_get_memory(ctx), first, s.id, -1, -1);
    s.pos = pos;
    s.p = params.schedule.empty() ? params.sampling : params.schedule[(size_t)c % params.schedule.size()];
    s.rng = sampling::Rng(sampling::candidate_seed(params.seed, req.key, c));
    s.tokens = prefix_tokens;
    s.prefix_tokens = prefix_tokens.size();
    s.logits.assign(logits, logits + model->n_vocab);
    live.push_back(std::move(s));
  }
  return true;
}

void VlmEngine::harvest(Seq& s) {
  if (s.text.empty() || !s.harvested.insert(s.text).second) return;
  std::vector<std::string> flags = {"harvested_eos"};
  Candidate c;
  c.text = vlm::clean_caption(params.response_prefix + s.text, params.prompt, false, false, flags);
  c.flags = flags;
  c.tokens = s.n_new;
  c.logprob = s.logprob;
  groups[s.group].per_candidate[(size_t)s.candidate].push_back(std::move(c));
}

void VlmEngine::finish(Seq& s, std::vector<std::string> flags, std::vector<CaptionResult>& out) {
  bool truncated = std::find(flags.begin(), flags.end(), "max_length") != flags.end();
  Candidate c;
  c.text = vlm::clean_caption(params.response_prefix + s.text, params.prompt, params.drop_fragment, truncated,
                              flags);
  c.flags = flags;
  c.tokens = s.n_new;
  c.logprob = s.logprob;
  Group& g = groups[s.group];
  g.per_candidate[(size_t)s.candidate].push_back(std::move(c));
  llama_memory_seq_rm(llama_get_memory(ctx), s.id, -1, -1);
  free_ids.push_back(s.id);
  std::sort(free_ids.rbegin(),
            free_ids.rend());  // lowest id at the back: placement independent of finish order
  if (--g.live > 0) return;
  cells_used -= g.cells;
  CaptionResult& r = out[g.request];
  std::set<std::string> seen;
  for (auto& list : g.per_candidate)
    for (auto& cand : list)
      if (seen.insert(cand.text).second) r.captions.push_back(std::move(cand));
  g.per_candidate.clear();
}

void VlmEngine::step(std::vector<CaptionResult>& out) {
  batch.n_tokens = 0;
  std::vector<size_t> in_batch;
  for (size_t i = 0; i < live.size(); ++i) {
    Seq& s = live[i];
    sampling::Choice ch =
        sampling::choose(s.logits.data(), model->n_vocab, s.tokens, s.n_new, model->eog, s.p, s.rng);
    // LAION-COCO's force-EOS: a raw p(end) above the threshold completes the candidate whatever
    // n_new is; the token sampled at this step is dropped.
    if (params.force_eos > 0 && ch.p_eos > params.force_eos) {
      finish(s, {"forced_eos"}, out);
      s.id = -1;
      continue;
    }
    if (params.harvest_eos > 0 && s.n_new >= s.p.min_new_tokens && ch.p_eos >= params.harvest_eos) harvest(s);
    if (std::find(model->eog.begin(), model->eog.end(), ch.token) != model->eog.end()) {
      finish(s, {"eos"}, out);
      s.id = -1;
      continue;
    }
    s.logprob += ch.logprob;
    s.tokens.push_back(ch.token);
    s.n_new++;
    s.text += piece(ch.token);
    if (size_t at = vlm::find_stop(s.text, params.stop); at != std::string::npos) {
      s.text.resize(at);
      finish(s, {"stop"}, out);
      s.id = -1;
      continue;
    }
    std::vector<int> gen(s.tokens.begin() + (long)s.prefix_tokens, s.tokens.end());
    if (int keep = vlm::loop_cut(gen, params.loop_repeats); keep >= 0) {
      s.text.clear();
      for (int k = 0; k < keep; ++k) s.text += piece(gen[(size_t)k]);
      finish(s, {"loop"}, out);
      s.id = -1;
      continue;
    }
    if (s.n_new >= s.p.max_new_tokens) {
      finish(s, {"max_length"}, out);
      s.id = -1;
      continue;
    }
    int j = batch.n_tokens++;
    batch.token[j] = ch.token;
    batch.pos[j] = s.pos++;
    batch.n_seq_id[j] = 1;
    batch.seq_id[j][0] = s.id;
    batch.logits[j] = true;
    in_batch.push_back(i);
  }
  if (batch.n_tokens > 0) {
    if (llama_decode(ctx, batch) != 0) throw std::runtime_error("llama_decode failed during generation");
    for (size_t j = 0; j < in_batch.size(); ++j) {
      const float* l = llama_get_logits_ith(ctx, (int32_t)j);
      std::copy(l, l + model->n_vocab, live[in_batch[j]].logits.begin());
    }
  }
  live.erase(std::remove_if(live.begin(), live.end(), [](const Seq& s) { return s.id < 0; }), live.end());
}

void VlmEngine::abandon(std::vector<CaptionResult>& out) {
  for (Seq& s : live) {
    llama_memory_seq_rm(llama_get_memory(ctx), s.id, -1, -1);
    free_ids.push_back(s.id);
  }
  std::sort(free_ids.rbegin(), free_ids.rend());
  live.clear();
  groups.clear();
  cells_used = 0;
  for (auto& r : out)
    if (r.captions.empty() && r.error.empty()) r.error = "interrupted";
}

std::vector<CaptionResult> VlmEngine::run(const std::vector<CaptionRequest>& reqs) {
  std::vector<CaptionResult> out(reqs.size());
  groups.clear();
  size_t next = 0;
  auto cancelled = [this] { return params.cancel && params.cancel->load(); };
  while (next < reqs.size() || !live.empty()) {
    while (next < reqs.size() && !cancelled() && admit(reqs[next], next, out)) ++next;
    if (cancelled()) {  // between images and decode steps: abandon the rest
      abandon(out);
      break;
    }
    if (live.empty()) {
      if (next < reqs.size())
        throw std::logic_error("captioner could not admit an image into an empty context");
      break;
    }
    step(out);
  }
  return out;
}

std::unique_ptr<CaptionModel::Engine> VlmModel::start(std::shared_ptr<const CaptionModel> self,
                                                      const CaptionerParams& params) const {
  if (self.get() != this) throw std::logic_error("VlmModel::start: self is another model");
  return std::make_unique<VlmEngine>(std::static_pointer_cast<const VlmModel>(self), params);
}

}  // namespace capforge
