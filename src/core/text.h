// Small text utilities shared by readers and writers.
#pragma once
#include <string>
#include <string_view>

namespace capforge {

// Replaces each invalid UTF-8 sequence with U+FFFD. Returns how many were replaced.
size_t repair_utf8(std::string& s);
// Lower-cases ASCII letters.
std::string ascii_lower(std::string_view s);
// Lower-cases every code point (Unicode simple mapping, plus U+0130 -> "i\u0307" as Java and Python
// do); invalid UTF-8 bytes are kept as they are.
std::string unicode_lower(std::string_view s);
// "a.b.c" -> ("a", "b.c"): the webdataset key/extension split on the first dot of the basename.
std::pair<std::string, std::string> split_member_name(std::string_view name);
// File stem without directory and without all known extensions (".tar", ".parquet", ".csv.gz"...).
std::string path_stem(std::string_view path);
// Escapes & < > " ' for HTML text and attribute values (quoted with " or ').
std::string html_escape(std::string_view s);
// Text for a terminal: C0 control characters but line feed and tab, DEL and C1 controls
// (U+0080-U+009F) become '?', so file names and captions from the data cannot drive the terminal.
std::string terminal_safe(std::string_view s);
// Whitespace-separated word count.
int word_count(std::string_view s);

}  // namespace capforge
