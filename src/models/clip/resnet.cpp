// OpenAI CLIP's ModifiedResNet (clip/model.py: ModifiedResNet, Bottleneck, AttentionPool2d) on ggml.
//
// Layout: the graph keeps activations channel-innermost, [C, W, H, B], so that the 1x1
// convolutions (most of a bottleneck) are plain matrix products with no im2col and no copy; a
// stride-1 3x3 convolution gathers each output pixel's nine input pixels as whole rows of C
// (ggml_get_rows over a row-index input, a zero row for the padding) against a kernel stored taps
// outermost, [C, 3, 3, Cout], and its product is channel-innermost again. Only the stem's first
// convolution (stride 2, on the planar pixels) goes through ggml_im2col.
//
// Load-time folding (every stored value stays exact in f32):
//   - BatchNorm (eval): s = gamma / sqrt(var + 1e-5); W' = W * s per output channel;
//     b' = beta - mean * s.
//   - An AvgPool2d(k) directly before a convolution (a bottleneck's conv3 and its downsample
//     branch when stride k > 1): the pool is computed as a sum of the k*k taps and 1/k^2 is folded
//     into the kernel (exact for k = 2, the only stride CLIP uses).
// 1x1 kernels are stored 2-D as [Cin, Cout] (the same memory as [1, 1, Cin, Cout]); the stem's first
// 3x3 kernel as [3, 3, Cin, Cout], the other 3x3 kernels as [Cin, 3, 3, Cout] (ggml order).
#include "models/clip/resnet.h"

#include <fmt/format.h>

#include <array>
#include <cmath>
#include <stdexcept>

#include "models/clip/config.h"
#include "models/nn/dense.h"
#include "models/safetensors.h"

namespace capforge::clip {

namespace {

constexpr double kBnEps = 1e-5;

// Declares conv `conv_name` ([cout, cin, k, k] in the file, no bias) folded with the BatchNorm
// under `bn` (bn.weight, bn.bias, bn.running_mean, bn.running_var: all required). `scale`
// multiplies the kernel only (a folded average pool).
// `taps`: a 3x3 kernel stored [Cin, 3, 3, Cout] (ggml order; conv3x3_taps' layout) rather than
// [3, 3, Cin, Cout].
void conv_bn(nn::WeightSet& set, const std::string& conv_name, const std::string& bn, int64_t cout,
             int64_t cin, int64_t k, double scale, ggml_type type, ConvBn& out, bool taps = false) {
  const TensorView* w = &set.need(conv_name, {cout, cin, k, k});
  const TensorView* gamma = &set.need(bn + ".weight", {cout});
  const TensorView* beta = &set.need(bn + ".bias", {cout});
  const TensorView* mean = &set.need(bn + ".running_mean", {cout});
  const TensorView* var = &set.need(bn + ".running_var", {cout});
  auto factors = [gamma, var, conv_name] {
    std::vector<float> g = gamma->to_f32(), v = var->to_f32();
    std::vector<double> s(g.size());
    for (size_t o = 0; o < g.size(); ++o) {
      if (!(v[o] >= 0.0f))
        throw std::runtime_error(
            fmt::format("BatchNorm of '{}': running_var[{}] = {} is not a variance", conv_name, o, v[o]));
      s[o] = g[o] / std::sqrt((double)v[o] + kBnEps);
    }
    return s;
  };
  taps = taps && k > 1;
  std::vector<int64_t> shape = k == 1 ? std::vector<int64_t>{cout, cin}
                               : taps ? std::vector<int64_t>{cout, k, k, cin}
                                      : std::vector<int64_t>{cout, cin, k, k};
  set.derive(&out.w, conv_name + "+bn", shape, type, [w, factors, scale, taps, cin, k] {
    std::vector<float> kern = w->to_f32();
    std::vector<double> s = factors();
    const size_t per = kern.size() / s.size();
    for (size_t o = 0; o < s.size(); ++o)
      for (size_t i = 0; i < per; ++i) kern[o * per + i] = (float)(kern[o * per + i] * s[o] * scale);
    if (!taps) return kern;
    // [cout][cin][ky][kx] -> [cout][ky][kx][cin]
    std::vector<float> t(kern.size());
    const size_t kk = (size_t)(k * k);
    for (size_t o = 0; o < s.size(); ++o)
      for (size_t c = 0; c < (size_t)cin; ++c)
        for (size_t p = 0; p < kk; ++p) t[o * per + p * (size_t)cin + c] = kern[o * per + c * kk + p];
    return t;
  });
  set.derive(&out.b, bn + ".folded_bias", {cout}, GGML_TYPE_F32, [beta, mean, factors] {
    std::vector<float> b = beta->to_f32(), m = mean->to_f32();
    std::vector<double> s = factors();
    for (size_t o = 0; o < b.size(); ++o) b[o] = (float)(b[o] - m[o] * s[o]);
    return b;
  });
}

void linear(nn::WeightSet& set, const std::string& name, int64_t out, int64_t in, ggml_type type,
            nn::Linear& l) {
  set.take(&l.w, name + ".weight", {out, in}, type);
  set.take(&l.b, name + ".bias", {out}, GGML_TYPE_F32);
}

// A convolution kernel [.., .., .., Cout] as the matrix [rows, Cout]: a view, as int8 kernels' rows
// are not contiguous (nn/int8.h).
ggml_tensor* kernel_matrix(ggml_context* ctx, ggml_tensor* w) {
  return ggml_view_2d(ctx, w, w->ne[0] * w->ne[1] * w->ne[2], w->ne[3], w->nb[3], 0);
}

// x [C, W, H, B] -> [Cout, W, H, B]: a 1x1 convolution with its folded bias.
ggml_tensor* conv1x1(ggml_context* ctx, ggml_tensor* x, const ConvBn& c) {
  return nn::dense(ctx, c.w, x, c.b);
}

// pixels [W, H, C, B] (planar) -> [Cout, W', H', B]: a 3x3 convolution (padding 1) with its folded
// bias (the stem's first, stride 2). im2col runs in f16 with an f16 kernel (the product converts
// its right side to the kernel's type anyway), else in f32 (ggml's im2col writes no bf16: a bf16
// kernel's product converts the f32 columns).
ggml_tensor* conv3x3_planar(ggml_context* ctx, ggml_tensor* x, const ConvBn& c, int stride) {
  const ggml_type col = c.w->type == GGML_TYPE_F16 ? GGML_TYPE_F16 : GGML_TYPE_F32;
  ggml_tensor* cols = ggml_im2col(ctx, c.w, x, stride, stride, 1, 1, 1, 1, true, col);  // [9C, W', H', B]
  ggml_tensor* k = kernel_matrix(ctx, c.w);
  return nn::dense(ctx, k, cols, c.b);
}

// The taps of a stride-1, padding-1 3x3 convolution over [C, W, H, B] activations, as row indices
// into the activations viewed as rows of C (pixel b*W*H + y*W + x), with the row after the last
// pixel standing for the zero padding: for output pixel p and tap t = ky*3 + kx, entry p*9 + t.
// One index tensor per resolution, shared by the graph's convolutions at it.
class TapIndex {
 public:
  explicit TapIndex(std::vector<IndexInput>& inputs) : inputs_(inputs) {}
  ggml_tensor* get(ggml_context* ctx, int64_t W, int64_t H, int64_t B) {
    for (auto& [dims, t] : made_)
      if (dims == std::array<int64_t, 3>{W, H, B}) return t;
    IndexInput in;
    const int64_t N = W * H * B;
    in.tensor = ggml_new_tensor_1d(ctx, GGML_TYPE_I32, 9 * N);
    ggml_set_input(in.tensor);
    in.values.resize((size_t)(9 * N));
    for (int64_t b = 0; b < B; ++b)
      for (int64_t y = 0; y < H; ++y)
        for (int64_t x = 0; x < W; ++x)
          for (int64_t t = 0; t < 9; ++t) {
            const int64_t sy = y + t / 3 - 1, sx = x + t % 3 - 1;
            const bool inside = sy >= 0 && sy < H && sx >= 0 && sx < W;
            in.values[(size_t)(((b * H + y) * W + x) * 9 + t)] =
                (int32_t)(inside ? (b * H + sy) * W + sx : N);
          }
    made_.emplace_back(std::array<int64_t, 3>{W, H, B}, in.tensor);
    inputs_.push_back(std::move(in));
    return made_.back().second;
  }

 private:
  std::vector<IndexInput>& inputs_;
  std::vector<std::pair<std::array<int64_t, 3>, ggml_tensor*>> made_;
};

// x [C, W, H, B] contiguous -> [Cout, W, H, B]: a stride-1 3x3 convolution (padding 1) whose kernel is
// [C, 3, 3, Cout]: each output pixel's nine input pixels gathered as whole rows of C (no permute,
// no element-by-element im2col) and multiplied in one op (nn::dense_gathered: on oneDNN a block of
// pixels at a time, so the [9C, W*H*B] matrix never exists whole).
ggml_tensor* conv3x3_taps(ggml_context* ctx, ggml_tensor* x, const ConvBn& c, TapIndex& taps) {
  const int64_t C = x->ne[0], W = x->ne[1], H = x->ne[2], B = x->ne[3];
  ggml_tensor* k = kernel_matrix(ctx, c.w);  // [9C, Cout]
  ggml_tensor* y =
      nn::dense_gathered(ctx, k, ggml_reshape_2d(ctx, x, C, W * H * B), taps.get(ctx, W, H, B), 9);
  return ggml_add(ctx, ggml_reshape_4d(ctx, y, c.w->ne[3], W, H, B), c.b);
}

// x [C, W, H, B] contiguous -> [C, W/k, H/k, B]: the SUM of each k x k window (stride k); the
// 1/k^2 of an average pool is the caller's (folded into the next kernel or a scale).
ggml_tensor* pool_sum(ggml_context* ctx, ggml_tensor* x, int k) {
  const int64_t C = x->ne[0], W = x->ne[1] / k, H = x->ne[2] / k, B = x->ne[3];
  ggml_tensor* sum = nullptr;
  for (int j = 0; j < k; ++j)
    for (int i = 0; i < k; ++i) {
      ggml_tensor* tap = ggml_view_4d(ctx, x, C, W, H, B, x->nb[1] * (size_t)k, x->nb[2] * (size_t)k,
                                      x->nb[3], x->nb[1] * (size_t)i + x->nb[2] * (size_t)j);
      sum = sum ? ggml_add(ctx, sum, tap) : tap;  // ggml_add reads a strided first operand
    }
  return sum;
}

ggml_tensor* bottleneck(ggml_context* ctx, ggml_tensor* x, const Bottleneck& b, TapIndex& taps) {
  ggml_tensor* out = ggml_relu(ctx, conv1x1(ctx, x, b.conv1));
  out = ggml_relu(ctx, conv3x3_taps(ctx, out, b.conv2, taps));
  if (b.stride > 1) out = pool_sum(ctx, out, b.stride);  // 1/stride^2 is in conv3
  out = conv1x1(ctx, out, b.conv3);
  ggml_tensor* identity = x;
  if (b.has_down) identity = conv1x1(ctx, b.stride > 1 ? pool_sum(ctx, x, b.stride) : x, b.down);
  return ggml_relu(ctx, ggml_add(ctx, out, identity));
}

}  // namespace

void declare_resnet(nn::WeightSet& set, const std::string& prefix, const VisionConfig& v, int out_dim,
                    ggml_type matrix, ggml_type conv, ResnetWeights& w) {
  const ResnetConfig& r = v.resnet;
  const int64_t width = r.width, half = width / 2;
  if (width <= 0 || width % 2) throw std::runtime_error(fmt::format("ResNet width {} must be even", width));
  // Every convolution is a matrix product: a 1x1 kernel takes the matrix type where its rows fit
  // the type's blocks, a 3x3 kernel too unless that type is blocked (a q8_0 row cannot be cut into
  // the 3-wide rows im2col's kernel view has; it takes `conv` then). So bf16 runs every product in
  // bf16, where the CPU has the instructions for it.
  const ggml_type k3 = ggml_blck_size(matrix) == 1 ? matrix : conv;
  auto k1 = [&](int64_t cin) { return nn::WeightSet::fit(matrix, cin); };
  conv_bn(set, prefix + "conv1.weight", prefix + "bn1", half, 3, 3, 1.0, k3, w.stem1);
  conv_bn(set, prefix + "conv2.weight", prefix + "bn2", half, half, 3, 1.0, k3, w.stem2, true);
  conv_bn(set, prefix + "conv3.weight", prefix + "bn3", width, half, 3, 1.0, k3, w.stem3, true);

  // the set keeps pointers to the blocks' slots: size the vector once, before declaring
  size_t total = 0;
  for (int d : r.layers) total += (size_t)d;
  w.blocks.assign(total, Bottleneck{});
  size_t next = 0;
  int64_t inplanes = width;
  for (int s = 0; s < 4; ++s) {
    const int depth = r.layers[(size_t)s];
    const int64_t planes = width << s;
    const int stage_stride = s == 0 ? 1 : 2;
    for (int i = 0; i < depth; ++i) {
      const std::string p = fmt::format("{}layer{}.{}.", prefix, s + 1, i);
      Bottleneck& b = w.blocks[next++];
      b.stride = i == 0 ? stage_stride : 1;
      b.has_down = b.stride > 1 || inplanes != planes * 4;
      const double pool = 1.0 / (b.stride * b.stride);
      conv_bn(set, p + "conv1.weight", p + "bn1", planes, inplanes, 1, 1.0, k1(inplanes), b.conv1);
      conv_bn(set, p + "conv2.weight", p + "bn2", planes, planes, 3, 1.0, k3, b.conv2, true);
      conv_bn(set, p + "conv3.weight", p + "bn3", planes * 4, planes, 1, pool, k1(planes), b.conv3);
      // downsample = Sequential("-1": AvgPool2d, "0": Conv2d, "1": BatchNorm2d)
      if (b.has_down)
        conv_bn(set, p + "downsample.0.weight", p + "downsample.1", planes * 4, inplanes, 1, pool,
                k1(inplanes), b.down);
      else if (set.find(p + "downsample.0.weight"))
        throw std::runtime_error(
            fmt::format("tensor '{}downsample.0.weight': block {} of {}layer{} has no "
                        "downsample branch in this architecture",
                        p, i, prefix, s + 1));
      inplanes = planes * 4;
    }
    const std::string extra = fmt::format("{}layer{}.{}.conv1.weight", prefix, s + 1, depth);
    if (set.find(extra))
      throw std::runtime_error(
          fmt::format("open_clip_config.json vision_cfg.layers[{}] is {} but the checkpoint "
                      "has more blocks in {}layer{} ('{}')",
                      s, depth, prefix, s + 1, extra));
  }

  const int64_t C = r.embed_dim(), G = v.image_size / 32;
  if (inplanes != C) throw std::logic_error("ResNet feature width differs from embed_dim()");
  set.take(&w.pos_embd, prefix + "attnpool.positional_embedding", {G * G + 1, C}, GGML_TYPE_F32);
  const ggml_type mat = nn::WeightSet::fit(matrix, C);
  linear(set, prefix + "attnpool.q_proj", C, C, mat, w.q);
  linear(set, prefix + "attnpool.k_proj", C, C, mat, w.k);
  linear(set, prefix + "attnpool.v_proj", C, C, mat, w.v);
  linear(set, prefix + "attnpool.c_proj", out_dim, C, mat, w.c_proj);
}

ggml_tensor* build_resnet(ggml_context* ctx, ggml_tensor* pixels, const VisionConfig& v,
                          const ResnetWeights& w, bool fast, std::vector<IndexInput>& inputs) {
  TapIndex taps(inputs);
  const int64_t B = pixels->ne[3], C = v.resnet.embed_dim(), heads = v.resnet.heads, hd = C / heads;
  // stem: three 3x3 convolutions (the first with stride 2), then AvgPool2d(2)
  ggml_tensor* x = ggml_relu(ctx, conv3x3_planar(ctx, pixels, w.stem1, 2));
  x = ggml_relu(ctx, conv3x3_taps(ctx, x, w.stem2, taps));
  x = ggml_relu(ctx, conv3x3_taps(ctx, x, w.stem3, taps));
  x = ggml_scale(ctx, pool_sum(ctx, x, 2), 0.25f);
  for (const Bottleneck& b : w.blocks) x = bottleneck(ctx, x, b, taps);  // [C, G, G, B]

  // attention pool: the mean token first, + positions; only the mean token queries
  const int64_t T = x->ne[1] * x->ne[2];
  x = ggml_reshape_3d(ctx, x, C, T, B);
  ggml_tensor* mean = ggml_mean(ctx, ggml_cont(ctx, ggml_permute(ctx, x, 1, 0, 2, 3)));  // [1, C, B]
  x = ggml_concat(ctx, ggml_reshape_3d(ctx, mean, C, 1, B), x, 1);                       // [C, T+1, B]
  x = ggml_add(ctx, x, w.pos_embd);
  ggml_tensor* q0 = ggml_cont(ctx, ggml_view_3d(ctx, x, C, 1, B, x->nb[1], x->nb[2], 0));
  ggml_tensor* q = ggml_reshape_4d(ctx, nn::linear(ctx, q0, w.q), hd, heads, 1, B);
  ggml_tensor* k = ggml_reshape_4d(ctx, nn::linear(ctx, x, w.k), hd, heads, T + 1, B);
  ggml_tensor* val = ggml_reshape_4d(ctx, nn::linear(ctx, x, w.v), hd, heads, T + 1, B);
  ggml_tensor* att =
      nn::attention(ctx, q, k, val, false, nullptr, fast, nn::weights_on_host(w.q.w));  // [C, 1, B]
  return ggml_reshape_2d(ctx, nn::linear(ctx, att, w.c_proj), w.c_proj.w->ne[1], B);
}

}  // namespace capforge::clip
