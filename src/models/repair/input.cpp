// The Repairer's inputs: a caption's tokens (T5: prefix + caption + EOS for the encoder;
// decoder-only: the prompt in the chat template) and the wave's first model evaluation.
#include <fmt/format.h>

#include <cmath>
#include <stdexcept>

#include "models/repair/engine.h"

namespace capforge {
using namespace repair;

namespace {
const char* kSlot = "CAPFORGE_REPAIR_CAPTION_SLOT";
}  // namespace

void Repairer::Impl::build_frame() {
  const std::string ph = "{caption}";
  if (params.prompt.find(ph) == std::string::npos)
    throw std::invalid_argument("the repair prompt must contain {caption}");
  std::string user;  // the prompt with each {caption} replaced by the slot
  for (size_t at = 0;;) {
    size_t k = params.prompt.find(ph, at);
    user += params.prompt.substr(at, k == std::string::npos ? std::string::npos : k - at);
    if (k == std::string::npos) break;
    user += kSlot;
    at = k + ph.size();
  }
  const std::string r = vlm::render_user_turn(model->chat_template, user);
  frame.clear();
  for (size_t at = 0;;) {
    size_t k = r.find(kSlot, at);
    frame.push_back({r.substr(at, k == std::string::npos ? std::string::npos : k - at), true});
    if (k == std::string::npos) break;
    at = k + std::string(kSlot).size();
  }
  if (frame.size() < 2)
    throw std::invalid_argument(
        "the repair model's chat template drops the user's message (no {caption} in its output): pass "
        "another --repair-chat-template");
}

std::string Repairer::Impl::prepare(const std::string& caption, Job& job) const {
  const llama_vocab* v = model->vocab;
  const int B = params.beams;
  // the tokens for `text` in the caption's place; budgets; returns how many tokens are too many
  auto build = [&](const std::string& text) {
    std::vector<PromptPart> parts;
    if (model->t5) {
      // HF's T5 tokenizer: the text (prefix + caption as one SentencePiece run), then </s>
      parts = {{params.prefix, true}, {text, false}};
    } else {
      for (size_t i = 0; i < frame.size(); ++i) {
        if (i > 0) parts.push_back({text, false});
        parts.push_back(frame[i]);
      }
    }
    job.input = ptok.tokenize(parts);
    if (llama_vocab_get_add_bos(v) && llama_vocab_bos(v) >= 0 &&
        (job.input.empty() || job.input[0] != llama_vocab_bos(v)))
      job.input.insert(job.input.begin(), llama_vocab_bos(v));
    if (model->t5 && llama_vocab_get_add_eos(v) && llama_vocab_eos(v) >= 0)
      job.input.push_back(llama_vocab_eos(v));
    job.caption_tokens = (int)ptok.plain(text).size();
    job.max_new = std::max(1, (int)std::ceil((double)params.max_tokens_ratio * job.caption_tokens - 1e-9) +
                                  params.max_tokens_extra);
    const int n_in = (int)job.input.size();
    if (model->t5) {
      job.prompt_ids = {model->decoder_start};
      job.cells = B * (job.max_new + 1);
      return n_in - seq_limit;
    }
    job.prompt_ids = job.input;
    job.cells = n_in + B * (job.max_new + 1);
    return n_in + job.max_new - seq_limit;
  };
  int over = build(caption);
  if (over <= 0) return "";
  // too long: keep the caption's first tokens that fit (each caption token also costs
  // max_tokens_ratio new tokens in a decoder-only model's budget)
  const double per_token = model->t5 ? 1.0 : 1.0 + params.max_tokens_ratio;
  int keep = job.caption_tokens;
  while (over > 0 && keep > 0) {
    keep = std::max(0, keep - std::max(1, (int)std::ceil(over / per_token)));
    over = build(ptok.clip(caption, keep));
  }
  job.truncated = true;
  if (over > 0 || job.caption_tokens == 0)
    return model->t5 ? fmt::format(
                           "the repair prefix leaves no room for the caption in the model's context "
                           "({} tokens)",
                           seq_limit)
                     : fmt::format(
                           "the repair prompt leaves no room for the caption in the model's context "
                           "({} tokens)",
                           seq_limit);
  return "";
}

bool Repairer::Impl::input_t5(std::vector<Job*>& wave, std::string& err) {
  // the wave's encoder inputs in one call, each caption with every seq id its beams may use
  std::vector<EncodeItem> items;
  for (Job* j : wave) items.push_back({&j->input, &j->ids, j->max_new + 1});
  if (!backend->encode(items, err)) return false;
  // the decoder start token of every caption
  backend->begin();
  for (Job* j : wave) {
    backend->add(model->decoder_start, 0, j->ids[0], true);
    j->pos = 1;
  }
  if (!backend->decode(err)) return false;
  for (size_t i = 0; i < wave.size(); ++i) take_logits((int)i, *wave[i], 0);
  return true;
}

bool Repairer::Impl::input_decoder(std::vector<Job*>& wave, std::string& err) {
  // each prompt into its caption's first seq id, n_batch tokens per decode; the logits of each
  // prompt's last token
  std::vector<std::pair<Job*, bool>> last;  // pending entry -> (job, logits wanted)
  auto flush = [&]() -> bool {
    if (backend->pending() == 0) return true;
    if (!backend->decode(err)) return false;
    for (size_t i = 0; i < last.size(); ++i)
      if (last[i].second) take_logits((int)i, *last[i].first, 0);
    backend->begin();
    last.clear();
    return true;
  };
  backend->begin();
  for (Job* j : wave) {
    for (size_t k = 0; k < j->input.size(); ++k) {
      if (backend->pending() == backend->capacity() && !flush()) return false;
      const bool want = k + 1 == j->input.size();
      backend->add(j->input[k], (llama_pos)k, j->ids[0], want);
      last.emplace_back(j, want);
    }
    j->pos = (llama_pos)j->input.size();
  }
  return flush();
}

}  // namespace capforge
