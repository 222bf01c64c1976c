// --mmproj-dtype bf16: the projector's matrices converted to bf16 before libmtmd loads them (which
// runs bf16 products at twice its f16 rate on CPUs with AVX512-BF16: f16 there is converted to f32
// for every product). libmtmd reads a file, so the converted copy is a temporary file that the
// caller removes once it is loaded. Only the matrices of the transformer blocks and the projector
// ("v.blk.*", "mm.*": 2-d, f16 or f32) change; embeddings, convolutions and norms stay as stored.
#pragma once

#include <string>

namespace capforge::vlm {

// Writes the converted copy of `mmproj` into a new temporary file and returns its path. Throws
// std::invalid_argument for a projector type outside the ones checked with bf16 (mlp: LLaVA-1.5;
// idefics3: SmolVLM), std::runtime_error when reading or writing fails.
std::string mmproj_as_bf16(const std::string& mmproj);

}  // namespace capforge::vlm
