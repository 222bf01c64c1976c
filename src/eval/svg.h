// Inline SVG charts for the HTML report: no scripts, every label escaped.
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace capforge::eval {

struct Series {
  std::string name, colour;  // colour: a CSS colour literal chosen by the caller, e.g. "#1f77b4"
  std::vector<double> values;
};

// Overlaid, semi-transparent histograms over shared bins spanning every series' values.
std::string histogram_svg(const std::vector<Series>& series, const std::string& x_label, int bins = 30);

// Horizontal bars, one per (label, value), longest first as given.
std::string bar_chart_svg(const std::vector<std::pair<std::string, double>>& bars,
                          const std::string& x_label);

}  // namespace capforge::eval
