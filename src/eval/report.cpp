#include "eval/report.h"

#include <fmt/format.h>

#include "core/hash.h"
#include "core/text.h"

namespace capforge::eval {

namespace {

const char* kStyle = R"(body{font-family:sans-serif;margin:24px;color:#222;max-width:1200px}
h1{font-size:22px}h2{font-size:17px;margin-top:28px}table{border-collapse:collapse}
td,th{border:1px solid #ccc;padding:4px 10px;text-align:right}td:first-child,th:first-child{text-align:left}
.charts{display:flex;flex-wrap:wrap;gap:16px}.gallery{display:grid;grid-template-columns:repeat(auto-fill,minmax(260px,1fr));gap:12px}
.card{border:1px solid #ddd;border-radius:6px;padding:8px;font-size:13px;overflow-wrap:anywhere}
.card img{width:100%;max-height:240px;object-fit:contain;background:#f4f4f4}.k{color:#777;font-size:11px}
.bad{color:#b00}.re{font-weight:bold}.ref{color:#555}.muted{color:#777})";

std::string score(const std::optional<double>& v) { return v ? fmt::format("{:.2f}", *v) : "-"; }

std::string card(const GalleryItem& g) {
  std::string h = "<div class=\"card\">";
  if (!g.thumb_jpeg.empty())
    h += "<img alt=\"" + html_escape(g.key) + "\" src=\"data:image/jpeg;base64," +
         base64_encode(g.thumb_jpeg) + "\">";
  h +=
      "<div class=\"k\">" + html_escape(g.key) + (g.url.empty() ? "" : " · " + html_escape(g.url)) + "</div>";
  if (g.status != "success")
    h += "<div class=\"bad\">" + html_escape(g.status) +
         (g.error.empty() ? "" : ": " + html_escape(g.error)) + "</div>";
  h += "<div class=\"re\">" + html_escape(g.pred) + "</div>";
  h += "<div class=\"muted\">alt-text: " + html_escape(g.org) + "</div>";
  for (size_t i = 0; i < g.refs.size() && i < 3; ++i)
    h += "<div class=\"ref\">ref: " + html_escape(g.refs[i]) + "</div>";
  h += fmt::format("<div class=\"k\">CLIP re {} · org {} · CIDEr-D {}</div>", score(g.re_clip),
                   score(g.org_clip), score(g.cider_d));
  return h + "</div>";
}

}  // namespace

std::string render_report(const ReportData& d) {
  std::string h =
      "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
      "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; img-src data:; "
      "style-src 'unsafe-inline'\"><title>" +
      html_escape(d.title) + "</title><style>" + kStyle + "</style></head><body>";
  h += "<h1>" + html_escape(d.title) + "</h1><p class=\"muted\">";
  for (auto& in : d.inputs) h += html_escape(in) + "<br>";
  h += "</p><h2>Summary</h2><table><tr><th></th><th>re (new captions)</th><th>org (alt-text)</th></tr>";
  for (auto& [name, re, org] : d.table)
    h += "<tr><td>" + html_escape(name) + "</td><td>" + html_escape(re) + "</td><td>" + html_escape(org) +
         "</td></tr>";
  h += "</table><h2>Distributions</h2><div class=\"charts\">";
  h += "<figure>" + histogram_svg(d.clip, "CLIP score (cosine x 100)") + "</figure>";
  h += "<figure>" + histogram_svg(d.length, "caption length (words)") + "</figure>";
  h += "<figure>" + bar_chart_svg(d.statuses, "samples by status") + "</figure></div>";
  h += fmt::format("<h2>Samples ({})</h2><div class=\"gallery\">", d.gallery.size());
  for (auto& g : d.gallery) h += card(g);
  return h + "</div></body></html>\n";
}

}  // namespace capforge::eval
