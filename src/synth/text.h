// Words drawn into synthetic images (capforge synth --text-prob): libvips renders the text
// (pango + fontconfig; DejaVu Sans Bold when installed), fitted into a box at the bottom.
#pragma once

#include <array>
#include <cstdint>
#include <string>

#include "capforge/sample.h"

namespace capforge::synth {

// Draws `word` in `colour` centred in the bottom fifth of `img`, fitted to 70% of its width.
// Throws std::runtime_error if libvips cannot render text.
void draw_word(Image& img, const std::string& word, const std::array<uint8_t, 3>& colour);

}  // namespace capforge::synth
