// The Repairer: context setup, waves of captions, decode steps and outputs (see engine.h; the
// family-specific input step and tokenisation: input.cpp).
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <thread>

#include "core/cpus.h"
#include "core/log.h"
#include "core/text.h"
#include "models/repair/engine.h"

namespace capforge {

namespace repair {
std::string clean_up_tokenization(std::string s) {
  static const std::pair<const char*, const char*> kRules[] = {
      {" .", "."},     {" ?", "?"},   {" !", "!"},   {" ,", ","},     {" ' ", "'"},
      {" n't", "n't"}, {" 'm", "'m"}, {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"}};
  for (auto [from, to] : kRules) {  // each rule over the whole string, in HF's order
    const size_t nf = std::strlen(from), nt = std::strlen(to);
    for (size_t at = s.find(from); at != std::string::npos; at = s.find(from, at + nt)) s.replace(at, nf, to);
  }
  return s;
}
}  // namespace repair

using namespace repair;

namespace {
constexpr int kMaxSeq = 256;  // llama.cpp's LLAMA_MAX_SEQ (src/llama-cparams.h)

std::shared_ptr<const LlamaRepairModel> as_llama(std::shared_ptr<const RepairModel> m) {
  auto r = std::dynamic_pointer_cast<const LlamaRepairModel>(m);
  if (!r) throw std::invalid_argument("Repairer needs a model from load_repair_model()");
  return r;
}

int round_up(int v, int to) { return (v + to - 1) / to * to; }
}  // namespace

Repairer::Impl::Impl(std::shared_ptr<const RepairModel> m, const RepairParams& p)
    : model(as_llama(std::move(m))), params(p), ptok(model->vocab) {
  const int B = params.beams;
  if (B < 1) throw std::invalid_argument("repair beams must be >= 1");
  if (B > kMaxSeq / 2)
    throw std::invalid_argument(fmt::format(
        "repair beams must be <= {} (llama.cpp's {} sequence ids, 2 per beam)", kMaxSeq / 2, kMaxSeq));
  if (B > 1 && model->n_vocab <= (int)model->eog.size())
    throw std::invalid_argument(
        "repair beam search needs a vocabulary with tokens other than end-of-generation");
  if (params.parallel < 0 || (params.parallel > 0 && params.parallel < B))
    throw std::invalid_argument(fmt::format(
        "repair parallel ({}) must be >= beams ({}), or 0 for the engine's default", params.parallel, B));
  // 0: the engine's default (repair.h)
  const int parallel =
      params.parallel > 0
          ? params.parallel
          : std::max(model->engine == "ggml" ? RepairParams::kParallelGgml : RepairParams::kParallelLlama, B);
  if (!std::isfinite(params.length_penalty))
    throw std::invalid_argument("repair length penalty must be finite");
  if (!(params.repetition_penalty > 0) || !std::isfinite(params.repetition_penalty))
    throw std::invalid_argument("repair repetition penalty must be > 0");
  if (!(params.max_tokens_ratio >= 0) || !std::isfinite(params.max_tokens_ratio) ||
      params.max_tokens_extra < 0 || (params.max_tokens_ratio == 0 && params.max_tokens_extra == 0))
    throw std::invalid_argument("repair max tokens: ratio and extra must be >= 0 and not both 0");
  if (params.threads < 0) throw std::invalid_argument("repair threads must be >= 0");
  if (params.kv_type != "f16" && params.kv_type != "f32")
    throw std::invalid_argument(fmt::format("repair KV type must be f16 or f32, not '{}'", params.kv_type));
  check_engine_name(params.engine);  // throws invalid_argument
  if (params.engine != "auto" && params.engine != model->engine)
    throw std::invalid_argument(
        fmt::format("repair engine {} asked, but the repair model {} was loaded for the {} engine",
                    params.engine, model->path, model->engine));
  beam_cfg.num_beams = B;
  beam_cfg.length_penalty = params.length_penalty;
  beam_cfg.early_stopping = parse_early_stopping(params.early_stopping);  // throws invalid_argument
  beam_cfg.repetition_penalty = params.repetition_penalty;
  beam_cfg.eos.assign(model->eog.begin(), model->eog.end());
  if (!model->t5) build_frame();  // throws invalid_argument without {caption}

  const int ids_per_job = B == 1 ? 1 : 2 * B;
  // a parallel above what the sequence ids allow is clamped (repair.h)
  max_jobs = std::max(1, std::min(parallel / B, kMaxSeq / ids_per_job));
  const int seqs = max_jobs * B;  // sequences decoded per step at most
  // T5's relative positions make n_ctx_train a soft limit; it is still the cap
  const int n_ctx_train = model->n_ctx_train > 0 ? model->n_ctx_train : 512;
  // the longest input one caption may have; its worst case must fit the context alone
  int job_cells_max = 0;
  if (model->t5) {
    seq_limit = std::min(n_ctx_train, 2048);  // a file's context_length is untrusted; captions are short
    job_cells_max = B * ((int)std::ceil(params.max_tokens_ratio * seq_limit) + params.max_tokens_extra + 1);
    // a wave's encoder tokens go through one ubatch
    n_batch = std::max({seq_limit, std::min(2048, max_jobs * 64), seqs});
  } else {
    seq_limit = std::min(n_ctx_train, 4096);
    job_cells_max = B * (seq_limit + 1);
    n_batch = std::max(seqs, 512);
  }
  n_ctx = round_up(std::max(seqs * 128, job_cells_max), 256);

  if (model->engine == "ggml") {
    backend = make_t5_backend(*model, params, ids_per_job, n_batch);
  } else {
    LlamaContextShape shape;
    shape.n_ctx = n_ctx;
    shape.n_batch = n_batch;
    shape.n_ubatch = model->t5 ? n_batch : std::min(n_batch, 512);
    shape.n_seq_max = max_jobs * ids_per_job;
    shape.ids_per_entry = ids_per_job;
    backend = make_llama_backend(*model, params, shape);
  }
  spdlog::debug("repair: {} engine, {} captions per wave, context {} cells, batch {}", model->engine,
                max_jobs, n_ctx, n_batch);
}

Repairer::Impl::~Impl() = default;

namespace {
constexpr const char* kNonFinite = "non-finite logits from the model";
}  // namespace

bool Repairer::Impl::copy_logits(const float* l, Job& job, int beam) const {
  std::vector<float>& row = job.rows[(size_t)beam];
  row.resize((size_t)model->n_vocab);
  const float s = model->logit_scale;
  bool finite = true;
  for (int t = 0; t < model->n_vocab; ++t) {
    row[(size_t)t] = s == 1.0f ? l[t] : l[t] * s;
    finite = finite && std::isfinite(row[(size_t)t]);
  }
  return finite;
}

void Repairer::Impl::take_logits(int i, Job& job, int beam) const {
  if (!copy_logits(backend->logits(i), job, beam) && job.error.empty()) job.error = kNonFinite;
}

std::string Repairer::Impl::detokenize(const std::vector<llama_token>& tokens) const {
  // Hugging Face's decode(skip_special_tokens=True)
  std::vector<llama_token> keep;
  for (llama_token t : tokens)
    if (!model->hidden[(size_t)t]) keep.push_back(t);
  std::string s(keep.size() * 16 + 16, '\0');
  int n = llama_detokenize(model->vocab, keep.data(), (int32_t)keep.size(), s.data(), (int32_t)s.size(),
                           false, false);
  if (n < 0) {
    s.resize((size_t)-n);
    n = llama_detokenize(model->vocab, keep.data(), (int32_t)keep.size(), s.data(), (int32_t)s.size(), false,
                         false);
  }
  s.resize((size_t)std::max(n, 0));
  repair_utf8(s);
  if (model->t5) s = clean_up_tokenization(s);
  size_t b = s.find_first_not_of(" \t\r\n"), e = s.find_last_not_of(" \t\r\n");
  return b == std::string::npos ? "" : s.substr(b, e - b + 1);
}

void Repairer::Impl::release(Job& job) {
  for (llama_seq_id id : job.ids) backend->seq_rm(id);
}

void Repairer::Impl::finish(Job& job, std::vector<llama_token> tokens, double score, RepairOutput& out) {
  out.text = detokenize(tokens);
  out.output_tokens = (int)tokens.size();
  out.score = score;
  job.finished = true;
  release(job);
}

bool Repairer::Impl::step(std::vector<Job*>& wave, std::vector<RepairOutput>& out, std::string& err) {
  const int V = model->n_vocab;
  backend->begin();
  std::vector<std::pair<Job*, int>> entries;  // batch entry -> (job, beam)
  auto add = [&](Job& job, int beam, llama_token t, llama_seq_id id) {
    backend->add(t, job.pos, id, true);
    entries.emplace_back(&job, beam);
  };
  // the search math of each job (passes over the vocabulary: the greedy pick and its log-prob, a
  // beam step) on every thread first; the loop below takes the results in wave order, so nothing
  // depends on the thread count
  std::vector<llama_token> pick(wave.size(), 0);
  std::vector<double> pick_logprob(wave.size(), 0);
  std::vector<BeamSearch::Step> beam_step(wave.size());
  std::vector<std::string> search_error(wave.size());
  const int threads = params.threads > 0 ? params.threads : available_cpus();
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
  for (size_t w = 0; w < wave.size(); ++w) {
    Job& job = *wave[w];
    if (job.finished || !job.error.empty()) continue;
    try {  // nothing may leave an OpenMP region: a failure is this job's error
      if (!job.beam) {
        const std::vector<float>& row = job.rows[0];
        pick[w] = greedy_pick(row.data(), V, job.history, params.repetition_penalty);
        pick_logprob[w] = log_prob(row.data(), V, pick[w]);
        continue;
      }
      std::vector<const float*> rows;
      for (size_t b = 0; b < job.live.size(); ++b) rows.push_back(job.rows[job.first ? 0 : b].data());
      beam_step[w] = job.beam->step(rows, V);
    } catch (const std::exception& e) {
      search_error[w] = e.what();
    }
  }
  for (size_t w = 0; w < wave.size(); ++w) {
    Job& job = *wave[w];
    if (job.finished) continue;
    if (!job.error.empty()) {  // non-finite logits (take_logits) or a failed search step
      out[job.index].error = job.error;
      job.finished = true;
      release(job);
      continue;
    }
    if (!search_error[w].empty()) {  // its search math above failed
      out[job.index].error = search_error[w];
      job.finished = true;
      release(job);
      continue;
    }
    if (!job.beam) {  // greedy
      const llama_token t = pick[w];
      job.logprob += pick_logprob[w];
      if (std::find(model->eog.begin(), model->eog.end(), t) != model->eog.end()) {
        finish(job, job.generated, job.logprob, out[job.index]);
        continue;
      }
      job.generated.push_back(t);
      job.history.push_back(t);
      if ((int)job.generated.size() >= job.max_new) {
        finish(job, job.generated, job.logprob, out[job.index]);
        continue;
      }
      add(job, 0, t, job.live[0]);
      job.pos++;
      continue;
    }
    const BeamSearch::Step& next = beam_step[w];
    if (job.beam->done()) {
      BeamSearch::Result r = job.beam->result();
      finish(job, r.tokens, r.score, out[job.index]);
      continue;
    }
    // move the beams' KV: a parent's first child keeps its id, further children copy into spares
    const std::vector<llama_seq_id> old = job.live;
    std::vector<llama_seq_id> now(old.size(), -1);
    auto taken = [&](llama_seq_id id) { return std::find(now.begin(), now.end(), id) != now.end(); };
    for (size_t j = 0; j < now.size(); ++j)
      if (llama_seq_id q = old[(size_t)next.parent[j]]; !taken(q)) now[j] = q;
    for (size_t j = 0; j < now.size(); ++j) {
      if (now[j] >= 0) continue;
      for (llama_seq_id s : job.ids)
        if (!taken(s) && std::find(old.begin(), old.end(), s) == old.end()) {
          backend->seq_cp(old[(size_t)next.parent[j]], s);
          now[j] = s;
          break;
        }
      if (now[j] < 0) throw std::logic_error("repair: no spare sequence id");
    }
    for (llama_seq_id q : old)
      if (!taken(q)) backend->seq_rm(q);
    job.live = now;
    job.first = false;
    for (size_t j = 0; j < now.size(); ++j) add(job, (int)j, next.token[j], now[j]);
    job.pos++;
  }
  if (backend->pending() == 0) return true;
  if (!backend->decode(err)) return false;
  // the rows asked for in order (a backend's logits() may reorder its outputs: llama.cpp's does),
  // then copied and checked on every thread (a beam's own row: no two write one), the errors set
  // after, in order
  std::vector<const float*> from(entries.size());
  for (size_t i = 0; i < entries.size(); ++i) from[i] = backend->logits((int)i);
  std::vector<char> finite(entries.size(), 1);
#pragma omp parallel for schedule(static) num_threads(threads)
  for (size_t i = 0; i < entries.size(); ++i)
    finite[i] = copy_logits(from[i], *entries[i].first, entries[i].second);
  for (size_t i = 0; i < entries.size(); ++i)
    if (!finite[i] && entries[i].first->error.empty()) entries[i].first->error = kNonFinite;
  return true;
}

std::vector<RepairOutput> Repairer::Impl::repair(const std::vector<std::string>& captions) {
  std::vector<RepairOutput> out(captions.size());
  std::vector<std::unique_ptr<Job>> jobs;
  for (size_t i = 0; i < captions.size(); ++i) {
    if (captions[i].find_first_not_of(" \t\r\n\f\v") == std::string::npos) {
      out[i].skipped = true;  // empty or blank: text ""
      continue;
    }
    auto job = std::make_unique<Job>();
    job->index = i;
    out[i].error = prepare(captions[i], *job);
    out[i].input_tokens = (int)job->input.size();
    out[i].truncated = job->truncated;
    if (out[i].error.empty()) jobs.push_back(std::move(job));
  }
  const int B = params.beams;
  const int ids_per_job = B == 1 ? 1 : 2 * B;
  size_t next = 0;
  auto interrupt_rest = [&](std::vector<Job*>& wave) {
    for (Job* j : wave)
      if (!j->finished) out[j->index].error = "interrupted";
    for (; next < jobs.size(); ++next) out[jobs[next]->index].error = "interrupted";
  };
  while (next < jobs.size()) {
    std::vector<Job*> wave;
    if (cancelled()) {
      interrupt_rest(wave);
      break;
    }
    int cells = 0, enc = 0;
    while (next < jobs.size() && (int)wave.size() < max_jobs) {
      Job& j = *jobs[next];
      int need_enc = model->t5 ? (int)j.input.size() : 0;
      if (cells + j.cells > n_ctx || enc + need_enc > n_batch) {
        if (!wave.empty()) break;
        out[j.index].error =
            fmt::format("caption too long for the repair context ({} input tokens)", j.input.size());
        ++next;
        continue;
      }
      cells += j.cells;
      enc += need_enc;
      const int base = (int)wave.size() * ids_per_job;
      for (int k = 0; k < ids_per_job; ++k) j.ids.push_back(base + k);
      j.live.assign(B == 1 ? 1 : (size_t)B, j.ids[0]);
      j.rows.assign(j.live.size(), {});
      if (B > 1) {
        BeamConfig c = beam_cfg;
        c.max_new_tokens = j.max_new;
        j.beam = std::make_unique<BeamSearch>(c, j.prompt_ids);
      } else {
        j.history = j.prompt_ids;
      }
      wave.push_back(&j);
      ++next;
    }
    if (wave.empty()) continue;
    std::string err;
    bool ok = model->t5 ? input_t5(wave, err) : input_decoder(wave, err);
    while (ok && std::any_of(wave.begin(), wave.end(), [](Job* j) { return !j->finished; })) {
      if (cancelled()) break;
      ok = step(wave, out, err);
    }
    if (!ok) {
      spdlog::debug("repair: {}", err);
      for (Job* j : wave)
        if (!j->finished) out[j->index].error = err, j->finished = true;
    }
    backend->clear();  // every sequence empty again
    if (cancelled()) {
      interrupt_rest(wave);
      break;
    }
  }
  for (auto& o : out)
    if (!o.error.empty()) o.text.clear(), o.output_tokens = 0, o.score = 0;
  return out;
}

Repairer::Repairer(std::shared_ptr<const RepairModel> model, const RepairParams& params)
    : impl_(std::make_unique<Impl>(std::move(model), params)) {}
Repairer::~Repairer() = default;

std::vector<RepairOutput> Repairer::repair(const std::vector<std::string>& captions) {
  return impl_->repair(captions);
}

}  // namespace capforge
