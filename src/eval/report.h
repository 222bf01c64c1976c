// The eval report: one self-contained HTML file (inline CSS and SVG, thumbnails as data: URIs, no
// scripts, a Content-Security-Policy that forbids them) that opens offline.
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "capforge/sample.h"
#include "eval/svg.h"

namespace capforge::eval {

struct GalleryItem {
  std::string key, url, status, error, pred, org;
  std::vector<std::string> refs;
  std::string thumb_jpeg;  // empty: no image
  std::optional<double> re_clip, org_clip, cider_d;
};

struct ReportData {
  std::string title;
  std::vector<std::string> inputs;
  // Rows of (metric, re value, org value) and the summary JSON printed by `eval --json`.
  std::vector<std::tuple<std::string, std::string, std::string>> table;
  std::vector<Series> clip, length;
  std::vector<std::pair<std::string, double>> statuses;
  std::vector<GalleryItem> gallery;
};

std::string render_report(const ReportData& d);

}  // namespace capforge::eval
