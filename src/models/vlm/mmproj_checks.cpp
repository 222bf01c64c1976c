// Hyper-parameter, shape and type checks of an mmproj GGUF, run by check_mmproj before libmtmd loads it.
//
// Contract: check_mmproj_tensors(path, text_embd) throws std::runtime_error "<path>: <what is wrong>" for
// every file whose vision tower or projector libmtmd (tools/mtmd/clip.cpp) would build a graph from and
// then GGML_ASSERT or read out of bounds on: hyper-parameters that cannot work (patch/image size, head
// count, layer-norm epsilon), tensors the graph uses but the loader treats as optional, shapes that
// disagree with the hyper-parameters or with each other, and types ggml cannot compute with. It accepts
// every file clip.cpp runs: tensors clip.cpp treats as optional are optional here, legacy LLaVA files
// with ffn_up/ffn_down swapped pass, and feed_forward_length is not compared (clip.cpp never reads it;
// the ffn width comes from the tensors). Full rules for the mlp (LLaVA-1.5) and idefics3 (SmolVLM)
// projectors; for other projector types the generic ViT block rules and the tensors their graphs assert
// on. Shapes come from a metadata-only ggml context; nothing is read past the header. Key types were
// checked by check_mmproj before.
#include <fmt/format.h>

#include <cmath>
#include <set>
#include <stdexcept>
#include <string>

#include "ggml.h"
#include "gguf.h"
#include "models/vlm/model.h"

namespace capforge::vlm {

namespace {

struct Meta {
  std::string path;
  gguf_context* g = nullptr;
  ggml_context* meta = nullptr;
  ~Meta() {
    if (g) gguf_free(g);
    if (meta) ggml_free(meta);
  }

  [[noreturn]] void fail(const std::string& what) const {
    throw std::runtime_error(fmt::format("{}: {}", path, what));
  }
  ggml_tensor* get(const std::string& name) const { return ggml_get_tensor(meta, name.c_str()); }
  ggml_tensor* need(const std::string& name, const std::string& why = "") const {
    ggml_tensor* t = get(name);
    if (!t) fail(fmt::format("required tensor {} is missing{}", name, why));
    return t;
  }
  // an optional UINT32 key (libmtmd aborts on other types), or `dflt`
  int64_t u32(const char* key, int64_t dflt) const {
    int64_t k = gguf_find_key(g, key);
    if (k < 0) return dflt;
    if (gguf_get_kv_type(g, k) != GGUF_TYPE_UINT32)
      fail(fmt::format("key {} has type {}, expected {}", key, gguf_type_name(gguf_get_kv_type(g, k)),
                       gguf_type_name(GGUF_TYPE_UINT32)));
    return gguf_get_val_u32(g, k);
  }
};

std::string shape(const ggml_tensor* t) {
  std::string s = fmt::format("[{}", t->ne[0]);
  for (int i = 1; i < ggml_n_dims(t); ++i) s += fmt::format(", {}", t->ne[i]);
  return s + "]";
}

std::string dim(int64_t n) { return n < 0 ? "any" : std::to_string(n); }

bool float_type(ggml_type t) { return t == GGML_TYPE_F32 || t == GGML_TYPE_F16 || t == GGML_TYPE_BF16; }

// A weight ggml multiplies by (ggml_mul_mat): f32, f16, bf16 or quantised; 2-D [in, out] (-1: any).
void matrix(const Meta& m, const ggml_tensor* t, int64_t in, int64_t out, const std::string& why = "") {
  if (!float_type(t->type) && !ggml_is_quantized(t->type))
    m.fail(fmt::format("tensor {} has type {}; a matrix must be f32, f16, bf16 or a quantised type", t->name,
                       ggml_type_name(t->type)));
  if (t->ne[2] != 1 || t->ne[3] != 1 || (in >= 0 && t->ne[0] != in) || (out >= 0 && t->ne[1] != out))
    m.fail(fmt::format("tensor {} has shape {}, expected [{}, {}]{}", t->name, shape(t), dim(in), dim(out),
                       why));
}

// A norm weight, bias or embedding row ggml adds or multiplies element-wise: f32, n values.
void vec(const Meta& m, const ggml_tensor* t, int64_t n, const std::string& why = "") {
  if (!t) return;  // optional
  if (t->type != GGML_TYPE_F32)
    m.fail(fmt::format("tensor {} has type {}, expected f32", t->name, ggml_type_name(t->type)));
  if (t->ne[0] != n || ggml_nelements(t) != n)
    m.fail(fmt::format("tensor {} has shape {}, expected [{}]{}", t->name, shape(t), n, why));
}

// A convolution kernel [P, P, 3, E] (ggml_conv_2d takes f32, f16 or bf16); E < 0: any shape.
void kernel(const Meta& m, const ggml_tensor* t, int64_t P, int64_t E) {
  if (!float_type(t->type))
    m.fail(fmt::format("tensor {} has type {}, expected f32, f16 or bf16", t->name, ggml_type_name(t->type)));
  if (E >= 0 && (t->ne[0] != P || t->ne[1] != P || t->ne[2] != 3 || t->ne[3] != E))
    m.fail(
        fmt::format("tensor {} has shape {}, expected [{}, {}, 3, {}] (patch_size, channels, "
                    "embedding_length)",
                    t->name, shape(t), P, P, E));
}

// the projectors whose legacy files swap the names ffn_up and ffn_down (clip.cpp swaps them back)
bool ffn_may_be_swapped(const std::string& p) {
  static const std::set<std::string> kSwapped = {
      "mlp",     "ldp",    "ldpv2",    "qwen2vl_merger", "qwen2.5vl_merger", "exaone4_5",
      "adapter", "gemma3", "idefics3", "resampler",      "minicpmv4_6"};
  return kSwapped.count(p) > 0;
}

// One transformer block of the vision tower, as clip.cpp's build_vit / llava graph uses it.
void check_block(const Meta& m, const std::string& proj, int i, int64_t E, int64_t heads, int64_t kv_heads,
                 int64_t d_head) {
  auto name = [&](const char* t, const char* part) { return fmt::format("v.blk.{}.{}.{}", i, t, part); };
  ggml_tensor* qkv = m.get(name("attn_qkv", "weight"));
  if (d_head <= 0) {  // no head_dim key and a head size not E / heads (mimovl): clip.cpp reads the rows
    const ggml_tensor* q = qkv ? qkv : m.need(name("attn_q", "weight"));
    const int64_t rows = q->ne[1], per = qkv ? heads + 2 * kv_heads : heads;
    if (rows % per != 0)
      m.fail(fmt::format("tensor {} has {} rows, which {} heads cannot share", q->name, rows, per));
    d_head = rows / per;
  }
  const int64_t q_width = heads * d_head, kv_width = kv_heads * d_head;
  if (qkv) {  // q, then k and v (grouped-query: fewer key/value heads)
    matrix(m, qkv, E, q_width + 2 * kv_width);
    vec(m, m.get(name("attn_qkv", "bias")), q_width + 2 * kv_width);
  } else {
    for (auto [t, width] :
         {std::pair{"attn_q", q_width}, std::pair{"attn_k", kv_width}, std::pair{"attn_v", kv_width}}) {
      matrix(m, m.need(name(t, "weight")), E, width);
      vec(m, m.get(name(t, "bias")), width);
    }
  }
  matrix(m, m.need(name("attn_out", "weight")), q_width, E);
  vec(m, m.get(name("attn_out", "bias")), E);
  for (auto [t, width] : {std::pair{"attn_q_norm", q_width}, std::pair{"attn_k_norm", kv_width}})
    if (ggml_tensor* n = m.get(name(t, "weight")))
      vec(m, n, n->ne[0] == d_head ? d_head : width);  // per head?
  for (const char* t : {"ln1", "ln2"}) vec(m, m.get(name(t, "weight")), E), vec(m, m.get(name(t, "bias")), E);
  for (const char* t : {"ls1", "ls2", "out_scale", "attn_post_norm", "ffn_post_norm"})
    vec(m, m.get(name(t, "weight")), E);
  if (m.get(name("ffn_gate_exps", "weight"))) return;  // a mixture-of-experts block (dots3note)
  ggml_tensor *up = m.need(name("ffn_up", "weight")), *down = m.need(name("ffn_down", "weight"));
  ggml_tensor *up_b = m.get(name("ffn_up", "bias")), *down_b = m.get(name("ffn_down", "bias"));
  if (ffn_may_be_swapped(proj) && down->ne[0] == E) std::swap(up, down), std::swap(up_b, down_b);
  const int64_t F = up->ne[1];
  matrix(m, up, E, F);
  matrix(m, down, F, E, fmt::format(" ({} is {})", up->name, shape(up)));
  vec(m, up_b, F);
  vec(m, down_b, E);
  if (ggml_tensor* gate = m.get(name("ffn_gate", "weight"))) matrix(m, gate, E, F);
  vec(m, m.get(name("ffn_gate", "bias")), F);
}

}  // namespace

void check_mmproj_tensors(const std::string& path, int text_embd) {
  Meta m{path};
  m.g = gguf_init_from_file(path.c_str(), {true, &m.meta});
  if (!m.g || !m.meta) m.fail("cannot read its tensor list");
  std::string proj;
  for (const char* key : {"clip.projector_type", "clip.vision.projector_type"}) {
    int64_t k = gguf_find_key(m.g, key);
    if (proj.empty() && k >= 0 && gguf_get_kv_type(m.g, k) == GGUF_TYPE_STRING)
      proj = gguf_get_val_str(m.g, k);
  }

  // hyper-parameters (check_mmproj made sure the required ones are there)
  const int64_t E = m.u32("clip.vision.embedding_length", 0), P = m.u32("clip.vision.patch_size", 0),
                S = m.u32("clip.vision.image_size", 0), layers = m.u32("clip.vision.block_count", 0),
                heads = m.u32("clip.vision.attention.head_count", 0),
                kv_heads = m.u32("clip.vision.attention.head_count_kv", heads),
                head_dim = m.u32("clip.vision.attention.head_dim", 0);
  if (E <= 0 || E > INT32_MAX) m.fail(fmt::format("clip.vision.embedding_length must be > 0, got {}", E));
  if (P <= 0 || P >= 65536) m.fail(fmt::format("clip.vision.patch_size must be from 1 to 65535, got {}", P));
  if (S > 8192) m.fail(fmt::format("clip.vision.image_size must be at most 8192, got {}", S));
  if (heads <= 0) m.fail("clip.vision.attention.head_count must be > 0, got 0");
  const bool strict = proj == "mlp" || proj == "idefics3";  // CLIP / SigLIP towers: head size E / heads
  if (head_dim == 0 && strict && E % heads != 0)
    m.fail(fmt::format("clip.vision.attention.head_count ({}) must divide clip.vision.embedding_length ({})",
                       heads, E));
  if (kv_heads <= 0 || heads % kv_heads != 0)
    m.fail(fmt::format("clip.vision.attention.head_count_kv ({}) must be > 0 and divide head_count ({})",
                       kv_heads, heads));
  // 0: from the blocks' q rows (check_block), as clip.cpp does for towers whose head size is not
  // E / heads (mimovl: 32 heads of 64 over 1280)
  const int64_t d_head = head_dim > 0 ? head_dim : strict ? E / heads : 0;
  int64_t eps_key = gguf_find_key(m.g, "clip.vision.attention.layer_norm_epsilon");
  if (eps_key < 0) m.fail("required key clip.vision.attention.layer_norm_epsilon is missing");
  const float eps = gguf_get_val_f32(m.g, eps_key);
  if (!std::isfinite(eps) || eps <= 0)
    m.fail(fmt::format("clip.vision.attention.layer_norm_epsilon must be a finite number > 0, got {}", eps));
  // image_size is the one size images take; clip.cpp floors S / P (SigLIP 384 / 14: 27 x 27)
  if (strict && S < P)
    m.fail(fmt::format("clip.vision.image_size ({}) must be at least clip.vision.patch_size ({})", S, P));

  // the input: patch embedding, class token, position embedding
  for (const char* t : {"v.patch_embd.weight", "v.patch_embd.weight.1"})
    if (ggml_tensor* k = m.get(t)) kernel(m, k, P, strict ? E : -1);
  vec(m, m.get("v.patch_embd.bias"), E);
  vec(m, m.get("v.class_embd"), E);
  for (const char* t : {"v.pre_ln", "v.post_ln"})
    vec(m, m.get(fmt::format("{}.weight", t)), E), vec(m, m.get(fmt::format("{}.bias", t)), E);
  const int64_t grid = S / P, patches = grid * grid;
  if (proj == "mlp") {  // get_rows of rows 0 .. n_pos-1 (class token last)
    const int64_t n_pos = patches + (m.get("v.class_embd") ? 1 : 0);
    ggml_tensor* pos = m.need("v.position_embd.weight");
    if (!float_type(pos->type))
      m.fail(fmt::format("tensor {} has type {}, expected f32, f16 or bf16", pos->name,
                         ggml_type_name(pos->type)));
    if (pos->ne[0] != E || pos->ne[1] < n_pos || pos->ne[2] != 1 || pos->ne[3] != 1)
      m.fail(fmt::format("tensor {} has shape {}, but image_size {} / patch_size {} needs [{}, {}]",
                         pos->name, shape(pos), S, P, E, n_pos));
  } else if (ggml_tensor* pos = m.get("v.position_embd.weight"); pos && proj == "idefics3") {
    if (pos->type != GGML_TYPE_F32)  // added to the patches as it is
      m.fail(fmt::format("tensor {} has type {}, expected f32", pos->name, ggml_type_name(pos->type)));
    if (pos->ne[0] != E || pos->ne[1] != patches || pos->ne[2] != 1 || pos->ne[3] != 1)
      m.fail(fmt::format("tensor {} has shape {}, but image_size {} / patch_size {} needs [{}, {}]",
                         pos->name, shape(pos), S, P, E, patches));
  }

  // the tensors the graphs of other projector types assert on
  if (proj == "qwen2vl_merger" || proj == "qwen2.5vl_merger" || proj == "qwen3vl_merger") {
    const std::string why = fmt::format(" (projector type {} needs it)", proj);
    kernel(m, m.need("v.patch_embd.weight.1", why), P, -1);
    const bool qwen3 = proj == "qwen3vl_merger";
    if (qwen3) m.need("v.patch_embd.bias", why), m.need("v.position_embd.weight", why);
    for (const char* t : {"v.class_embd", qwen3 ? "" : "v.patch_embd.bias"})
      if (*t && m.get(t))
        m.fail(fmt::format(
            "has tensor {}, which projector type {} cannot take (is clip.projector_type right?)", t, proj));
  } else if (proj == "internvl" || proj == "llama4") {
    const std::string why = fmt::format(" (projector type {} needs it)", proj);
    m.need("v.class_embd", why), m.need("v.position_embd.weight", why);
  }

  // the transformer blocks
  if (proj != "gemma3nv")  // a MobileNet, no ViT blocks
    for (int i = 0; i < layers; ++i) check_block(m, proj, i, E, heads, kv_heads, d_head);

  // the projector
  int64_t out = -1;
  if (proj == "mlp") {
    const int64_t k = gguf_find_key(m.g, "clip.vision.feature_layer");
    std::set<int32_t> stacked;  // feature layers whose outputs are concatenated
    if (k >= 0 && gguf_get_arr_type(m.g, k) == GGUF_TYPE_INT32)
      for (size_t j = 0; j < gguf_get_arr_n(m.g, k); ++j)
        if (int32_t l = ((const int32_t*)gguf_get_arr_data(m.g, k))[j]; l >= 0) stacked.insert(l);
    ggml_tensor* w0 = m.need("mm.0.weight");
    matrix(m, w0, E * std::max<int64_t>(1, (int64_t)stacked.size()), -1);
    const std::string w0_is = fmt::format(" (mm.0.weight is {})", shape(w0));
    vec(m, m.need("mm.0.bias"), w0->ne[1], w0_is);
    if (ggml_tensor* w2 = m.get("mm.2.weight")) {
      matrix(m, w2, w0->ne[1], -1, w0_is);
      vec(m, m.need("mm.2.bias"), w2->ne[1], fmt::format(" (mm.2.weight is {})", shape(w2)));
      out = w2->ne[1];
    }
  } else if (proj == "idefics3") {
    const int64_t s = m.u32("clip.vision.projector.scale_factor", 0);
    if (s <= 1 || s >= 65536)
      m.fail(fmt::format("clip.vision.projector.scale_factor must be from 2 to 65535 for idefics3, got {}",
                         s ? std::to_string(s) : "none"));
    ggml_tensor* fc = m.need("mm.model.fc.weight");
    matrix(m, fc, E * s * s, -1);
    out = fc->ne[1];
  }
  if (out >= 0 && text_embd > 0 && out != text_embd)
    throw std::runtime_error(fmt::format(
        "{} does not fit the model: it projects images to {} dimensions, but the language model's embeddings "
        "have {}",
        path, out, text_embd));
}

}  // namespace capforge::vlm
