// A thread-local UTF-8 locale for libarchive calls.
#pragma once

#include <locale.h>
#include <clocale>

namespace capforge {

// libarchive converts member names through the calling thread's locale: under "C" (the default
// of a process that never calls setlocale, and LANG=C) a non-ASCII name cannot be converted, and
// libarchive 3.6 crashes formatting that error. While this scope lives, the thread's LC_CTYPE is
// UTF-8, so tar member names are read and written as UTF-8 whatever the environment says. Other
// threads are not affected. Without a UTF-8 locale on the system it changes nothing.
class Utf8LocaleScope {
 public:
  Utf8LocaleScope() {
    static locale_t utf8 = [] {
      for (const char* name : {"C.UTF-8", "C.utf8", "en_US.UTF-8"})
        if (locale_t l = newlocale(LC_CTYPE_MASK, name, (locale_t)0)) return l;
      return (locale_t)0;
    }();
    if (utf8) previous_ = uselocale(utf8);
  }
  ~Utf8LocaleScope() {
    if (previous_) uselocale(previous_);
  }
  Utf8LocaleScope(const Utf8LocaleScope&) = delete;
  Utf8LocaleScope& operator=(const Utf8LocaleScope&) = delete;

 private:
  locale_t previous_ = (locale_t)0;
};

}  // namespace capforge
