// Procedural shape images whose true caption is known: the offline demo's data and quality test.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "capforge/sample.h"

namespace capforge::synth {

struct Shape {
  std::string kind, colour;  // "circle" "square" "triangle" "star"; "red" ...
  int x = 0, y = 0, radius = 0;
};

struct Scene {
  std::string background;
  std::vector<Shape> shapes;  // left to right
  std::string caption;        // the true caption
  std::string where;          // position phrase of a single shape ("at the top left"), else ""
  std::string word;           // a word drawn at the bottom (see add_word), else ""
};

// The vocabulary of scenes (for training and for parsing captions back).
const std::vector<std::string>& colours();
const std::vector<std::string>& kinds();
const std::vector<std::string>& positions();

// A random scene (1-3 shapes) for `seed`, and its rendering as `size` x `size` RGB.
Scene make_scene(uint64_t seed);
Image render(const Scene& s, int size);
// With probability `prob`, a word (SALE, OPEN, ...) to draw in the scene, named in its caption:
// '... background with the word "SALE"'. Drawn from its own stream of `seed`, so the scene itself
// is the same whatever `prob` is.
void add_word(Scene& s, uint64_t seed, double prob);
// The true caption of a scene: its shapes left to right, the position of a single shape, the
// background and the word ('a red circle at the top left on a white background').
std::string scene_caption(const Scene& s);
// A short, noisy, web-like alt-text for the scene.
std::string alt_text(const Scene& s, uint64_t seed);

// What a caption says, parsed with the scene vocabulary (for attribute accuracy).
struct Parsed {
  std::vector<std::pair<std::string, std::string>> objects;  // (colour, kind) in order
  std::string background, where, word;
};
Parsed parse_caption(const std::string& caption);

}  // namespace capforge::synth
