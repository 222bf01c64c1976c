// Shared ggml plumbing for our model graphs: device choice, weight upload with dtype conversion.
#pragma once

#include <string>
#include <vector>

#include "ggml-backend.h"
#include "ggml.h"

namespace capforge {

// The device to run on: the first GPU when `gpu` and one is compiled in, else the CPU.
ggml_backend_dev_t pick_device(bool gpu);
// A backend on `dev`; CPU backends get `threads` threads (0: all cores).
ggml_backend_t init_backend(ggml_backend_dev_t dev, int threads);

// "f32", "f16", "q8_0" -> ggml type; throws on others.
ggml_type weight_type_from_name(const std::string& name);

// Copies f32 `values` into `t` (already allocated in a backend buffer), converting to t's type.
void upload_f32(ggml_tensor* t, const std::vector<float>& values);

}  // namespace capforge
