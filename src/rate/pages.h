// The rating app's HTML: plain server-rendered forms, no script. Every value that comes from the
// data (captions, names, counts) is HTML-escaped here; pages are served with a CSP that forbids
// scripts, so an escaping slip still cannot run code.
#pragma once

#include <string>

#include "rate/store.h"

namespace capforge::rate {

// The Content-Security-Policy every response carries.
extern const char* const kCsp;

std::string task_page(const std::string& title, const Rater& rater, const std::string& token,
                      const Task& task);
std::string done_page(const std::string& title, const Rater& rater, int rated);
std::string message_page(const std::string& title, const std::string& heading, const std::string& text,
                         const std::string& back_href = "");

}  // namespace capforge::rate
