#include "eval/grid.h"

#include <algorithm>
#include <numeric>
#include <random>
#include <stdexcept>

namespace capforge::eval {

namespace {

std::string trim(std::string s) {
  auto ws = [](char c) { return c == ' ' || c == '\t' || c == '\n'; };
  while (!s.empty() && ws(s.back())) s.pop_back();
  size_t i = 0;
  while (i < s.size() && ws(s[i])) ++i;
  return s.substr(i);
}

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  size_t i = 0;
  for (;;) {
    size_t j = s.find(sep, i);
    out.push_back(s.substr(i, j == std::string::npos ? std::string::npos : j - i));
    if (j == std::string::npos) return out;
    i = j + 1;
  }
}

}  // namespace

std::vector<std::pair<std::string, std::vector<std::string>>> parse_grid(const std::string& spec) {
  std::vector<std::pair<std::string, std::vector<std::string>>> grid;
  for (auto part : split(spec, ';')) {
    part = trim(part);
    if (part.empty()) continue;
    size_t eq = part.find('=');
    if (eq == std::string::npos || eq == 0)
      throw std::invalid_argument("grid part '" + part + "' is not name=v1,v2,...");
    std::string name = trim(part.substr(0, eq));
    while (!name.empty() && name[0] == '-') name.erase(0, 1);
    std::replace(name.begin(), name.end(), '_', '-');
    std::vector<std::string> values;
    for (auto v : split(part.substr(eq + 1), ',')) {
      v = trim(v);
      if (v.empty()) throw std::invalid_argument("grid part '" + part + "' has an empty value");
      std::replace(v.begin(), v.end(), '|', ',');
      values.push_back(v);
    }
    for (auto& [n, vs] : grid)
      if (n == name) throw std::invalid_argument("grid names " + name + " twice");
    grid.emplace_back(name, values);
  }
  if (grid.empty()) throw std::invalid_argument("the grid is empty");
  return grid;
}

std::vector<Setting> expand_grid(const std::vector<std::pair<std::string, std::vector<std::string>>>& grid,
                                 size_t sample, uint64_t seed) {
  size_t total = 1;
  for (auto& [n, vs] : grid) total *= vs.size();
  std::vector<size_t> picks(total);
  std::iota(picks.begin(), picks.end(), 0);
  if (sample > 0 && sample < total) {
    std::mt19937_64 rng(seed);
    std::shuffle(picks.begin(), picks.end(), rng);
    picks.resize(sample);
    std::sort(picks.begin(), picks.end());
  }
  std::vector<Setting> out;
  for (size_t idx : picks) {
    Setting s(grid.size());
    for (size_t d = grid.size(); d-- > 0;) {
      auto& vs = grid[d].second;
      s[d] = {grid[d].first, vs[idx % vs.size()]};
      idx /= vs.size();
    }
    out.push_back(std::move(s));
  }
  return out;
}

std::string setting_label(const Setting& s) {
  std::string out;
  for (auto& [k, v] : s) out += (out.empty() ? "" : " ") + k + "=" + v;
  return out;
}

}  // namespace capforge::eval
