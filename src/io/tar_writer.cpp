// webdataset tar output via libarchive: {key}.{ext} image, {key}.txt caption, {key}.json the rest.
#include <archive.h>
#include <archive_entry.h>

#include <fmt/format.h>

#include <cstdlib>
#include <ctime>
#include <stdexcept>

#include "capforge/env.h"
#include "capforge/image.h"
#include "core/text.h"
#include "io/keys.h"
#include "io/utf8_locale.h"
#include "io/writers.h"

namespace capforge {

namespace {

// webdataset splits member names on the first dot of the basename, so keys must not contain one.
// The key is made safe first (io/keys.h), so no member name escapes the shard.
std::string tar_key(const std::string& key) {
  std::string k = sanitize_key(key);
  size_t slash = k.rfind('/');
  for (size_t i = slash == std::string::npos ? 0 : slash + 1; i < k.size(); ++i)
    if (k[i] == '.') k[i] = '_';
  return k.empty() ? "_" : k;
}

class TarWriter : public TempFileWriter {
 public:
  TarWriter(std::string final_path, const WriterParams& params)
      : TempFileWriter(std::move(final_path)), params_(params) {
    Utf8LocaleScope utf8;
    a_ = archive_write_new();
    archive_write_set_format_pax_restricted(a_);
    archive_write_set_options(a_, "hdrcharset=UTF-8");
    if (archive_write_open_filename(a_, tmp_.c_str()) != ARCHIVE_OK)
      throw std::runtime_error(fmt::format("cannot create {}: {}", tmp_,
                                           with_os_error(archive_error_string(a_), archive_errno(a_))));
  }
  ~TarWriter() override {
    if (a_) archive_write_free(a_);
  }

  void write(const Sample& s) override {
    if (params_.schema == OutputSchema::img2dataset && !s.ok()) return;  // img2dataset: successes only
    std::string key = member_keys_.unique(tar_key(s.key));
    if (s.has_image && (params_.include_images || params_.schema == OutputSchema::img2dataset)) {
      std::string ext = s.image_ext.empty() ? sniff_image_ext(s.image_bytes) : s.image_ext;
      add(key + "." + (ext.empty() ? "bin" : ext), s.image_bytes);
    }
    const auto& text = params_.schema == OutputSchema::caption ? s.re_caption : s.caption;
    if (text) add(key + ".txt", *text);
    Json j = output_object(s, params_, false);
    if (params_.schema == OutputSchema::samples && j["status"] == "success" && j["error_message"].is_null()) {
      j.erase("status");  // webdataset json stays as it came in unless the sample has something to say
      j.erase("error_message");
    }
    add(key + ".json", j.dump(-1, ' ', false, Json::error_handler_t::replace));
    for (auto& [ext, bytes] : s.extra_members) add(key + "." + ext, bytes);
  }

  void finish() override {
    Utf8LocaleScope utf8;
    int rc = archive_write_close(a_);
    if (rc != ARCHIVE_OK)
      throw std::runtime_error(fmt::format("cannot write {}: {}", tmp_,
                                           with_os_error(archive_error_string(a_), archive_errno(a_))));
    archive_write_free(a_);
    a_ = nullptr;
  }

 private:
  // Member names are written as UTF-8 (pax) whatever the locale; invalid UTF-8 and control
  // characters (possible in carried member extensions) are replaced first.
  void add(const std::string& raw_name, const std::string& data) {
    std::string name = raw_name;
    repair_utf8(name);
    for (char& c : name)
      if ((unsigned char)c < 0x20 || c == 0x7f) c = '_';
    Utf8LocaleScope utf8;
    archive_entry* e = archive_entry_new();
    archive_entry_set_pathname_utf8(e, name.c_str());  // UTF-8 in the pax header, whatever the locale
    archive_entry_set_size(e, (la_int64_t)data.size());
    archive_entry_set_filetype(e, AE_IFREG);
    archive_entry_set_perm(e, 0644);
    archive_entry_set_mtime(e, now_, 0);
    int rc = archive_write_header(a_, e);
    archive_entry_free(e);
    if (rc != ARCHIVE_OK || archive_write_data(a_, data.data(), data.size()) != (la_ssize_t)data.size())
      throw std::runtime_error(fmt::format("cannot write {} to {}: {}", name, tmp_,
                                           with_os_error(archive_error_string(a_), archive_errno(a_))));
  }

  WriterParams params_;
  archive* a_ = nullptr;
  KeyDeduper member_keys_;  // '.' -> '_' may make two keys one
  // Member times are fixed so the same samples give the same bytes: $SOURCE_DATE_EPOCH, else 0.
  time_t now_ = [] {
    const char* e = std::getenv("SOURCE_DATE_EPOCH");
    return e ? (time_t)std::strtoll(e, nullptr, 10) : (time_t)0;
  }();
};

}  // namespace

std::unique_ptr<SampleWriter> open_tar_writer(const std::string& final_path, const WriterParams& params) {
  return std::make_unique<TarWriter>(final_path, params);
}

}  // namespace capforge
