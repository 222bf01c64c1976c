// Record-level validation of text tables (CSV, TSV, JSONL) before DuckDB reads them, so that one
// malformed record costs one row (status failed_to_read) instead of the whole file.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "capforge/io.h"

namespace capforge {

// A record that cannot be parsed. It becomes a sample of its own, placed after the `before` good
// records that precede it in the file.
struct BadRecord {
  int64_t before = 0;  // good records (header excluded) before it
  int64_t line = 0;    // 1-based line where it starts
  std::string reason;  // names the line, e.g. "line 7: invalid JSON at column 12"
};

struct TextTable {
  std::string read_path;       // what DuckDB reads: the input itself, or a cleaned temp copy
  char delim = ',';            // CSV/TSV: the field delimiter (a CSV's is detected from its header)
  std::vector<BadRecord> bad;  // in file order
  size_t utf8_replaced = 0;    // invalid UTF-8 sequences replaced with U+FFFD in the copy
  std::string temp_copy;       // the copy, removed on destruction (empty: none)
  ~TextTable();
};

// Whether `in` gets a prescan: CSV, TSV and JSONL files, gzip-compressed (.gz) or not.
bool needs_prescan(const ShardInput& in);

// Scans the file once (decompressing .gz), streaming, record by record: JSONL lines must be JSON objects
// (blank lines are skipped); CSV/TSV records must have as many fields as the header (CSV: RFC 4180 quoting
// with
// '"'; a quote left open swallows at most 10,000 lines before its first line is judged bad on its
// own). When a record is bad, a byte is invalid UTF-8 or a blank / whitespace-only line was skipped,
// a second pass writes a temp copy holding the header and the good records, repaired, for DuckDB
// to read. The scan results (bad records, delimiter) are cached for the process per (path, size,
// mtime); the copy lives only as long as the returned TextTable (shared by the holders of one file
// at once) and is removed with it, so at most the open shards' copies exist. Throws std::runtime_error naming
// the file when it cannot be read, its header is malformed, or over 100,000 records are bad (not the format
// it claims).
std::shared_ptr<const TextTable> prescan_text_table(const ShardInput& in);

}  // namespace capforge
