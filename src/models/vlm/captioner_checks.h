// Captioner settings checked before llama.cpp sees them (it aborts on some, e.g. a context smaller
// than its sequence count).
#pragma once

#include "capforge/captioner.h"

namespace capforge::vlm {

// Throws std::invalid_argument naming the flag and its valid range for settings that llama.cpp
// would abort on or that cannot caption anything. The context size against the image and prompt
// is checked by the Captioner once it can tokenize them.
void check_captioner_params(const CaptionerParams& params);

}  // namespace capforge::vlm
