// Admitting an image: its prompts' tokens (placeholders filled), KV cells and sequence slots, the
// image evaluated once and copied to every prompt, each prompt once and copied to its candidates.
#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <stdexcept>

#include "models/vlm/engine.h"

namespace capforge::vlm {

int32_t VlmEngine::tokenize_head(const Image& img, Chunks& chunks) const {
  mtmd_bitmap* bmp = mtmd_bitmap_init((uint32_t)img.width, (uint32_t)img.height, img.rgb.data());
  chunks.reset(mtmd_input_chunks_init());
  mtmd_input_text text{frame.head.c_str(), frame.head.size(), /*add_special=*/true, /*parse_special=*/true};
  const mtmd_bitmap* bitmaps[1] = {bmp};
  int32_t rc = mtmd_tokenize(model->mtmd, chunks.get(), &text, bitmaps, 1);
  mtmd_bitmap_free(bmp);
  return rc;
}

void VlmEngine::check_ctx_size() {
  Image grey{64, 64, std::vector<uint8_t>(64 * 64 * 3, 128)};
  Chunks chunks;
  if (tokenize_head(grey, chunks) != 0) return;  // the projector's own limits: admit() reports them per image
  const int head = (int)mtmd_helper_get_n_tokens(chunks.get());
  int need = head, per_seq = 0, candidates = 0;
  for (auto& pr : prompts) {
    int tail = (int)tail_tokens(pr, "", nullptr).size() +
               (pr.tpl.uses("org_caption") ? params.org_caption_max_tokens : 0);
    need += tail + pr.p.candidates * pr.max_new;
    per_seq = std::max(per_seq, head + tail + pr.max_new);
    candidates += pr.p.candidates;
  }
  // a stream per sequence: each candidate's stream holds the image, its prompt and its tokens
  if (!params.kv_unified && per_seq > 256) need = std::max(need, params.parallel * per_seq);
  if (params.ctx_size < need)
    throw std::invalid_argument(fmt::format(
        "--ctx-size {} is too small: an image with its prompt(s) and {} candidate(s) need {} KV cells; use "
        "--ctx-size {} or more (or 0: automatic)",
        params.ctx_size, candidates, need, need));
}

std::vector<int> VlmEngine::tail_tokens(const Prompt& pr, const std::string& key,
                                        const Sample* sample) const {
  std::vector<PromptPart> parts = {{frame.pre, true}};
  for (auto& part : pr.tpl.render(key, sample, [this](const std::string& alt) {
         return ptok.clip(alt, params.org_caption_max_tokens);
       }))
    parts.push_back(std::move(part));
  // as the template would have done to the whole message
  while (frame.trims && parts.size() > 1) {
    std::string& t = parts.back().text;
    while (!t.empty() && std::isspace((unsigned char)t.back())) t.pop_back();
    if (!t.empty()) break;
    parts.pop_back();
  }
  parts.push_back({frame.post + pr.p.response_prefix, true});
  return ptok.tokenize(parts);
}

llama_pos VlmEngine::prefill(mtmd_input_chunks* chunks, llama_seq_id seq) {
  llama_pos n_past = 0;
  const size_t n = mtmd_input_chunks_size(chunks);
  for (size_t i = 0; i < n; ++i) {
    const mtmd_input_chunk* chunk = mtmd_input_chunks_get(chunks, i);
    if (mtmd_input_chunk_get_type(chunk) == MTMD_INPUT_CHUNK_TYPE_TEXT) {
      size_t nt = 0;
      const llama_token* toks = mtmd_input_chunk_get_tokens_text(chunk, &nt);
      decode_tokens(std::vector<int>(toks, toks + nt), seq, n_past);
      n_past += (llama_pos)nt;
      continue;
    }
    std::vector<float> embd;
    {
      std::lock_guard lock(model->encode_mu);
      model->chunks_encoded++;
      if (mtmd_encode_chunk(model->mtmd, chunk) != 0)
        throw std::runtime_error("the projector could not encode the image");
      size_t len = (size_t)llama_model_n_embd_inp(model->model) * mtmd_input_chunk_get_n_tokens(chunk);
      const float* out = mtmd_get_output_embd(model->mtmd);
      embd.assign(out, out + len);
    }
    n_past = lm->decode_image(chunk, embd.data(), n_past, seq);
  }
  return n_past;
}

const float* VlmEngine::decode_tokens(const std::vector<int>& toks, llama_seq_id seq, llama_pos pos) {
  for (size_t k = 0; k < toks.size();) {
    entries.clear();
    for (; k < toks.size() && (int)entries.size() < params.batch; ++k)
      entries.push_back({toks[k], pos++, seq, k + 1 == toks.size()});
    try {
      lm->decode(entries);
    } catch (const std::exception& e) {
      throw std::runtime_error(fmt::format("decoding the prompt failed ({})", e.what()));
    }
  }
  return lm->logits((int)entries.size() - 1);
}

bool VlmEngine::admit(const CaptionRequest& req, size_t index, std::vector<CaptionResult>& out) {
  const Image& img = *req.image;
  if (img.empty()) {
    out[index].error = "no decoded image";
    return true;
  }
  Chunks chunks;
  if (int32_t rc = tokenize_head(img, chunks); rc != 0) {
    out[index].error =
        fmt::format("the projector rejected the image ({}x{}, code {})", img.width, img.height, rc);
    return true;
  }
  // each prompt's tokens after the image (filled for this sample), and the cells they all take
  const int head = (int)mtmd_helper_get_n_tokens(chunks.get());
  std::vector<std::vector<int>> tails;
  int cells = head, n_seqs = 0;
  for (auto& pr : prompts) {
    tails.push_back(pr.tpl.has_placeholders() ? tail_tokens(pr, req.key, req.sample) : pr.fixed_tail);
    if (tails.back().empty()) {
      out[index].error = "the prompt ends with the image: no text to continue from";
      return true;
    }
    const int tail = (int)tails.back().size();
    cells += tail + pr.p.candidates * pr.max_new;
    n_seqs += pr.p.candidates;
    if (!params.kv_unified && head + tail + pr.max_new > seq_cells) {
      out[index].error = fmt::format(
          "the image and prompt{} take {} KV cells with up to {} new tokens; a sequence has {} (raise "
          "--ctx-size, now {})",
          pr.p.name.empty() ? "" : " " + pr.p.name, head + tail, pr.max_new, seq_cells, params.ctx_size);
      return true;
    }
  }
  if (cells > params.ctx_size) {
    out[index].error =
        fmt::format("image and prompt(s) need {} KV cells with {} candidates; raise --ctx-size (now {})",
                    cells, n_seqs, params.ctx_size);
    return true;
  }
  if ((int)free_ids.size() < n_seqs || cells_used + cells > params.ctx_size) return false;  // wait for space

  // sequence ids: prompt k's candidates in order, lowest ids first
  std::vector<std::vector<llama_seq_id>> ids(prompts.size());
  for (size_t k = 0; k < prompts.size(); ++k)
    for (int c = 0; c < prompts[k].p.candidates; ++c) {
      ids[k].push_back(free_ids.back());
      free_ids.pop_back();
    }
  std::vector<std::vector<float>> logits(prompts.size());
  llama_pos image_end = 0;  // a position, not a token count (M-RoPE images take fewer positions)
  try {
    // the image once; each prompt's first sequence starts from a copy of it (copied before any
    // prompt text is written), then every candidate from a copy of its prompt's first sequence
    const llama_seq_id first = ids[0][0];
    image_end = prefill(chunks.get(), first);
    for (size_t k = 1; k < prompts.size(); ++k) lm->seq_cp(first, ids[k][0]);
    for (size_t k = 0; k < prompts.size(); ++k) {
      const float* l = decode_tokens(tails[k], ids[k][0], image_end);
      logits[k].assign(l, l + model->n_vocab);
    }
  } catch (const std::exception& e) {
    for (auto& list : ids)
      for (llama_seq_id id : list) {
        lm->seq_rm(id);
        free_ids.push_back(id);
      }
    std::sort(free_ids.rbegin(), free_ids.rend());
    out[index].error = e.what();
    return true;
  }
  Group g;
  g.request = index;
  g.cells = cells;
  g.live = n_seqs;
  g.per_prompt.resize(prompts.size());
  for (size_t k = 0; k < prompts.size(); ++k) {
    const Prompt& pr = prompts[k];
    g.per_prompt[k].resize((size_t)pr.p.candidates);
    for (int c = 0; c < pr.p.candidates; ++c) {
      Seq s;
      s.group = groups.size();
      s.prompt = k;
      s.candidate = c;
      s.id = ids[k][(size_t)c];
      if (c > 0) lm->seq_cp(ids[k][0], s.id);
      s.pos = image_end + (llama_pos)tails[k].size();
      s.p = sampling_of(pr.p, c);
      s.rng = sampling::Rng(sampling::candidate_seed(params.seed, req.key, c));
      s.tokens = pr.prefix_tokens;
      s.prefix_tokens = pr.prefix_tokens.size();
      s.logits = logits[k];
      live.push_back(std::move(s));
    }
  }
  groups.push_back(std::move(g));
  cells_used += cells;
  return true;
}

}  // namespace capforge::vlm
