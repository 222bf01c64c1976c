#include "synth/shapes.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <random>
#include <sstream>

#include "core/text.h"
#include "synth/text.h"

namespace capforge::synth {

namespace {

const std::map<std::string, std::array<uint8_t, 3>>& palette() {
  static const std::map<std::string, std::array<uint8_t, 3>> p = {
      {"red", {220, 40, 40}},     {"green", {40, 170, 60}},   {"blue", {40, 80, 220}},
      {"yellow", {240, 210, 40}}, {"purple", {140, 60, 170}}, {"orange", {245, 140, 30}},
      {"white", {245, 245, 245}}, {"black", {20, 20, 20}},    {"gray", {128, 128, 128}}};
  return p;
}

const char* kWhere[3][3] = {{"at the top left", "at the top", "at the top right"},
                            {"on the left", "in the center", "on the right"},
                            {"at the bottom left", "at the bottom", "at the bottom right"}};

bool inside(const Shape& s, double px, double py) {
  double dx = px - s.x, dy = py - s.y, r = s.radius;
  if (s.kind == "circle") return dx * dx + dy * dy <= r * r;
  if (s.kind == "square") return std::fabs(dx) <= r * 0.85 && std::fabs(dy) <= r * 0.85;
  // polygons: even-odd rule
  std::vector<std::pair<double, double>> pts;
  if (s.kind == "triangle") {
    for (int k = 0; k < 3; ++k) {
      double a = -M_PI / 2 + k * 2 * M_PI / 3;
      pts.push_back({r * std::cos(a), r * std::sin(a) + r * 0.2});
    }
  } else {  // star
    for (int k = 0; k < 10; ++k) {
      double a = -M_PI / 2 + k * M_PI / 5, rr = k % 2 ? r * 0.45 : r;
      pts.push_back({rr * std::cos(a), rr * std::sin(a)});
    }
  }
  bool in = false;
  for (size_t i = 0, j = pts.size() - 1; i < pts.size(); j = i++) {
    auto [xi, yi] = pts[i];
    auto [xj, yj] = pts[j];
    if ((yi > dy) != (yj > dy) && dx < (xj - xi) * (dy - yi) / (yj - yi) + xi) in = !in;
  }
  return in;
}

std::string article_list(const std::vector<Shape>& shapes) {
  std::string out;
  for (size_t i = 0; i < shapes.size(); ++i) {
    if (i) out += i + 1 == shapes.size() ? " and " : ", ";
    out += (shapes[i].colour == "orange" ? "an " : "a ") + shapes[i].colour + " " + shapes[i].kind;
  }
  return out;
}

}  // namespace

const std::vector<std::string>& colours() {
  static const std::vector<std::string> c = {"red",    "green",  "blue",  "yellow",
                                             "purple", "orange", "white", "black"};
  return c;
}
const std::vector<std::string>& kinds() {
  static const std::vector<std::string> k = {"circle", "square", "triangle", "star"};
  return k;
}
const std::vector<std::string>& positions() {
  static const std::vector<std::string> p = [] {
    std::vector<std::string> v;
    for (auto& row : kWhere)
      for (auto* w : row) v.push_back(w);
    return v;
  }();
  return p;
}

Scene make_scene(uint64_t seed) {
  std::mt19937_64 rng(seed);
  auto pick = [&](const std::vector<std::string>& v) { return v[rng() % v.size()]; };
  Scene s;
  std::vector<std::string> bgs = {"white", "black", "gray"};
  s.background = pick(bgs);
  int n = 1 + (int)(rng() % 3);
  // cells of a 3x3 grid, no two shapes in the same column so "left to right" is well defined
  std::vector<int> cols = {0, 1, 2};
  std::shuffle(cols.begin(), cols.end(), rng);
  cols.resize((size_t)n);
  std::sort(cols.begin(), cols.end());
  for (int c : cols) {
    Shape sh;
    sh.kind = pick(kinds());
    do sh.colour = pick(colours());
    while (sh.colour == s.background);
    int row = (int)(rng() % 3);
    // centre of the cell in a unit square, jittered; scaled at render time
    sh.x = c * 100 + 50 + (int)(rng() % 21) - 10;
    sh.y = row * 100 + 50 + (int)(rng() % 21) - 10;
    sh.radius = 34 + (int)(rng() % 12);
    if (n == 1) s.where = kWhere[row][c];
    s.shapes.push_back(sh);
  }
  s.caption = scene_caption(s);
  return s;
}

std::string scene_caption(const Scene& s) {
  std::string c = article_list(s.shapes) + (s.where.empty() ? "" : " " + s.where) + " on a " + s.background +
                  " background";
  if (!s.word.empty()) c += " with the word \"" + s.word + "\"";
  return c;
}

Image render(const Scene& s, int size) {
  Image img;
  img.width = img.height = size;
  img.rgb.resize((size_t)size * size * 3);
  auto bg = palette().at(s.background);
  for (size_t i = 0; i < img.rgb.size(); i += 3) std::copy(bg.begin(), bg.end(), img.rgb.begin() + (long)i);
  const double k = size / 300.0;  // scene units -> pixels
  for (auto& sh : s.shapes) {
    auto col = palette().at(sh.colour);
    for (int y = 0; y < size; ++y)
      for (int x = 0; x < size; ++x)
        if (inside(sh, (x + 0.5) / k, (y + 0.5) / k))
          std::copy(col.begin(), col.end(), img.rgb.begin() + ((long)y * size + x) * 3);
  }
  if (!s.word.empty()) draw_word(img, s.word, palette().at(s.background == "white" ? "black" : "white"));
  return img;
}

void add_word(Scene& s, uint64_t seed, double prob) {
  static const std::vector<std::string> kWords = {"SALE", "OPEN",  "STOP", "FREE",
                                                  "NEW",  "HELLO", "CAT",  "SUN"};
  std::mt19937_64 rng(seed ^ 0x9e3779b97f4a7c15ull);
  if (std::uniform_real_distribution<double>(0, 1)(rng) >= prob) return;
  s.word = kWords[rng() % kWords.size()];
  s.caption = scene_caption(s);
}

std::string alt_text(const Scene& s, uint64_t seed) {
  std::mt19937_64 rng(seed ^ 0x5bd1e995);
  const Shape& a = s.shapes[0];
  std::string colour = a.colour;
  if (rng() % 5 == 0) colour = colours()[rng() % colours().size()];  // web alt-text is often wrong
  switch (rng() % 7) {
    case 0:
      return fmt::format("IMG_{}.JPG", 1000 + rng() % 9000);
    case 1:
      return fmt::format("{} {} clipart", colour, a.kind);
    case 2:
      return fmt::format("free {} vector {} png", a.kind, colour);
    case 3:
      return fmt::format("{} shapes wallpaper", s.background);
    case 4:
      return "";
    case 5:
      return fmt::format("{} {} {}", colour == "orange" ? "an" : "a", colour, a.kind);
    default:
      return fmt::format("stock photo {} {} on {}", colour, a.kind, s.background);
  }
}

Parsed parse_caption(const std::string& caption) {
  Parsed p;
  std::istringstream in(ascii_lower(caption));
  std::vector<std::string> w;
  for (std::string t; in >> t;) {
    while (!t.empty() && std::ispunct((unsigned char)t.back())) t.pop_back();
    if (!t.empty()) w.push_back(t);
  }
  auto is = [](const std::vector<std::string>& v, const std::string& x) {
    return std::find(v.begin(), v.end(), x) != v.end();
  };
  for (size_t i = 0; i + 1 < w.size(); ++i) {
    if (is(colours(), w[i]) && is(kinds(), w[i + 1])) p.objects.push_back({w[i], w[i + 1]});
    if (w[i + 1] == "background") p.background = w[i];
  }
  if (auto q = caption.find("word \""); q != std::string::npos) {
    auto end = caption.find('"', q + 6);
    if (end != std::string::npos) p.word = caption.substr(q + 6, end - q - 6);
  }
  std::string text = " " + ascii_lower(caption) + " ";
  for (auto& pos : positions())
    if (text.find(" " + pos + " ") != std::string::npos && pos.size() > p.where.size()) p.where = pos;
  return p;
}

}  // namespace capforge::synth
