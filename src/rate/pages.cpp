#include "rate/pages.h"

#include <fmt/format.h>

#include "core/text.h"

namespace capforge::rate {

const char* const kCsp =
    "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; form-action 'self'; base-uri 'none'; "
    "frame-ancestors 'none'";

namespace {

constexpr const char* kStyle =
    "body{font:16px/1.45 system-ui,sans-serif;max-width:46rem;margin:2rem auto;padding:0 1rem;color:#222}"
    "img{max-width:100%;max-height:24rem;display:block;margin:1rem 0;border-radius:4px}"
    "blockquote{font-size:1.2rem;border-left:4px solid #4e79a7;margin:1rem 0;padding:.5rem "
    "1rem;background:#f4f6f9;"
    "white-space:pre-wrap;overflow-wrap:anywhere}"
    "fieldset{border:1px solid #ccc;border-radius:4px;margin:1rem "
    "0}label{margin-right:1.2rem;white-space:nowrap}"
    "button{font-size:1rem;padding:.4rem 1.4rem}.muted{color:#666}";

std::string page(const std::string& title, const std::string& body) {
  return fmt::format(
      "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
      "<meta http-equiv=\"Content-Security-Policy\" content=\"{}\">"
      "<meta name=\"referrer\" content=\"no-referrer\">"
      "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">"
      "<title>{}</title><style>{}</style></head><body>{}</body></html>",
      kCsp, html_escape(title), kStyle, body);
}

}  // namespace

std::string task_page(const std::string& title, const Rater& rater, const std::string& token,
                      const Task& task) {
  std::string base = "/r/" + html_escape(token);
  std::string who;
  for (auto [value, label] : {std::pair{"human", "A human"}, std::pair{"ai", "An AI"}})
    who += fmt::format(
        "<label><input type=\"radio\" name=\"believed\" value=\"{0}\" id=\"believed-{0}\" required> "
        "{1}</label>",
        value, label);
  std::string score;
  for (int s = 0; s <= 5; ++s)
    score += fmt::format(
        "<label><input type=\"radio\" name=\"score\" value=\"{0}\" id=\"score-{0}\" required> {0}"
        "</label>",
        s);
  std::string body = fmt::format(
      "<h1>{}</h1><p class=\"muted\">Rater <b id=\"rater\">{}</b> · caption <span id=\"position\">{}</span> "
      "of "
      "<span id=\"total\">{}</span></p>"
      "<img id=\"image\" src=\"{}/image/{}\" alt=\"the image this caption describes\">"
      "<blockquote id=\"caption\">{}</blockquote>"
      "<form method=\"post\" action=\"{}/rate\" id=\"rating\"><input type=\"hidden\" name=\"item\" "
      "value=\"{}\">"
      "<fieldset><legend>Who wrote this caption?</legend>{}</fieldset>"
      "<fieldset><legend>How good is it as a caption for this image? 0 = unrelated, 5 = perfect</legend>{}"
      "</fieldset><button type=\"submit\" id=\"submit\">Submit and next</button></form>",
      html_escape(title), html_escape(rater.name), task.position, task.total, base, task.item_id,
      html_escape(task.caption), base, task.item_id, who, score);
  return page(title, body);
}

std::string done_page(const std::string& title, const Rater& rater, int rated) {
  return page(title, fmt::format("<h1>{}</h1><p id=\"done\">Thank you, {}: all {} captions are rated.</p>",
                                 html_escape(title), html_escape(rater.name), rated));
}

std::string message_page(const std::string& title, const std::string& heading, const std::string& text,
                         const std::string& back_href) {
  std::string back =
      back_href.empty() ? "" : fmt::format("<p><a href=\"{}\">Back</a></p>", html_escape(back_href));
  return page(title, fmt::format("<h1>{}</h1><p id=\"message\">{}</p>{}", html_escape(heading),
                                 html_escape(text), back));
}

}  // namespace capforge::rate
