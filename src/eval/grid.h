// The tuner's search space: "top_p=0.1,0.25,0.5;min_new_tokens=5,10" -> every combination.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace capforge::eval {

// One setting: (flag, value) pairs, flags as long option names without dashes ("top-p").
using Setting = std::vector<std::pair<std::string, std::string>>;

// Parses "name=v1,v2;name2=w1,..." (names may use _ or -; a value's own comma list is written
// with |, e.g. top_p=0.1|0.2 for two candidates' values). Throws std::invalid_argument with the
// offending part.
std::vector<std::pair<std::string, std::vector<std::string>>> parse_grid(const std::string& spec);

// Every combination, the first dimension varying slowest. With 0 < sample < total, a random
// subset of that size chosen with `seed`, kept in grid order.
std::vector<Setting> expand_grid(const std::vector<std::pair<std::string, std::vector<std::string>>>& grid,
                                 size_t sample = 0, uint64_t seed = 0);

// "top-p=0.25 min-new-tokens=10"
std::string setting_label(const Setting& s);

}  // namespace capforge::eval
