// webdataset tar shards via libarchive: members grouped by key, streamed one sample at a time.
#include <archive.h>
#include <archive_entry.h>

#include <fmt/format.h>

#include <stdexcept>

#include "core/text.h"
#include "io/readers.h"
#include "io/sample_builder.h"
#include "io/utf8_locale.h"

namespace capforge {

namespace {

// The member's name in UTF-8 whatever the locale (pax headers store UTF-8); names libarchive
// cannot convert (raw bytes in an old-style header) come back as stored, repaired later.
std::string member_name(archive_entry* e) {
  if (const char* utf8 = archive_entry_pathname_utf8(e)) return utf8;
  if (const char* raw = archive_entry_pathname(e)) return raw;
  return "";
}

class TarReader : public SampleReader {
 public:
  TarReader(const ShardInput& in, const ReaderParams& params) : path_(in.path), params_(params) {
    Utf8LocaleScope utf8;
    a_ = archive_read_new();
    archive_read_support_filter_all(a_);
    archive_read_support_format_tar(a_);
    archive_read_support_format_gnutar(a_);
    if (archive_read_open_filename(a_, path_.c_str(), 1 << 20) != ARCHIVE_OK)
      throw std::runtime_error(fmt::format("cannot open {}: {}", path_, archive_error_string(a_)));
    // A file that is not a tar at all fails on its first header: an open error, not a break.
    if (!read_member()) {
      if (!error_.empty())
        throw std::runtime_error(fmt::format("{} is not a readable tar: {}", path_, error_));
    }
  }
  ~TarReader() override { archive_read_free(a_); }

  bool next(Sample& out) override {
    if (!have_member_) return false;
    MemberGroup group;
    group.key = member_key_;
    std::string failure;
    while (have_member_ && member_key_ == group.key) {
      if (!member_error_.empty()) failure = member_error_;
      group.members.emplace_back(std::move(member_ext_), std::move(member_data_));
      read_member();
    }
    out = build_sample(std::move(group), index_++);
    if (!failure.empty()) out.fail(Status::failed_to_read, failure);
    return true;
  }

  const std::string& error() const override { return error_; }

 private:
  // Reads the next regular member into member_*; false at the end or on a break (error_ set).
  bool read_member() {
    Utf8LocaleScope utf8;
    have_member_ = false;
    if (!error_.empty()) return false;  // the archive broke earlier; nothing after it is trusted
    member_error_.clear();
    while (true) {
      archive_entry* e = nullptr;
      int rc = archive_read_next_header(a_, &e);
      if (rc == ARCHIVE_EOF) return false;
      if (rc < ARCHIVE_WARN) {
        error_ = fmt::format("tar broken after {} member(s): {}", members_, archive_error_string(a_));
        return false;
      }
      // Symbolic links are never followed: one is a member whose sample fails to read.
      bool link = archive_entry_filetype(e) == AE_IFLNK;
      if (archive_entry_filetype(e) != AE_IFREG && !link) continue;
      std::string name = member_name(e);
      if (name.rfind("./", 0) == 0) name = name.substr(2);
      auto [key, ext] = split_member_name(name);
      if (key.empty() || key.rfind("__MACOSX", 0) == 0) continue;
      ++members_;
      member_key_ = std::move(key);
      member_ext_ = std::move(ext);
      member_data_.clear();
      have_member_ = true;
      if (link) {
        member_error_ = fmt::format("member {} is a symbolic link; links are not followed", name);
        return true;
      }
      la_int64_t size = archive_entry_size(e);
      if (size > (la_int64_t)params_.max_member_bytes) {
        member_error_ = fmt::format("member {} is {} bytes, above the {}-byte limit", name, size,
                                    params_.max_member_bytes);
        archive_read_data_skip(a_);
        return true;
      }
      member_data_.resize((size_t)std::max<la_int64_t>(size, 0));
      size_t got = 0;
      while (got < member_data_.size()) {
        la_ssize_t n = archive_read_data(a_, member_data_.data() + got, member_data_.size() - got);
        if (n < 0 || (n == 0 && got < member_data_.size())) {
          error_ = fmt::format("tar truncated inside member {} ({} of {} bytes): {}", name, got,
                               member_data_.size(), n < 0 ? archive_error_string(a_) : "unexpected end");
          member_error_ = error_;
          member_data_.resize(got);
          return true;  // deliver what we have, the sample is marked failed_to_read
        }
        got += (size_t)n;
      }
      return true;
    }
  }

  std::string path_;
  ReaderParams params_;
  archive* a_ = nullptr;
  std::string error_;
  int64_t index_ = 0, members_ = 0;
  bool have_member_ = false;
  std::string member_key_, member_ext_, member_data_, member_error_;
};

}  // namespace

std::unique_ptr<SampleReader> open_tar_reader(const ShardInput& in, const ReaderParams& params) {
  return std::make_unique<TarReader>(in, params);
}

}  // namespace capforge
