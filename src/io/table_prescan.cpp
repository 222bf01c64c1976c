#include "io/table_prescan.h"

#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>
#include <zlib.h>

#include <cerrno>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <stdexcept>

#include "core/text.h"

namespace capforge {

namespace {

constexpr size_t kMaxRecordLines = 10000;      // a quoted field may span at most this many lines
constexpr size_t kMaxRecordBytes = 64u << 20;  // ... and this many bytes
// More bad records than this and the file is not the format its name says: it fails as a whole
// (bounds the memory the list of bad records takes).
constexpr size_t kMaxBadRecords = 100000;

using Line = std::pair<int64_t, std::string>;  // (1-based line number, text without '\n')

// Physical lines of a file, gzip-compressed or not (zlib reads a plain file as it is); lines can
// be put back to be read again (after a bad multi-line record).
class LineSource {
 public:
  explicit LineSource(const std::string& path) : path_(path), in_(gzopen(path.c_str(), "rb")) {
    if (!in_) throw std::runtime_error(fmt::format("cannot read {}: {}", path, std::strerror(errno)));
  }
  ~LineSource() { gzclose(in_); }
  LineSource(const LineSource&) = delete;
  LineSource& operator=(const LineSource&) = delete;

  bool next(Line& out) {
    if (!back_.empty()) {
      out = std::move(back_.front());
      back_.pop_front();
      return true;
    }
    out.second.clear();
    bool any = false;
    for (;;) {
      if (pos_ == len_) {
        int n = gzread(in_, buf_.data(), (unsigned)buf_.size());
        if (n < 0) {
          int err = 0;
          const char* msg = gzerror(in_, &err);
          throw std::runtime_error(
              fmt::format("cannot read {}: {}", path_, err == Z_ERRNO ? std::strerror(errno) : msg));
        }
        if (n == 0) break;
        pos_ = 0;
        len_ = (size_t)n;
      }
      const char* start = buf_.data() + pos_;
      if (auto* nl = (const char*)std::memchr(start, '\n', len_ - pos_)) {
        out.second.append(start, (size_t)(nl - start));
        pos_ += (size_t)(nl - start) + 1;
        any = true;
        break;
      }
      out.second.append(start, len_ - pos_);  // NUL bytes included: lines end only at '\n'
      pos_ = len_;
      any = true;
    }
    if (!any) return false;
    out.first = ++line_no_;
    return true;
  }
  void put_back(std::vector<Line>::iterator begin, std::vector<Line>::iterator end) {
    back_.insert(back_.begin(), std::make_move_iterator(begin), std::make_move_iterator(end));
  }

 private:
  std::string path_;
  gzFile in_;
  std::vector<char> buf_ = std::vector<char>(1 << 16);
  size_t pos_ = 0, len_ = 0;
  std::deque<Line> back_;
  int64_t line_no_ = 0;
};

bool blank(std::string_view s) { return s.find_first_not_of(" \t\r") == std::string_view::npos; }

// Why a JSONL line is not a record, or "" when it is one.
std::string json_problem(const std::string& line) {
  if (!Json::accept(line)) {
    try {
      (void)Json::parse(line);
    } catch (const Json::parse_error& e) {
      return fmt::format("invalid JSON at column {}", e.byte);
    }
    return "invalid JSON";
  }
  return line[line.find_first_not_of(" \t\r")] == '{' ? "" : "not a JSON object";
}

// Field counting for one CSV record fed line by line (RFC 4180: '"' quotes, '""' escapes).
struct CsvState {
  char delim = ',';
  bool quoting = true;  // false for TSV: quotes are plain characters
  int fields = 1;
  bool in_quotes = false, after_close = false, field_start = true, junk = false;

  void feed(std::string_view line) {
    for (size_t i = 0; i < line.size(); ++i) {
      char c = line[i];
      if (in_quotes) {
        if (c != '"') continue;
        if (i + 1 < line.size() && line[i + 1] == '"') {
          ++i;  // escaped quote
        } else {
          in_quotes = false;
          after_close = true;
        }
      } else if (after_close) {
        if (c == delim) {
          ++fields;
          after_close = false;
          field_start = true;
        } else if (!(c == '\r' && i + 1 == line.size())) {
          junk = true;
        }
      } else if (c == delim) {
        ++fields;
        field_start = true;
      } else {
        if (quoting && field_start && c == '"') in_quotes = true;
        field_start = false;
      }
    }
  }
};

// The most frequent of , ; | TAB outside quotes in a CSV header (',' when there is none).
char detect_delimiter(std::string_view header) {
  char best = ',';
  int best_n = 0;
  for (char d : {',', ';', '|', '\t'}) {
    int n = 0;
    bool q = false;
    for (char c : header) {
      if (c == '"') q = !q;
      if (!q && c == d) ++n;
    }
    if (n > best_n) best = d, best_n = n;
  }
  return best;
}

struct ScanResult {
  char delim = ',';
  std::vector<BadRecord> bad;
  size_t utf8 = 0;
  // A blank or whitespace-only line was skipped between records. DuckDB would not skip it the same
  // way (in a CSV it is a 1-field row that fails the rest of the file), so the copy is read.
  bool skipped_blank = false;
  bool needs_copy() const { return !bad.empty() || utf8 > 0 || skipped_blank; }
};

// One pass over the file; with `copy`, writes the header and the good records (repaired) to it.
ScanResult scan(const ShardInput& in, std::ostream* copy) {
  ScanResult r;
  LineSource src(in.path);
  Line line;
  int64_t good = 0;
  if (in.format == InputFormat::jsonl) {
    while (src.next(line)) {
      r.utf8 += repair_utf8(line.second);
      if (blank(line.second)) {
        r.skipped_blank = true;
        continue;
      }
      std::string why = json_problem(line.second);
      if (!why.empty()) {
        r.bad.push_back({good, line.first, fmt::format("line {}: {}", line.first, why)});
        if (r.bad.size() > kMaxBadRecords) return r;
      } else {
        ++good;
        if (copy) *copy << line.second << '\n';
      }
    }
    return r;
  }
  const bool tsv = in.format == InputFormat::tsv;
  if (!src.next(line)) return r;  // empty file: DuckDB's own error or empty result
  r.utf8 += repair_utf8(line.second);
  r.delim = tsv ? '\t' : detect_delimiter(line.second);
  CsvState head{r.delim, !tsv};
  head.feed(line.second);
  if (head.in_quotes || head.junk)
    throw std::runtime_error(
        fmt::format("cannot read {}: line 1 (the header) has {}", in.path,
                    head.in_quotes ? "an unterminated quote" : "text after a closing quote"));
  if (copy) *copy << line.second << '\n';
  std::vector<Line> rec;
  size_t rec_bytes = 0;
  CsvState st{r.delim, !tsv};
  for (;;) {
    bool got = src.next(line);
    if (!got && rec.empty()) break;
    if (got) {
      r.utf8 += repair_utf8(line.second);  // lines put back were repaired already: no double count
      if (rec.empty() && blank(line.second)) {
        r.skipped_blank = true;
        continue;
      }
      if (!rec.empty()) st.feed("\n");
      st.feed(line.second);
      rec_bytes += line.second.size() + 1;
      rec.push_back(std::move(line));
      if (st.in_quotes && rec.size() < kMaxRecordLines && rec_bytes < kMaxRecordBytes) continue;
    }
    // A bad record spanning lines: a quote opened on its first line closed nowhere sensible.
    std::string why =
        st.in_quotes || (rec.size() > 1 && (st.junk || st.fields != head.fields)) ? "unterminated quote"
        : st.junk                  ? "text after a closing quote"
        : st.fields != head.fields ? fmt::format("expected {} fields, found {}", head.fields, st.fields)
                                   : "";
    if (why.empty()) {
      ++good;
      if (copy)
        for (auto& l : rec) *copy << l.second << '\n';
    } else {
      r.bad.push_back({good, rec[0].first, fmt::format("line {}: {}", rec[0].first, why)});
      src.put_back(rec.begin() + 1, rec.end());  // the lines after the bad one get their own chance
      if (r.bad.size() > kMaxBadRecords) return r;
    }
    rec.clear();
    rec_bytes = 0;
    st = CsvState{r.delim, !tsv};
  }
  return r;
}

ScanResult scan_checked(const ShardInput& in) {
  ScanResult r = scan(in, nullptr);
  if (r.bad.size() > kMaxBadRecords)
    throw std::runtime_error(
        fmt::format("cannot read {} as {}: more than {} records do not parse, the first: {}", in.path,
                    format_name(in.format), kMaxBadRecords, r.bad[0].reason));
  return r;
}

// Writes the cleaned copy of `in` (header and good records, repaired) to a new temp file.
std::string write_copy(const ShardInput& in) {
  std::string tmpl = (std::filesystem::temp_directory_path() / "capforge-table-XXXXXX").string();
  int fd = mkstemp(tmpl.data());
  if (fd < 0)
    throw std::runtime_error(
        fmt::format("cannot create a temp copy of {}: {}", in.path, std::strerror(errno)));
  close(fd);
  try {
    std::ofstream out(tmpl, std::ios::binary | std::ios::trunc);
    scan(in, &out);
    out.flush();
    if (!out)
      throw std::runtime_error(
          fmt::format("cannot write a temp copy of {} to {}: {}", in.path, tmpl, std::strerror(errno)));
  } catch (...) {
    ::unlink(tmpl.c_str());
    throw;
  }
  return tmpl;
}

// What the cache keeps per (path, size, mtime): the scan results for the process, and the cleaned
// copy only while some reader holds it (readers of one shard at once share it).
struct Entry {
  std::mutex mu;  // one scan / one copy at a time per file; other files go on in parallel
  std::shared_ptr<const ScanResult> scan;
  std::weak_ptr<TextTable> copy;
};

}  // namespace

TextTable::~TextTable() {
  if (!temp_copy.empty()) ::unlink(temp_copy.c_str());  // not env(): may run at static destruction
}

bool needs_prescan(const ShardInput& in) {
  return in.format == InputFormat::csv || in.format == InputFormat::tsv || in.format == InputFormat::jsonl;
}

std::shared_ptr<const TextTable> prescan_text_table(const ShardInput& in) {
  static std::mutex mu;
  static std::map<std::string, std::shared_ptr<Entry>> cache;  // scan results, for the process
  struct stat st {};
  if (::stat(in.path.c_str(), &st) != 0)
    throw std::runtime_error(fmt::format("cannot read {}: {}", in.path, std::strerror(errno)));
  std::string key = fmt::format("{}\n{}\n{}.{}", in.path, (long long)st.st_size, (long long)st.st_mtim.tv_sec,
                                (long long)st.st_mtim.tv_nsec);
  std::shared_ptr<Entry> e;
  {
    std::lock_guard lock(mu);
    auto& slot = cache[key];
    if (!slot) slot = std::make_shared<Entry>();
    e = slot;
  }
  std::lock_guard lock(e->mu);
  if (!e->scan) e->scan = std::make_shared<const ScanResult>(scan_checked(in));
  if (auto shared = e->copy.lock()) return shared;
  auto t = std::make_shared<TextTable>();
  t->delim = e->scan->delim;
  t->bad = e->scan->bad;
  t->utf8_replaced = e->scan->utf8;
  t->read_path = in.path;
  if (!e->scan->needs_copy()) return t;
  t->temp_copy = write_copy(in);
  t->read_path = t->temp_copy;
  e->copy = t;
  return t;
}

}  // namespace capforge
