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
  // one llama_encode for the wave: each caption's tokens at positions 0..n-1, tagged with every
  // seq id its beams may use (the decoder sees encoder tokens tagged with its own id)
  batch.n_tokens = 0;
  for (Job* j : wave)
    for (size_t k = 0; k < j->input.size(); ++k) {
      int i = batch.n_tokens++;
      batch.token[i] = j->input[k];
      batch.pos[i] = (llama_pos)k;
      batch.n_seq_id[i] = (int32_t)j->ids.size();
      for (size_t s = 0; s < j->ids.size(); ++s) batch.seq_id[i][s] = j->ids[s];
      batch.logits[i] = true;
    }
  if (int rc = llama_encode(ctx, batch); rc != 0) {
    err = fmt::format("llama_encode failed ({})", rc);
    return false;
  }
  // the decoder start token of every caption
  batch.n_tokens = 0;
  for (Job* j : wave) {
    int i = batch.n_tokens++;
    batch.token[i] = model->decoder_start;
    batch.pos[i] = 0;
    batch.n_seq_id[i] = 1;
    batch.seq_id[i][0] = j->ids[0];
    batch.logits[i] = true;
    j->pos = 1;
  }
  if (int rc = llama_decode(ctx, batch); rc != 0) {
    err = fmt::format("llama_decode failed ({})", rc);
    return false;
  }
  for (size_t i = 0; i < wave.size(); ++i) take_logits((int)i, *wave[i], 0);
  return true;
}

bool Repairer::Impl::input_decoder(std::vector<Job*>& wave, std::string& err) {
  // each prompt into its caption's first seq id, n_batch tokens per llama_decode; the logits of
  // each prompt's last token
  std::vector<Job*> last;  // batch entry with logits -> job
  auto flush = [&]() -> bool {
    if (batch.n_tokens == 0) return true;
    if (int rc = llama_decode(ctx, batch); rc != 0) {
      err = fmt::format("llama_decode failed ({})", rc);
      return false;
    }
    for (int i = 0; i < batch.n_tokens; ++i)
      if (batch.logits[i]) take_logits(i, *last[(size_t)i], 0);
    batch.n_tokens = 0;
    last.clear();
    return true;
  };
  for (Job* j : wave) {
    for (size_t k = 0; k < j->input.size(); ++k) {
      if (batch.n_tokens == n_batch && !flush()) return false;
      int i = batch.n_tokens++;
      batch.token[i] = j->input[k];
      batch.pos[i] = (llama_pos)k;
      batch.n_seq_id[i] = 1;
      batch.seq_id[i][0] = j->ids[0];
      batch.logits[i] = k + 1 == j->input.size();
      last.push_back(j);
    }
    j->pos = (llama_pos)j->input.size();
  }
  return flush();
}

}  // namespace capforge
