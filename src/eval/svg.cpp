#include "eval/svg.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "core/text.h"

namespace capforge::eval {

namespace {
constexpr int kW = 560, kH = 220, kLeft = 48, kBottom = 36, kTop = 24, kRight = 12;
}

std::string histogram_svg(const std::vector<Series>& series, const std::string& x_label, int bins) {
  double lo = INFINITY, hi = -INFINITY;
  for (auto& s : series)
    for (double v : s.values)
      if (std::isfinite(v)) lo = std::min(lo, v), hi = std::max(hi, v);
  std::string svg = fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\" role=\"img\" "
      "font-family=\"sans-serif\" font-size=\"11\">",
      kW, kH);
  if (!std::isfinite(lo)) return svg + "<text x=\"10\" y=\"20\">no data</text></svg>";
  if (hi <= lo) hi = lo + 1;
  std::vector<std::vector<int>> counts(series.size(), std::vector<int>((size_t)bins, 0));
  int peak = 1;
  for (size_t k = 0; k < series.size(); ++k)
    for (double v : series[k].values) {
      if (!std::isfinite(v)) continue;
      int b = std::min(bins - 1, (int)((v - lo) / (hi - lo) * bins));
      peak = std::max(peak, ++counts[k][(size_t)b]);
    }
  const double pw = kW - kLeft - kRight, ph = kH - kTop - kBottom, bw = pw / bins;
  for (size_t k = 0; k < series.size(); ++k)
    for (int b = 0; b < bins; ++b) {
      int c = counts[k][(size_t)b];
      if (!c) continue;
      double h = ph * c / peak;
      svg += fmt::format(
          "<rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"{:.1f}\" height=\"{:.1f}\" fill=\"{}\" "
          "fill-opacity=\"0.55\"><title>{}: {}</title></rect>",
          kLeft + b * bw, kTop + ph - h, bw, h, html_escape(series[k].colour), html_escape(series[k].name),
          c);
    }
  svg += fmt::format("<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#444\"/>", kLeft, kTop + ph,
                     kW - kRight, kTop + ph);
  for (int t = 0; t <= 4; ++t) {
    double x = kLeft + pw * t / 4, v = lo + (hi - lo) * t / 4;
    svg +=
        fmt::format("<text x=\"{:.1f}\" y=\"{}\" text-anchor=\"middle\">{:.3g}</text>", x, kTop + ph + 14, v);
  }
  svg += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>", kLeft + pw / 2, kH - 4,
                     html_escape(x_label));
  svg += fmt::format("<text x=\"4\" y=\"{}\">{}</text>", kTop + 8, peak);
  for (size_t k = 0; k < series.size(); ++k)
    svg += fmt::format(
        "<rect x=\"{}\" y=\"{}\" width=\"10\" height=\"10\" fill=\"{}\"/><text x=\"{}\" y=\"{}\">{} "
        "(n={})</text>",
        kLeft + 8 + 170 * (int)k, 6, html_escape(series[k].colour), kLeft + 22 + 170 * (int)k, 15,
        html_escape(series[k].name), series[k].values.size());
  return svg + "</svg>";
}

std::string bar_chart_svg(const std::vector<std::pair<std::string, double>>& bars,
                          const std::string& x_label) {
  const int row = 22, h = kTop + row * (int)std::max<size_t>(1, bars.size()) + kBottom, label_w = 170;
  double peak = 1;
  for (auto& [l, v] : bars) peak = std::max(peak, v);
  std::string svg = fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\" role=\"img\" "
      "font-family=\"sans-serif\" font-size=\"11\">",
      kW, h);
  const double pw = kW - label_w - kRight - 40;
  for (size_t i = 0; i < bars.size(); ++i) {
    double y = kTop + row * (double)i, w = pw * bars[i].second / peak;
    svg += fmt::format("<text x=\"{}\" y=\"{:.1f}\" text-anchor=\"end\">{}</text>", label_w - 6, y + 14,
                       html_escape(bars[i].first));
    svg += fmt::format("<rect x=\"{}\" y=\"{:.1f}\" width=\"{:.1f}\" height=\"16\" fill=\"#4e79a7\"/>",
                       label_w, y + 2, w);
    svg +=
        fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\">{:g}</text>", label_w + w + 4, y + 14, bars[i].second);
  }
  svg += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>", label_w + pw / 2, h - 6,
                     html_escape(x_label));
  return svg + "</svg>";
}

}  // namespace capforge::eval
